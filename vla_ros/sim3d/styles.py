"""Per-episode looks of the 3D arena (domain randomisation), deterministic for an rng.

A `Style` fixes everything about an episode's appearance that is not the layout: floor,
wall and sky textures, the sun-like directional light (direction, colour of its diffuse,
ambient and specular terms), shadows, the camera's height and pitch, how much object
sizes are jittered, and the sensor's pixel noise. A policy trained over many styles
should not care about any of them.

Training styles are drawn by `sample_style(rng)`: MuJoCo's builtin textures
(checker / gradient / flat) without marks, desaturated floor and wall colours, and
near-white light from above. Held-out styles (`HELD_OUT_STYLES`) differ in kind, not
only in degree: marked textures (speckle, tile grout, crosses) that training never
uses, and strongly coloured or low light. `sample_style(rng, held_out=True)` picks one
of them; the training sampler never does, so they measure generalisation.

Colours are RGB in [0, 1] (MuJoCo's convention); noise is in uint8 pixel units.
"""
import math
from dataclasses import dataclass, replace
from typing import Tuple

import numpy as np

RGB = Tuple[float, float, float]

TEXTURE_KINDS = ('checker', 'gradient', 'flat')   # MuJoCo builtin textures used in training
CAMERA_HEIGHT = (0.25, 0.40)          # m above the floor
CAMERA_PITCH = (8.0, 16.0)            # degrees below the horizon
NOISE_STD = (0.0, 4.0)                # gaussian pixel noise, uint8 units
SHADOW_PROBABILITY = 0.3              # shadows cost render time (see the report in world3d)
OBJECT_SHRINK = 0.15                  # footprints shrink by up to this fraction (never grow:
#                                       the layout's spacing rules must keep holding)
HEIGHT_SCALE = (0.8, 1.25)            # cylinders' and pyramids' heights vary by this factor


@dataclass(frozen=True)
class Texture:
    """A MuJoCo builtin 2D texture: `builtin` pattern of rgb1/rgb2, optional marks."""
    builtin: str = 'flat'            # checker | gradient | flat
    rgb1: RGB = (0.8, 0.8, 0.8)
    rgb2: RGB = (0.6, 0.6, 0.6)
    mark: str = 'none'               # none | edge | cross | random (held-out only)
    markrgb: RGB = (0.0, 0.0, 0.0)
    random: float = 0.0              # fraction of texels marked when mark == 'random'
    repeat: float = 1.0              # texture repeats per metre


@dataclass(frozen=True)
class Style:
    """Everything about an episode's look that is not the layout."""
    name: str = 'train'              # 'train' or the name of a held-out style
    floor: Texture = Texture('checker', (0.75, 0.75, 0.75), (0.55, 0.55, 0.55), repeat=1.0)
    wall: Texture = Texture('flat', (0.85, 0.85, 0.82), (0.85, 0.85, 0.82))
    sky: Tuple[RGB, RGB] = ((0.75, 0.82, 0.92), (0.35, 0.40, 0.50))   # top, bottom
    light_dir: Tuple[float, float, float] = (0.3, 0.2, -1.0)           # unit, towards floor
    light_diffuse: RGB = (0.7, 0.7, 0.7)
    light_ambient: RGB = (0.3, 0.3, 0.3)
    light_specular: RGB = (0.2, 0.2, 0.2)
    headlight: float = 0.1           # diffuse of MuJoCo's camera headlight
    shadows: bool = False
    camera_height: float = 0.32      # m
    camera_pitch: float = 12.0       # degrees below the horizon
    noise_std: float = 0.0           # uint8 units

    @property
    def held_out(self) -> bool:
        return self.name != 'train'


def _grey(rng, lo: float, hi: float, tint: float) -> RGB:
    """A desaturated colour: grey level in [lo, hi], each channel tinted by up to +-tint."""
    g = rng.uniform(lo, hi)
    return tuple(float(np.clip(g + rng.uniform(-tint, tint), 0, 1)) for _ in range(3))


def _scaled(rgb: RGB, k: float) -> RGB:
    return tuple(float(np.clip(v * k, 0, 1)) for v in rgb)


def _direction(rng, elevation_deg: Tuple[float, float]) -> Tuple[float, float, float]:
    """Unit vector of light travelling down at an elevation in the range, any azimuth."""
    el = math.radians(rng.uniform(*elevation_deg))
    az = rng.uniform(0, 2 * math.pi)
    return (-math.cos(el) * math.cos(az), -math.cos(el) * math.sin(az), -math.sin(el))


def _tinted(rng, level: float, tint: float) -> RGB:
    """Near-white light of intensity `level`, each channel off by up to +-tint."""
    return tuple(float(np.clip(level * (1 + rng.uniform(-tint, tint)), 0, 1)) for _ in range(3))


def _camera_and_noise(rng) -> dict:
    """The jitter every style gets, held-out ones included."""
    return dict(camera_height=float(rng.uniform(*CAMERA_HEIGHT)),
                camera_pitch=float(rng.uniform(*CAMERA_PITCH)),
                noise_std=float(rng.uniform(*NOISE_STD)))


