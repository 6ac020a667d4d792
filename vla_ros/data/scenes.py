"""Procedural scenes: coloured shapes on varied backgrounds, with their ground truth.

Scenes are the package's own unlimited, exactly-labelled data. With one shape on a
light background they look like easy-VQA; with several shapes and textured
backgrounds they teach captions, counting and positions.
"""
from dataclasses import dataclass, field

import cv2
import numpy as np

from .vocabulary import COLORS, COLOR_NAMES, SHAPES


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    cx: float     # centre, fraction of image width
    cy: float     # centre, fraction of image height
    size: float   # extent, fraction of image size


@dataclass
class Scene:
    objects: list = field(default_factory=list)
    background: str = 'plain'          # plain | gradient | noise
    background_rgb: tuple = (245, 245, 245)
    seed: int = 0                      # for the background texture


def random_scene(rng: np.random.Generator, max_objects: int = 1,
                 varied_background: bool = False) -> Scene:
    """Draw a scene with 1..max_objects non-overlapping shapes (distinct shape+colour)."""
    n = int(rng.integers(1, max_objects + 1))
    objects, taken = [], set()
    for _ in range(50 * n):
        if len(objects) == n:
            break
        size = float(rng.uniform(0.14, 0.53) if n == 1 else rng.uniform(0.14, 0.34))
        half = size / 2
        cx, cy = (float(rng.uniform(half, 1 - half)) for _ in range(2))
        shape, color = SHAPES[rng.integers(3)], COLOR_NAMES[rng.integers(len(COLOR_NAMES))]
        if (shape, color) in taken:
            continue
        clash = any(abs(cx - o.cx) < (size + o.size) / 2 + 0.02 and
                    abs(cy - o.cy) < (size + o.size) / 2 + 0.02 for o in objects)
        if not clash:
            objects.append(SceneObject(shape, color, cx, cy, size))
            taken.add((shape, color))
    background = 'plain'
    if varied_background:
        background = ('plain', 'gradient', 'noise')[rng.integers(3)]
    bg = tuple(int(v) for v in rng.integers(222, 256, size=3))
    return Scene(objects, background, bg, int(rng.integers(2**31)))


def _background(scene: Scene, size: int) -> np.ndarray:
    img = np.empty((size, size, 3), np.float32)
    img[:] = scene.background_rgb
    rng = np.random.default_rng(scene.seed)
    if scene.background == 'gradient':
        ramp = np.linspace(-1, 1, size, dtype=np.float32)[:, None, None]
        img += ramp * rng.uniform(-25, 25, size=3).astype(np.float32)
    elif scene.background == 'noise':
        coarse = rng.normal(0, 12, size=(8, 8, 3)).astype(np.float32)
        img += cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(img, 0, 255).astype(np.uint8)


def draw_object(img: np.ndarray, obj: SceneObject) -> None:
    """Draw one shape, anti-aliased, in place on an RGB image."""
    h, w = img.shape[:2]
    s = 16  # sub-pixel precision for cv2's fixed-point drawing
    cx, cy = obj.cx * w * s, obj.cy * h * s
    half = obj.size * min(h, w) * s / 2
    color = COLORS[obj.color]
    if obj.shape == 'circle':
        cv2.circle(img, (round(cx), round(cy)), round(half), color, -1, cv2.LINE_AA, shift=4)
    elif obj.shape == 'rectangle':
        # easy-VQA's rectangles have any aspect ratio; keep the longer side = size
        aspect = 0.55 + 0.45 * ((obj.cx * 7919 + obj.cy * 104729) % 1.0)
        hw, hh = (half, half * aspect) if (obj.cx + obj.cy) % 0.2 < 0.1 else (half * aspect, half)
        pts = np.array([[cx - hw, cy - hh], [cx + hw, cy - hh],
                        [cx + hw, cy + hh], [cx - hw, cy + hh]])
        cv2.fillPoly(img, [np.round(pts).astype(np.int32)], color, cv2.LINE_AA, shift=4)
    else:
        pts = np.array([[cx, cy - half], [cx + half, cy + half * 0.8],
                        [cx - half, cy + half * 0.8]])
        cv2.fillPoly(img, [np.round(pts).astype(np.int32)], color, cv2.LINE_AA, shift=4)


def render(scene: Scene, size: int = 64) -> np.ndarray:
    """Render a scene as a (size, size, 3) uint8 RGB image."""
    img = _background(scene, size)
    for obj in scene.objects:
        draw_object(img, obj)
    return img
