"""The 3D arena as a simulation: MuJoCo physics, a robot camera, the 2D World's interface.

`World3D` answers what the 2D `vla_ros.sim.world.World` answers (shapes, pose, target,
dt, time, step -> events, gap, ego, bearing, find, random_free_pose), so the privileged
expert, demonstrations and sim-eval can drive it, and adds what a camera world has:
`render()` (the robot's RGB camera), `camera_info()` (its intrinsics and frames),
`visible_objects()` (objects really seen: a segmentation render, so occluded and
out-of-view objects do not count) and `overview()` (a view for people).

Layouts come from the 2D world (`World.random(seed)`: its spacing rules, its target and
look-alike distractors, its determinism), lifted to 3D solids (scene.py), with some
distractors turned into cylinders, sizes jittered and clutter put against the walls.

Collisions are MuJoCo's contacts: only the robot's cylinder can collide, with objects,
clutter and walls, so any contact is a bump. 'touch' is reported the first time per
object, 'wall' on every step in contact with a wall (as in 2D).

Importing this module sets ``MUJOCO_GL=egl`` unless already set (headless rendering;
see the package docstring; rendering.py honours it even if mujoco was imported first). The render
context is made on the first render and freed by `close()` (rendering.py shares one
GL context between all worlds). A World3D is not thread-safe.
"""
import math
import os

os.environ.setdefault('MUJOCO_GL', 'egl')   # before `import mujoco`: headless EGL rendering

from typing import Optional  # noqa: E402

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from ..sim.world import (ARENA_SIZE, DT, MAX_ANGULAR, MAX_LINEAR, Pose,  # noqa: E402
                         REACH_DISTANCE, ROBOT_RADIUS, START_CLEARANCE, World, wrap_angle)
from .scene import (build_model, CAMERA_FORWARD, CAMERA_FOVY, CLUTTER,  # noqa: E402
                    default_height, MARKER_GROUP, Object3D, SHAPE_FROM_VOCAB, TIMESTEP)
from .rendering import SceneRenderer  # noqa: E402
from .styles import add_sensor_noise, object_scales, sample_style, Style  # noqa: E402

OBJECT_COUNTS = (3, 8)          # palette objects per episode: the target and 2..7 distractors
CYLINDER_PROBABILITY = 0.25     # a distractor becomes a cylinder (the 4th shape) this often
CLUTTER_COUNTS = (0, 3)         # clutter items per episode
CLUTTER_SIZES = {'crate': (0.3, 0.5), 'plant': (0.3, 0.45), 'bin': (0.25, 0.35)}   # m
CLUTTER_GAP = 0.45              # m between clutter and any footprint: the robot passes
FRAME_IDS = {'base': 'base_link', 'camera': 'camera_link', 'optical': 'camera_optical_frame'}
# camera_link (x forward, y left, z up) -> optical (z forward, x right, y down), as x y z w
OPTICAL_QUATERNION = (-0.5, 0.5, -0.5, 0.5)
_FLIP = np.diag([1.0, -1.0, -1.0])   # MuJoCo camera axes (x right, y up, z back) -> optical


def lift_shapes(rng: np.random.Generator, shapes, cylinder_targets: bool = False) -> list:
    """2D layout shapes -> Object3D solids at the same places (footprints never grow).

    shapes[0] is the target; it stays a vocabulary shape unless cylinder_targets, so
    today's instruction language can name it.
    """
    footprint, heights = object_scales(rng, len(shapes))
    yaws = rng.uniform(0, math.pi / 2, size=len(shapes))
    cylinder = rng.random(len(shapes)) < CYLINDER_PROBABILITY
    taken = {(SHAPE_FROM_VOCAB[s.shape], s.color) for s in shapes}
    out = []
    for i, s in enumerate(shapes):
        shape = SHAPE_FROM_VOCAB[s.shape]
        if cylinder[i] and (i > 0 or cylinder_targets) and ('cylinder', s.color) not in taken:
            taken.add(('cylinder', s.color))
            shape = 'cylinder'
        size = s.size * float(footprint[i])
        out.append(Object3D(shape, s.color, s.x, s.y, size,
                            default_height(shape, size, float(heights[i])), float(yaws[i])))
    return out