def _train_style(rng) -> Style:
    kind = TEXTURE_KINDS[rng.integers(len(TEXTURE_KINDS))]
    floor1 = _grey(rng, 0.35, 0.9, 0.1)
    floor = Texture(kind, floor1, _scaled(floor1, rng.uniform(0.55, 0.9)),
                    repeat=float(rng.uniform(0.5, 2.0)))
    wall_kind = TEXTURE_KINDS[rng.integers(len(TEXTURE_KINDS))]
    wall1 = _grey(rng, 0.45, 0.95, 0.08)
    wall = Texture(wall_kind, wall1, _scaled(wall1, rng.uniform(0.7, 0.95)),
                   repeat=float(rng.uniform(0.5, 2.0)))
    top = _grey(rng, 0.6, 0.95, 0.1)
    return Style(
        name='train', floor=floor, wall=wall, sky=(top, _scaled(top, rng.uniform(0.4, 0.8))),
        light_dir=_direction(rng, (35, 85)),
        light_diffuse=_tinted(rng, rng.uniform(0.5, 0.9), 0.08),
        light_ambient=_tinted(rng, rng.uniform(0.15, 0.4), 0.05),
        light_specular=_tinted(rng, rng.uniform(0.0, 0.3), 0.0),
        headlight=float(rng.uniform(0.1, 0.35)),
        shadows=bool(rng.random() < SHADOW_PROBABILITY),
        **_camera_and_noise(rng))


def _speckled_dusk(rng) -> Style:
    """Speckled floor, low orange sun from the side, long shadows."""
    base = _grey(rng, 0.5, 0.7, 0.05)
    return Style(
        name='speckled_dusk',
        floor=Texture('flat', base, base, mark='random', markrgb=_scaled(base, 0.4),
                      random=float(rng.uniform(0.1, 0.3)), repeat=float(rng.uniform(1, 3))),
        wall=Texture('gradient', (0.8, 0.7, 0.6), (0.5, 0.4, 0.35), repeat=1.0),
        sky=((0.95, 0.6, 0.35), (0.35, 0.2, 0.25)),
        light_dir=_direction(rng, (22, 35)),
        light_diffuse=(0.95, 0.6, 0.3), light_ambient=(0.25, 0.18, 0.15),
        light_specular=(0.3, 0.2, 0.1), headlight=0.05, shadows=True,
        **_camera_and_noise(rng))


def _tiled_night(rng) -> Style:
    """Tiles with dark grout, dim bluish light, more sensor noise."""
    tile = _grey(rng, 0.55, 0.8, 0.03)
    return Style(
        name='tiled_night',
        floor=Texture('checker', tile, _scaled(tile, 0.92), mark='edge',
                      markrgb=(0.15, 0.15, 0.18), repeat=float(rng.uniform(1.5, 3))),
        wall=Texture('flat', (0.35, 0.38, 0.45), (0.35, 0.38, 0.45), mark='edge',
                     markrgb=(0.1, 0.1, 0.12), repeat=2.0),
        sky=((0.1, 0.12, 0.25), (0.02, 0.02, 0.05)),
        light_dir=_direction(rng, (50, 80)),
        light_diffuse=(0.35, 0.4, 0.6), light_ambient=(0.12, 0.13, 0.2),
        light_specular=(0.1, 0.1, 0.2), headlight=0.15, shadows=False,
        **(_camera_and_noise(rng) | {'noise_std': float(rng.uniform(4, 8))}))


def _gridded_glare(rng) -> Style:
    """Floor and walls with a cross pattern, strong overhead light with glare."""
    base = _grey(rng, 0.7, 0.9, 0.05)
    return Style(
        name='gridded_glare',
        floor=Texture('flat', base, base, mark='cross', markrgb=(0.3, 0.3, 0.3),
                      repeat=float(rng.uniform(2, 4))),
        wall=Texture('checker', (0.9, 0.9, 0.9), (0.7, 0.75, 0.8), mark='cross',
                     markrgb=(0.4, 0.4, 0.4), repeat=1.5),
        sky=((1.0, 1.0, 1.0), (0.8, 0.85, 0.9)),
        light_dir=_direction(rng, (80, 89)),
        light_diffuse=(1.0, 1.0, 0.95), light_ambient=(0.45, 0.45, 0.45),
        light_specular=(0.7, 0.7, 0.7), headlight=0.2, shadows=True,
        **_camera_and_noise(rng))


HELD_OUT_STYLES = {'speckled_dusk': _speckled_dusk, 'tiled_night': _tiled_night,
                   'gridded_glare': _gridded_glare}


def sample_style(rng: np.random.Generator, held_out: bool = False) -> Style:
    """A random training style, or (held_out=True) a random held-out one."""
    if not held_out:
        return _train_style(rng)
    names = sorted(HELD_OUT_STYLES)
    return HELD_OUT_STYLES[names[rng.integers(len(names))]](rng)


def held_out_style(name: str, rng: np.random.Generator) -> Style:
    """The held-out style `name` (jittered camera and noise from rng), for evaluation."""
    if name not in HELD_OUT_STYLES:
        raise ValueError(f"unknown held-out style '{name}'; known: "
                         + ', '.join(sorted(HELD_OUT_STYLES)))
    return HELD_OUT_STYLES[name](rng)


def object_scales(rng: np.random.Generator, n: int):
    """Per-object (footprint factor, height factor), each (n,): sizes jittered per episode."""
    footprint = 1.0 - rng.uniform(0.0, OBJECT_SHRINK, size=n)
    height = rng.uniform(*HEIGHT_SCALE, size=n)
    return footprint, height


def add_sensor_noise(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian pixel noise of `std` (uint8 units) on an (H, W, 3) uint8 image."""
    if std <= 0:
        return image
    noisy = image.astype(np.float32) + rng.standard_normal(image.shape, np.float32) * std
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def without_noise(style: Style) -> Style:
    """The same style with a clean sensor (tests and figures)."""
    return replace(style, noise_std=0.0)
