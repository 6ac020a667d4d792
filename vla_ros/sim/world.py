"""A 2D arena with coloured shapes and a differential-drive robot (no ROS, no rendering).

Coordinates: metres, x right / y up, heading `theta` counter-clockwise from +x (REP 103:
positive angular velocity turns left). Shapes are upright markers with a circular
footprint of radius size/2: that footprint is what the robot touches and reaches.
Everything is deterministic for a seed; `World.random(seed)` makes an episode's arena.
"""
import math
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from ..data.vocabulary import COLOR_NAMES, SHAPES

ARENA_SIZE = 5.0          # m, square arena [0, ARENA_SIZE]^2
ROBOT_RADIUS = 0.15       # m
MAX_LINEAR = 0.5          # m/s: a policy's linear 1.0 means this speed
MAX_ANGULAR = 1.5         # rad/s: a policy's angular 1.0 means this turn rate
DT = 0.1                  # s, default integration step
REACH_DISTANCE = 0.3      # m between robot and shape footprints that counts as "reached"
SHAPE_SIZES = (0.35, 0.6)  # m, extent of a shape (footprint diameter)
WALL_MARGIN = 0.9         # m, shape centres stay this far from the walls (room to pass)
SHAPE_GAP = 0.7           # m between footprints: the robot always fits between two shapes
START_CLEARANCE = 0.45    # m from any footprint to the robot's start position
MIN_TARGET_GAP = 0.8      # m, the target never starts within reach
SHAPE_COUNTS = (3, 6)     # shapes per episode: the target and 2..5 distractors


def wrap_angle(a: float) -> float:
    """Angle in (-pi, pi]."""
    return math.atan2(math.sin(a), math.cos(a))


@dataclass(frozen=True)
class Shape:
    shape: str       # one of vocabulary.SHAPES
    color: str       # one of vocabulary.COLOR_NAMES
    x: float
    y: float
    size: float      # m, extent; the footprint is a circle of radius size / 2
    aspect: float = 1.0   # rectangles: short side / long side
    wide: bool = True     # rectangles: long side horizontal when drawn

    @property
    def radius(self) -> float:
        return self.size / 2

    @property
    def name(self) -> str:
        return f'{self.color} {self.shape}'


@dataclass
class Pose:
    x: float
    y: float
    theta: float