def place_clutter(rng: np.random.Generator, objects, n: Optional[int] = None,
                  arena: float = ARENA_SIZE) -> list:
    """Up to n clutter items standing against the walls, CLUTTER_GAP clear of everything."""
    n = int(rng.integers(CLUTTER_COUNTS[0], CLUTTER_COUNTS[1] + 1) if n is None else n)
    kinds = sorted(CLUTTER)
    placed = []
    for _ in range(n):
        kind = kinds[rng.integers(len(kinds))]
        size = float(rng.uniform(*CLUTTER_SIZES[kind]))
        r = size / 2
        for _ in range(50):
            along = rng.uniform(r + 0.05, arena - r - 0.05)
            wall = int(rng.integers(4))   # 0: y=0, 1: y=arena, 2: x=0, 3: x=arena
            off = r + 0.02 if wall in (0, 2) else arena - r - 0.02
            x, y = (along, off) if wall < 2 else (off, along)
            if all(math.hypot(x - o.x, y - o.y) - r - o.radius >= CLUTTER_GAP
                   for o in list(objects) + placed):
                placed.append(Object3D(kind, CLUTTER[kind][0], float(x), float(y), size,
                                       default_height(kind, size, float(rng.uniform(0.8, 1.2))),
                                       float(rng.uniform(0, math.pi / 2)), clutter=True))
                break
    return placed


