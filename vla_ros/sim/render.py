"""Pictures of a World: the robot's egocentric camera and a top-down overview for humans.

The camera is a top-down view of the half-plane ahead, rotated so the heading points up,
with the robot at the bottom centre. Distances are compressed like a wide-angle lens,

    u = 1/2 - 1/2 * left / (r + VIEW_R0),   v = 1 - forward / (r + VIEW_R0)

(u, v as fractions of the image width/height, r = distance from the robot), so the whole
half-plane ahead fits in the square and near things look bigger than far ones. Every
shape ahead is therefore in view: a policy that cannot see its target knows it is
behind. Shapes are drawn as upright icons, scaled by 1 / (r + VIEW_R0), in the palette
and style of vla_ros/data/scenes.py (filled, anti-aliased, on a light floor), so what
the vision model learned from easy-VQA and the scene generator carries over.
"""
import math

import cv2
import numpy as np

from ..data.vocabulary import COLORS
from .world import ROBOT_RADIUS, World

VIEW_R0 = 1.2                  # m: at this distance lengths are drawn at half their near scale
WALL_RGB = (196, 200, 208)     # outside the arena (and the horizon): darker than any floor
_SHIFT = 4                     # cv2 fixed-point drawing: 1/16-pixel precision
_grids = {}                    # image size -> per-pixel (forward, left) of the floor


def camera_point(forward: float, left: float):
    """Robot-frame point -> (u, v) image fractions and the drawing scale (fraction per m)."""
    scale = 1.0 / (math.hypot(forward, left) + VIEW_R0)
    return 0.5 - 0.5 * left * scale, 1.0 - forward * scale, scale


def in_view(world: World, i: int) -> bool:
    """True when shape i is in the camera image: its centre is ahead of the robot, or
    behind by less than half its radius (then the top of its icon shows at the bottom)."""
    return world.ego(i)[0] > -0.5 * world.shapes[i].radius


def _floor_grid(size: int):
    """Inverse of camera_point at every pixel centre: (forward, left) in m, inf at the horizon."""
    if size not in _grids:
        c = (np.arange(size, dtype=np.float32) + 0.5) / size
        u, v = np.meshgrid(c, c)
        a, b = 1.0 - v, 2.0 * (0.5 - u)        # forward / (r + R0), left / (r + R0)
        h = np.hypot(a, b)                     # r / (r + R0) < 1 on the floor
        with np.errstate(divide='ignore'):
            s = np.where(h < 1, VIEW_R0 / (1 - h), np.inf)   # r + R0
        _grids[size] = (a * s, b * s)
    return _grids[size]


def draw_icon(img: np.ndarray, shape: str, color: str, cx: float, cy: float, half: float,
              aspect: float = 1.0, wide: bool = True) -> None:
    """Filled, anti-aliased icon centred at pixel (cx, cy) with half-extent `half` px.

    Same geometry as scenes.draw_object: rectangles' long side = the extent, triangles
    point up with the base at 0.8 of the half-extent below the centre.
    """
    s = 1 << _SHIFT
    cx, cy, half = cx * s, cy * s, half * s
    rgb = COLORS[color]
    if shape == 'circle':
        cv2.circle(img, (round(cx), round(cy)), round(half), rgb, -1, cv2.LINE_AA, _SHIFT)
        return
    if shape == 'rectangle':
        hw, hh = (half, half * aspect) if wide else (half * aspect, half)
        pts = [[cx - hw, cy - hh], [cx + hw, cy - hh], [cx + hw, cy + hh], [cx - hw, cy + hh]]
    else:
        pts = [[cx, cy - half], [cx + half, cy + half * 0.8], [cx - half, cy + half * 0.8]]
    cv2.fillPoly(img, [np.round(np.array(pts)).astype(np.int32)], rgb, cv2.LINE_AA, _SHIFT)


def render_camera(world: World, size: int = 64) -> np.ndarray:
    """The robot's egocentric view as (size, size, 3) uint8 RGB."""
    forward, left = _floor_grid(size)
    p = world.pose
    c, s = math.cos(p.theta), math.sin(p.theta)
    with np.errstate(invalid='ignore'):   # inf * 0 at the horizon: NaN, i.e. not on the floor
        x = p.x + forward * c - left * s
        y = p.y + forward * s + left * c
        floor = (x >= 0) & (x <= world.arena) & (y >= 0) & (y <= world.arena)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = WALL_RGB
    img[floor] = world.background
    icons = []
    for i, shape in enumerate(world.shapes):
        fwd, lft = world.ego(i)
        if fwd < -shape.radius:
            continue
        u, v, scale = camera_point(fwd, lft)
        icons.append((scale, u, v, shape))
    for scale, u, v, shape in sorted(icons, key=lambda t: t[0]):   # far first: near ones on top
        draw_icon(img, shape.shape, shape.color, u * size, v * size,
                  shape.radius * scale * size, shape.aspect, shape.wide)
    return img


def render_overview(world: World, size: int = 480, instruction: str = '',
                    status: str = '') -> np.ndarray:
    """Top-down map for humans: shapes, target ring, robot arrow, path, text. RGB uint8."""
    margin = 24
    px = (size - 2 * margin) / world.arena

    def to_px(x, y):   # world metres -> pixel (y up in the world, down in the image)
        return margin + x * px, size - margin - y * px

    img = np.empty((size, size, 3), np.uint8)
    img[:] = WALL_RGB
    (x0, y0), (x1, y1) = to_px(0, world.arena), to_px(world.arena, 0)
    cv2.rectangle(img, (round(x0), round(y0)), (round(x1), round(y1)), world.background, -1)
    cv2.rectangle(img, (round(x0), round(y0)), (round(x1), round(y1)), (90, 90, 90), 2)
    for i, shape in enumerate(world.shapes):
        cx, cy = to_px(shape.x, shape.y)
        draw_icon(img, shape.shape, shape.color, cx, cy, shape.radius * px, shape.aspect,
                  shape.wide)
        if i == world.target:
            ring = round((shape.radius + ROBOT_RADIUS + 0.3) * px)
            cv2.circle(img, (round(cx), round(cy)), ring, (230, 80, 200), 2, cv2.LINE_AA)
    if len(world.path) > 1:
        pts = np.array([to_px(x, y) for x, y in world.path])
        cv2.polylines(img, [np.round(pts).astype(np.int32)], False, (60, 120, 230), 1,
                      cv2.LINE_AA)
    p = world.pose
    cx, cy = to_px(p.x, p.y)
    r = ROBOT_RADIUS * px
    tip = (cx + 2 * r * math.cos(p.theta), cy - 2 * r * math.sin(p.theta))
    cv2.circle(img, (round(cx), round(cy)), round(r), (40, 40, 40), 2, cv2.LINE_AA)
    cv2.arrowedLine(img, (round(cx), round(cy)), (round(tip[0]), round(tip[1])), (230, 40, 40),
                    2, cv2.LINE_AA, tipLength=0.35)
    text = f't={world.time:5.1f}s  {instruction}'
    cv2.putText(img, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    if status:
        cv2.putText(img, status, (6, size - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1,
                    cv2.LINE_AA)
    return img