@dataclass
class World:
    shapes: List[Shape]
    pose: Pose
    target: Optional[int] = 0            # index of the episode's target shape, if any
    dt: float = DT
    arena: float = ARENA_SIZE
    background: tuple = (245, 245, 245)  # floor colour, RGB
    seed: Optional[int] = None
    time: float = 0.0
    path: list = field(default_factory=list)      # (x, y) after every step
    touched: set = field(default_factory=set)     # shapes the robot has bumped into
    reached: set = field(default_factory=set)     # shapes the robot has come within reach of
    wall_hits: int = 0

    def __post_init__(self):
        self.path = self.path or [(self.pose.x, self.pose.y)]

    # -- episode generation ------------------------------------------------------------------
    @classmethod
    def random(cls, seed: int, n_shapes: Optional[int] = None, dt: float = DT) -> 'World':
        """The arena of episode `seed`: shapes[0] is the target, the rest distractors.

        Distractors often share the target's colour or its shape, so reaching the right
        one needs both words of the instruction.
        """
        rng = np.random.default_rng(seed)
        n = int(n_shapes or rng.integers(SHAPE_COUNTS[0], SHAPE_COUNTS[1] + 1))
        kinds = _distinct_kinds(rng, n)
        for _ in range(100):   # random sequential placement, restarted when it gets stuck
            shapes = _place(rng, kinds)
            if shapes:
                break
        else:  # cannot happen with the constants above; fail loudly if they change
            raise RuntimeError(f'seed {seed}: no room for {n} shapes')
        world = cls(shapes, Pose(0.0, 0.0, 0.0), target=0, dt=dt, seed=seed,
                    background=tuple(int(v) for v in rng.integers(225, 256, size=3)))
        world.pose = world.random_free_pose(rng)
        world.path = [(world.pose.x, world.pose.y)]
        return world

    def random_free_pose(self, rng: np.random.Generator, clearance: float = START_CLEARANCE,
                         near: Optional[int] = None, max_dist: float = 0.0) -> Pose:
        """A pose clear of walls and shapes; within `max_dist` of shape `near` if given."""
        lo, hi = ROBOT_RADIUS + 0.1, self.arena - ROBOT_RADIUS - 0.1
        for _ in range(10000):
            if near is None:
                x, y = rng.uniform(lo, hi, size=2)
            else:
                s, a = self.shapes[near], rng.uniform(-math.pi, math.pi)
                d = rng.uniform(s.radius + ROBOT_RADIUS + 0.02, s.radius + ROBOT_RADIUS + max_dist)
                x, y = s.x + d * math.cos(a), s.y + d * math.sin(a)
                if not (lo <= x <= hi and lo <= y <= hi):
                    continue
            pose = Pose(float(x), float(y), float(rng.uniform(-math.pi, math.pi)))
            gaps = [self.gap(i, pose) for i in range(len(self.shapes))]
            if min(gaps) < (0.02 if near is not None else clearance):
                continue
            if near is None and self.target is not None and gaps[self.target] < MIN_TARGET_GAP:
                continue
            return pose
        raise RuntimeError('no free pose in the arena')

    # -- geometry -----------------------------------------------------------------------------
    def gap(self, i: int, pose: Optional[Pose] = None) -> float:
        """Distance between the robot's footprint and shape i's (negative: overlapping)."""
        p, s = pose or self.pose, self.shapes[i]
        return math.hypot(s.x - p.x, s.y - p.y) - s.radius - ROBOT_RADIUS

    def ego(self, i: int, pose: Optional[Pose] = None):
        """Shape i's centre in the robot frame: (forward, left) in metres."""
        p, s = pose or self.pose, self.shapes[i]
        dx, dy = s.x - p.x, s.y - p.y
        c, si = math.cos(p.theta), math.sin(p.theta)
        return dx * c + dy * si, -dx * si + dy * c

    def bearing(self, i: int, pose: Optional[Pose] = None) -> float:
        """Angle from the robot's heading to shape i's centre (positive = to the left)."""
        forward, left = self.ego(i, pose)
        return math.atan2(left, forward)

    def find(self, color: str, shape: str) -> Optional[int]:
        """Index of the shape with this colour and shape, or None.

        `shape` is a vocabulary shape or a 3D world's name for one (sphere: circle, cube:
        rectangle, pyramid: triangle, as sim3d/scene.py's VOCAB_SHAPE); a cylinder, which
        the 2D arena has no counterpart for, is never found.
        """
        shape = {'sphere': 'circle', 'cube': 'rectangle', 'pyramid': 'triangle'}.get(shape, shape)
        for i, s in enumerate(self.shapes):
            if (s.color, s.shape) == (color, shape):
                return i
        return None

    # -- what World3D offers too, so code can drive either arena -----------------------------
    @property
    def objects(self) -> list:
        """Indices of the shapes an instruction can name: all of them (2D has no clutter)."""
        return list(range(len(self.shapes)))

    def in_view(self, i: int) -> bool:
        """Whether shape i shows in the robot camera's image (render.in_view)."""
        from .render import in_view   # render.py draws Worlds, so it imports this module
        return in_view(self, i)

    def render(self, width: int = 64, height: int = 64) -> np.ndarray:
        """The robot camera's (size, size, 3) uint8 RGB frame (render.render_camera)."""
        from .render import render_camera
        if width != height:
            raise ValueError(f'the 2D camera is square, got {width}x{height}')
        return render_camera(self, width)

    def close(self):
        """Nothing to free (a World3D frees its render context here)."""

    def _inside_walls(self, x: float, y: float) -> bool:
        return ROBOT_RADIUS <= x <= self.arena - ROBOT_RADIUS and \
            ROBOT_RADIUS <= y <= self.arena - ROBOT_RADIUS

    # -- motion -------------------------------------------------------------------------------
    def step(self, linear: float, angular: float) -> list:
        """Drive for one `dt` at (linear m/s, angular rad/s), clamped to the robot's limits.

        Exact unicycle integration (constant commands trace an arc). A move that would
        overlap a shape or cross a wall is not made (the robot stops against it but may
        still turn): that is a touch. Returns events: ('touch', i), ('reach', i), ('wall',)
        where reach/touch are reported the first time per shape.
        """
        v = float(np.clip(linear, -MAX_LINEAR, MAX_LINEAR)) if math.isfinite(linear) else 0.0
        w = float(np.clip(angular, -MAX_ANGULAR, MAX_ANGULAR)) if math.isfinite(angular) else 0.0
        p, dt = self.pose, self.dt
        theta = p.theta + w * dt
        if abs(w) < 1e-9:
            x, y = p.x + v * dt * math.cos(p.theta), p.y + v * dt * math.sin(p.theta)
        else:
            x = p.x + v / w * (math.sin(theta) - math.sin(p.theta))
            y = p.y - v / w * (math.cos(theta) - math.cos(p.theta))
        new = Pose(x, y, wrap_angle(theta))
        events = []
        blocked = [i for i in range(len(self.shapes)) if self.gap(i, new) < 0]
        for i in blocked:
            if i not in self.touched:
                self.touched.add(i)
                events.append(('touch', i))
        if not self._inside_walls(x, y):
            self.wall_hits += 1
            events.append(('wall',))
            blocked.append(-1)
        if blocked:
            new = Pose(p.x, p.y, new.theta)
        self.pose = new
        self.time += dt
        self.path.append((new.x, new.y))
        for i in range(len(self.shapes)):
            if i not in self.reached and self.gap(i) <= REACH_DISTANCE:
                self.reached.add(i)
                events.append(('reach', i))
        return events

    glide = step   # World3D.glide moves without contact physics; 2D motion has none


def _place(rng: np.random.Generator, kinds) -> list:
    """Shapes of `kinds` at random non-crowding positions, or [] if one did not fit."""
    shapes = []
    for shape, color in kinds:
        for _ in range(200):
            size = float(rng.uniform(*SHAPE_SIZES))
            x, y = rng.uniform(WALL_MARGIN, ARENA_SIZE - WALL_MARGIN, size=2)
            if all(math.hypot(x - s.x, y - s.y) >= size / 2 + s.radius + SHAPE_GAP
                   for s in shapes):
                shapes.append(Shape(shape, color, float(x), float(y), size,
                                    aspect=float(rng.uniform(0.55, 1.0)),
                                    wide=bool(rng.random() < 0.5)))
                break
        else:
            return []
    return shapes


def _distinct_kinds(rng: np.random.Generator, n: int):
    """n distinct (shape, colour) pairs; the first is the target."""
    target = (SHAPES[rng.integers(len(SHAPES))], COLOR_NAMES[rng.integers(len(COLOR_NAMES))])
    kinds = [target]
    while len(kinds) < n:
        shape = SHAPES[rng.integers(len(SHAPES))]
        color = COLOR_NAMES[rng.integers(len(COLOR_NAMES))]
        r = rng.random()
        if r < 1 / 3:        # same colour, another shape
            color = target[1]
        elif r < 2 / 3:      # same shape, another colour
            shape = target[0]
        if (shape, color) not in kinds:
            kinds.append((shape, color))
    return kinds