class World3D:
    """A MuJoCo arena with a differential-drive robot and its forward camera."""

    def __init__(self, shapes, pose: Pose, style: Style = Style(), target: Optional[int] = 0,
                 dt: float = DT, seed: Optional[int] = None, arena: float = ARENA_SIZE):
        self.shapes = list(shapes)          # Object3D: palette objects, then clutter
        self.style, self.dt, self.arena, self.seed = style, dt, arena, seed
        self.time, self.wall_hits = 0.0, 0
        self.touched, self.reached = set(), set()
        self.model = build_model(self.shapes, style, target, arena)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._qpos = [m.jnt_qposadr[m.joint(j).id] for j in ('x', 'y', 'yaw')]
        self._act = [m.actuator(a).id for a in ('forward', 'lateral', 'turn')]
        self._robot_geom = m.geom('robot').id
        self._walls = {m.geom(f'wall_{k}').id for k in range(4)}
        body_object = np.full(m.nbody, -1)
        for i in range(len(self.shapes)):
            body_object[m.body(f'object_{i}').id] = i
        self._geom_object = body_object[m.geom_bodyid]   # (ngeom,) object index or -1
        self._marker = m.geom('target_marker').id
        self._substeps = max(1, round(dt / TIMESTEP))
        self._scene_renderer = None   # made on the first render
        self._noise_rng = np.random.default_rng([0 if seed is None else seed, 7])
        self._robot_view = mujoco.MjvOption()
        self._robot_view.geomgroup[MARKER_GROUP] = 0
        self._people_view = mujoco.MjvOption()
        self._people_view.geomgroup[MARKER_GROUP] = 1   # groups 3-5 are hidden by default
        self.target = target
        self.pose = pose
        self.path = [(self.pose.x, self.pose.y)]

    # -- episode generation --------------------------------------------------------------------
    @classmethod
    def random(cls, seed: int, n_objects: Optional[int] = None, style: Optional[Style] = None,
               held_out_style: bool = False, n_clutter: Optional[int] = None,
               cylinder_targets: bool = False, dt: float = DT) -> 'World3D':
        """The 3D arena of episode `seed`: shapes[0] is the target.

        The layout (and so the target and its look-alikes) is 2D World.random's with
        `n_objects` palette objects (default: 3-8), then `n_clutter` clutter items
        (default: 0-3) at the end of `shapes`. The style (default: drawn, training or
        held-out) comes from its own stream, so a seed has the same layout in training
        and held-out styles. The target is a cylinder only with cylinder_targets: the
        instruction language has no word for one yet.
        """
        rng = np.random.default_rng([seed, 3])
        n = int(n_objects or rng.integers(OBJECT_COUNTS[0], OBJECT_COUNTS[1] + 1))
        base = World.random(seed, n_shapes=n, dt=dt)
        if style is None:
            style = sample_style(np.random.default_rng([seed, 4]), held_out=held_out_style)
        objects = lift_shapes(rng, base.shapes, cylinder_targets)
        objects += place_clutter(rng, objects, n_clutter)
        world = cls(objects, base.pose, style, target=0, dt=dt, seed=seed)
        if min(world.gap(i) for i in range(len(objects))) < START_CLEARANCE:
            world.pose = world.random_free_pose(rng)   # the 2D start was too near clutter
            world.path = [(world.pose.x, world.pose.y)]
        return world

    def random_free_pose(self, rng: np.random.Generator, clearance: float = START_CLEARANCE,
                         near: Optional[int] = None, max_dist: float = 0.0) -> Pose:
        """A pose clear of walls, objects and clutter (the 2D World's rule, reused)."""
        return World.random_free_pose(self, rng, clearance, near, max_dist)

    # -- state ---------------------------------------------------------------------------------
    @property
    def pose(self) -> Pose:
        """The robot's (x, y, theta) on the floor, theta in (-pi, pi]."""
        q = self.data.qpos
        return Pose(float(q[self._qpos[0]]), float(q[self._qpos[1]]),
                    wrap_angle(float(q[self._qpos[2]])))

    @pose.setter
    def pose(self, pose: Pose):
        """Place the robot at rest (teleport: no contacts are checked on the way)."""
        self.data.qpos[self._qpos] = (pose.x, pose.y, pose.theta)
        self.data.qvel[:] = 0.0
        self.data.ctrl[:] = 0.0
        mujoco.mj_forward(self.model, self.data)

    @property
    def target(self) -> Optional[int]:
        return self._target

    @target.setter
    def target(self, i: Optional[int]):
        """Index of the episode's target; moves the overview's ring under it."""
        self._target = i
        m = self.model
        if i is None:
            m.geom_rgba[self._marker, 3] = 0.0
            return
        o = self.shapes[i]
        m.geom_pos[self._marker, :2] = o.x, o.y
        m.geom_size[self._marker, 0] = o.radius + ROBOT_RADIUS + 0.3
        m.geom_rgba[self._marker, 3] = 0.45

    @property
    def objects(self) -> list:
        """Indices of palette objects (targets and distractors), clutter left out."""
        return [i for i, s in enumerate(self.shapes) if not s.clutter]

    # -- geometry: the 2D World's (footprints are circles; it reads only pose and shapes) ----
    gap = World.gap
    ego = World.ego
    bearing = World.bearing

    def find(self, color: str, shape: str) -> Optional[int]:
        """Index of the palette object of this colour and shape (3D name or vocabulary word)."""
        shape = SHAPE_FROM_VOCAB.get(shape, shape)
        for i, s in enumerate(self.shapes):
            if not s.clutter and (s.color, s.shape) == (color, shape):
                return i
        return None

    def find_beside(self, color: Optional[str], shape: str, side: str, anchor_color: str,
                    anchor_shape: str) -> int:
        """Index of the only `[color] shape` left / right of the anchor in the camera's view
        now (relations.find_beside; raises LookupError with the reason)."""
        from .captions import observe
        from .relations import find_beside
        return find_beside(observe(self), color, SHAPE_FROM_VOCAB.get(shape, shape), side,
                           anchor_color, SHAPE_FROM_VOCAB.get(anchor_shape, anchor_shape))

    def in_view(self, i: int, aspect: float = 1.0) -> bool:
        """Whether object i lies within the camera's horizontal field of view (ignores
        occlusion and height; visible_objects() is the ground truth)."""
        forward, left = self.ego(i)
        forward -= CAMERA_FORWARD
        d = math.hypot(forward, left)
        if forward <= 0 or d <= self.shapes[i].radius:
            return d <= self.shapes[i].radius
        half = self.view_half_angle(aspect)
        return abs(math.atan2(left, forward)) - math.asin(self.shapes[i].radius / d) < half

    @staticmethod
    def view_half_angle(aspect: float = 1.0) -> float:
        """Half the camera's horizontal field of view (rad) for images of this aspect
        (width / height; the vertical field of view is CAMERA_FOVY at any size)."""
        return math.atan(aspect * math.tan(math.radians(CAMERA_FOVY) / 2))

    def image_point(self, i: int, width: int = 96, height: int = 96):
        """Where the centre of object i's solid (x, y, height / 2) projects in a width x
        height camera image: (u, v) as fractions of the width and height (0, 0 the top-left
        corner, as the captions' mask centroids), outside [0, 1] when it falls beside the
        image; None when it is not in front of the camera. Ignores occlusion."""
        position, rotation = self.camera_pose()
        point = rotation.T @ (np.asarray(self.shapes[i].centre, float) - position)  # optical
        if point[2] <= 1e-6:
            return None
        u, v = (self.camera_info(width, height)['K'] @ point)[:2] / point[2]
        return (float(u) + 0.5) / width, (float(v) + 0.5) / height   # pixel centres at +0.5

    # -- motion --------------------------------------------------------------------------------
    def step(self, linear: float, angular: float) -> list:
        """Drive for one `dt` at (linear m/s, angular rad/s), clamped to the robot's limits.

        Non-finite commands count as 0. Returns events like World.step: ('touch', i) the
        first time the robot's geom contacts object i, ('wall',) on a step with a wall
        contact, ('reach', i) the first time within REACH_DISTANCE of object i.
        """
        v = float(np.clip(linear, -MAX_LINEAR, MAX_LINEAR)) if math.isfinite(linear) else 0.0
        w = float(np.clip(angular, -MAX_ANGULAR, MAX_ANGULAR)) if math.isfinite(angular) else 0.0
        m, d = self.model, self.data
        before = self.pose
        d.ctrl[self._act] = (v, 0.0, w)
        hit = set()
        for _ in range(self._substeps):
            mujoco.mj_step(m, d)
            if d.ncon:   # only the robot collides, so every contact is the robot's
                c = d.contact
                hit.update(c.geom1[:d.ncon].tolist())
                hit.update(c.geom2[:d.ncon].tolist())
        if not (np.isfinite(d.qpos).all() and np.isfinite(d.qvel).all()):
            self.pose = before   # never expected; keeps the episode sane if it happens
        hit.discard(self._robot_geom)
        events = []
        for i in sorted({int(self._geom_object[g]) for g in hit} - {-1}):
            if i not in self.touched:
                self.touched.add(i)
                events.append(('touch', i))
        if hit & self._walls:
            self.wall_hits += 1
            events.append(('wall',))
        self.time += self.dt
        p = self.pose
        self.path.append((p.x, p.y))
        for i in range(len(self.shapes)):
            if i not in self.reached and self.gap(i, p) <= REACH_DISTANCE:
                self.reached.add(i)
                events.append(('reach', i))
        return events

    def glide(self, linear: float, angular: float) -> list:
        """step() without the physics, for sampling states fast (demonstration rollouts):
        the 2D World's exact unicycle motion, the robot placed at each new pose, a move
        that would overlap a footprint (circle, as gap()) or a wall not made. Events as
        World.step's: contacts are footprint overlaps here, not MuJoCo's."""
        return World.step(self, linear, angular)

    _inside_walls = World._inside_walls   # (glide's wall test)

    # -- camera --------------------------------------------------------------------------------
    def _renderer(self) -> SceneRenderer:
        if self._scene_renderer is None:
            self._scene_renderer = SceneRenderer(self.model)
        return self._scene_renderer

    def render(self, width: int = 96, height: int = 96, noise: bool = True) -> np.ndarray:
        """The robot camera's image, (height, width, 3) uint8 RGB, with the style's
        sensor noise unless noise=False."""
        image = self._renderer().render(self.data, 'camera', width, height, self._robot_view)
        if noise and self.style.noise_std > 0:
            image = add_sensor_noise(image, self.style.noise_std, self._noise_rng)
        return image

    def segmentation(self, width: int = 96, height: int = 96) -> np.ndarray:
        """(height, width) int: the index of the object seen at each pixel, -1 for
        anything else (floor, walls, sky, the robot)."""
        geoms = self._renderer().render(self.data, 'camera', width, height, self._robot_view,
                                        segmentation=True)
        return np.where(geoms >= 0, self._geom_object[np.maximum(geoms, 0)], -1)

    def visible_objects(self, min_pixels: int = 4, width: int = 96, height: int = 96,
                        include_clutter: bool = False) -> list:
        """Indices of objects covering at least `min_pixels` pixels of the camera image
        (palette objects only unless include_clutter), nearest-first order not implied."""
        counts = np.bincount(self.segmentation(width, height).ravel() + 1,
                             minlength=len(self.shapes) + 1)[1:]
        return [i for i, n in enumerate(counts)
                if n >= min_pixels and (include_clutter or not self.shapes[i].clutter)]

    def camera_info(self, width: int = 96, height: int = 96) -> dict:
        """Intrinsics and frames of the robot camera at this image size.

        Pinhole, no distortion, square pixels: fx = fy = (height/2) / tan(fovy/2) and the
        principal point at the image centre, in the ROS / OpenCV convention where pixel
        (u, v) = (0, 0) is the *centre* of the top-left pixel, so cx = (width - 1) / 2.
        Transforms are (translation xyz m, quaternion xyzw) parent -> child.
        """
        f = (height / 2) / math.tan(math.radians(CAMERA_FOVY) / 2)
        cx, cy = (width - 1) / 2, (height - 1) / 2
        p = math.radians(self.style.camera_pitch)
        return {
            'width': int(width), 'height': int(height),
            'K': np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]]),
            'P': np.array([[f, 0, cx, 0], [0, f, cy, 0], [0, 0, 1, 0]]),
            'D': np.zeros(5), 'distortion_model': 'plumb_bob',
            'fovy_deg': CAMERA_FOVY,
            'frame_id': FRAME_IDS['optical'], 'frames': dict(FRAME_IDS),
            # base_link -> camera_link: ahead and up, pitched down by `pitch` about y
            'base_to_camera': ((CAMERA_FORWARD, 0.0, self.style.camera_height),
                               (0.0, math.sin(p / 2), 0.0, math.cos(p / 2))),
            'camera_to_optical': ((0.0, 0.0, 0.0), OPTICAL_QUATERNION),
        }

    def camera_pose(self):
        """The optical frame in the world: (position (3,) m, rotation (3, 3) whose columns
        are the optical x right, y down, z forward axes), from MuJoCo's camera."""
        cam = self.model.camera('camera').id
        rot = self.data.cam_xmat[cam].reshape(3, 3) @ _FLIP
        return self.data.cam_xpos[cam].copy(), rot

    def overview(self, size: int = 480, view: str = 'top') -> np.ndarray:
        """A picture for people, (size, size, 3) uint8: 'top' (the whole arena from
        above) or 'chase' (behind the robot); the target has a ring on the floor."""
        if view not in ('top', 'chase'):
            raise ValueError(f"view must be 'top' or 'chase', got {view!r}")
        return self._renderer().render(self.data, 'overview' if view == 'top' else 'chase',
                                       size, size, self._people_view)

    def close(self):
        """Free the render context; the world can still step, and render again later."""
        if self._scene_renderer is not None:
            self._scene_renderer.close()
            self._scene_renderer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
