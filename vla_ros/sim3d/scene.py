"""MJCF model of the 3D arena: floor, walls, objects, clutter and the robot with its camera.

Frames: world x/y on the floor (the 2D arena's coordinates, metres, [0, ARENA_SIZE]^2),
z up. The robot's body `base_link` sits at floor level in the robot's centre, x forward,
y left, z up (REP 103); its yaw is `theta` of the 2D world.

Objects keep the 2D layout's footprint (a circle of radius size/2, what `gap()` measures)
and fill it in 3D; every solid fits inside its footprint circle, so a footprint gap > 0
means the geoms do not touch:

    vocabulary word   3D shape   solid
    circle            sphere     diameter = footprint
    rectangle         cube       side = footprint / sqrt(2) (corners on the circle)
    triangle          pyramid    square base like the cube's, apex height jittered
    (none yet)        cylinder   a column: diameter = the cube's side, height 1.2 x
                                 footprint, jittered

A cylinder as wide as it is tall would show the robot's camera, which looks along the
floor from 25-40 cm up, the same square silhouette as a cube (its round top is barely in
view), and only faint shading tells them apart: the shape probe confused the two most
(model card, "The sixth 3D run"). As a column (height 1.4-2.1 x its width) its silhouette
is its own.

Clutter (crates, potted plants, bins) is in colours outside the palette: an obstacle,
never a target.

The robot drives on planar joints (slide x, slide y, hinge yaw) pushed by velocity
actuators: `forward` and `lateral` act through a site in the robot's frame, so a
forward command is a body-frame velocity with no per-step frame rotation in Python,
and `lateral` (always commanded 0) plays the wheels' side grip: a differential drive's
motion without wheel/floor friction tuning. Its collision cylinder touches only objects
and walls (contype/conaffinity bits), so every contact the solver reports is a bump.
"""
import math
import os

os.environ.setdefault('MUJOCO_GL', 'egl')   # before `import mujoco`: headless EGL rendering

from dataclasses import dataclass  # noqa: E402
from typing import Optional, Sequence  # noqa: E402

import mujoco  # noqa: E402

from ..data.vocabulary import COLORS  # noqa: E402
from ..sim.world import ARENA_SIZE, ROBOT_RADIUS  # noqa: E402
from .styles import Style, Texture  # noqa: E402

SHAPES_3D = ('sphere', 'cube', 'cylinder', 'pyramid')
CYLINDER_HEIGHT = 1.2        # x footprint: a column, not a drum (module docstring)
VOCAB_SHAPE = {'sphere': 'circle', 'cube': 'rectangle', 'pyramid': 'triangle', 'cylinder': None}
SHAPE_FROM_VOCAB = {word: shape for shape, word in VOCAB_SHAPE.items() if word}
CLUTTER = {   # kind -> (material name, RGB in [0, 1]); none of them is a palette colour
    'crate': ('wood', (0.62, 0.46, 0.27)),
    'plant': ('foliage', (0.30, 0.42, 0.18)),
    'bin': ('cream', (0.90, 0.88, 0.80)),
}
POT_RGB = (0.35, 0.27, 0.22)

WALL_HEIGHT = 0.6         # m
WALL_THICKNESS = 0.1      # m
CHASSIS_Z = (0.04, 0.22)  # m, bottom and top of the robot's collision cylinder
CAMERA_FORWARD = 0.12     # m ahead of the robot's centre (inside its radius)
CAMERA_FOVY = 80.0        # degrees, vertical field of view of the robot's camera
OVERVIEW_HEIGHT = 5.4     # m, top-down overview camera above the arena centre
TIMESTEP = 0.005          # s, physics step
ROBOT_MASS = 10.0         # kg
KV_LINEAR = 1000.0        # N per m/s: velocity loop time constant mass / kv = 10 ms
KV_ANGULAR = 12.0         # N m per rad/s: inertia 0.12 / kv = 10 ms
FORCE_LIMIT = 150.0       # N the drive can push with (against an obstacle)
TORQUE_LIMIT = 20.0       # N m
# Texels of the shadow map. 256 left shadow acne (stripes across lit faces, jagged shadow
# edges); 1024 removes most of it at about twice the render time of a shadowed frame;
# MuJoCo's default 4096 costs ~10x more. Only shadowed styles pay (styles.py).
SHADOW_SIZE = 1024
MAX_RENDER = 640          # px, largest image side any renderer may ask for
MARKER_GROUP = 4          # geom group of the overview's target marker (hidden on the robot)


@dataclass(frozen=True)
class Object3D:
    """A solid standing on the floor; footprint and (x, y) as in the 2D layout."""
    shape: str            # one of SHAPES_3D, or a CLUTTER kind
    color: str            # palette colour name, or the clutter's material name
    x: float              # m, centre of the footprint
    y: float
    size: float           # m, footprint diameter (2D Shape.size)
    height: float         # m, top above the floor
    yaw: float = 0.0      # rad, rotation about z (cubes, pyramids, crates)
    clutter: bool = False

    @property
    def radius(self) -> float:
        return self.size / 2

    @property
    def name(self) -> str:
        return f'{self.color} {self.shape}'

    @property
    def word(self) -> Optional[str]:
        """The model vocabulary's shape word (vocabulary.SHAPES), None if it has none."""
        return None if self.clutter else VOCAB_SHAPE[self.shape]

    @property
    def centre(self):
        """(x, y, z) of the solid's middle, m."""
        return self.x, self.y, self.height / 2


def default_height(shape: str, size: float, scale: float = 1.0) -> float:
    """Height (m) of a solid of footprint `size`; `scale` jitters the free ones."""
    if shape == 'sphere':
        return size
    if shape == 'cube':
        return size / math.sqrt(2)
    if shape == 'cylinder':
        return CYLINDER_HEIGHT * size * scale
    if shape == 'pyramid':
        return size * scale
    if shape == 'crate':
        return 0.5 * size * scale + 0.1
    return 0.45 * scale   # plant, bin


def _v(*values) -> str:
    return ' '.join(f'{v:.6g}' for v in values)


def _texture_xml(name: str, t: Texture) -> str:
    return (f'<texture name="{name}" type="2d" builtin="{t.builtin}" rgb1="{_v(*t.rgb1)}" '
            f'rgb2="{_v(*t.rgb2)}" mark="{t.mark}" markrgb="{_v(*t.markrgb)}" '
            f'random="{t.random:.4g}" width="128" height="128"/>\n'
            f'<material name="{name}" texture="{name}" texuniform="true" '
            f'texrepeat="{_v(t.repeat, t.repeat)}" specular="0.1" reflectance="0"/>')


def _pyramid_mesh(name: str, obj: Object3D) -> str:
    s = obj.radius / math.sqrt(2)   # half-side: base corners on the footprint circle
    verts = [(-s, -s, 0), (s, -s, 0), (s, s, 0), (-s, s, 0), (0, 0, obj.height)]
    return f'<mesh name="{name}" vertex="{_v(*[c for p in verts for c in p])}"/>'


def _solid_xml(i: int, obj: Object3D) -> str:
    """The geoms of object i (in its own static body, so geom -> object is geom_bodyid)."""
    r, h = obj.radius, obj.height
    collide = 'contype="0" conaffinity="1"'
    if obj.clutter:
        rgba = _v(*CLUTTER[obj.shape][1], 1)
    else:
        rgba = _v(*(c / 255 for c in COLORS[obj.color]), 1)
    if obj.shape == 'sphere':
        geoms = f'<geom type="sphere" size="{r:.6g}" pos="0 0 {r:.6g}" rgba="{rgba}" {collide}/>'
    elif obj.shape in ('cube', 'crate'):
        s = r / math.sqrt(2)
        geoms = (f'<geom type="box" size="{_v(s, s, h / 2)}" pos="0 0 {h / 2:.6g}" '
                 f'rgba="{rgba}" {collide}/>')
    elif obj.shape in ('cylinder', 'bin'):
        rc = r / math.sqrt(2) if obj.shape == 'cylinder' else r   # a column (docstring)
        geoms = (f'<geom type="cylinder" size="{_v(rc, h / 2)}" pos="0 0 {h / 2:.6g}" '
                 f'rgba="{rgba}" {collide}/>')
    elif obj.shape == 'pyramid':
        geoms = f'<geom type="mesh" mesh="pyramid_{i}" rgba="{rgba}" {collide}/>'
    elif obj.shape == 'plant':   # a pot with a ball of foliage on top
        pot = 0.2
        leaves = min(r, (h - pot) / 2 + 0.05)
        geoms = (f'<geom type="cylinder" size="{_v(0.6 * r, pot / 2)}" pos="0 0 {pot / 2:.6g}" '
                 f'rgba="{_v(*POT_RGB, 1)}" {collide}/>'
                 f'<geom type="sphere" size="{leaves:.6g}" pos="0 0 {h - leaves:.6g}" '
                 f'rgba="{rgba}" {collide}/>')
    else:
        raise ValueError(f"unknown object shape '{obj.shape}'")
    return (f'<body name="object_{i}" pos="{_v(obj.x, obj.y, 0)}" euler="0 0 {obj.yaw:.6g}">'
            f'{geoms}</body>')


def _walls_xml(a: float) -> str:
    t, h = WALL_THICKNESS, WALL_HEIGHT
    boxes = [((a / 2, -t / 2), (a / 2 + t, t / 2)), ((a / 2, a + t / 2), (a / 2 + t, t / 2)),
             ((-t / 2, a / 2), (t / 2, a / 2)), ((a + t / 2, a / 2), (t / 2, a / 2))]
    return '\n'.join(
        f'<geom name="wall_{k}" type="box" size="{_v(sx, sy, h / 2)}" pos="{_v(x, y, h / 2)}" '
        f'material="wall" contype="0" conaffinity="1"/>'
        for k, ((x, y), (sx, sy)) in enumerate(boxes))


def _robot_xml(style: Style) -> str:
    """base_link: planar joints, collision cylinder, visual wheels and mast, cameras."""
    z0, z1 = CHASSIS_Z
    h, p = style.camera_height, math.radians(style.camera_pitch)
    visual = 'contype="0" conaffinity="0" group="1"'
    mast = (h - z1) / 2
    return f"""
<body name="base_link">
  <joint name="x" type="slide" axis="1 0 0"/>
  <joint name="y" type="slide" axis="0 1 0"/>
  <joint name="yaw" type="hinge" axis="0 0 1"/>
  <inertial pos="0 0 {(z0 + z1) / 2:.6g}" mass="{ROBOT_MASS}" diaginertia="0.1 0.1 0.12"/>
  <geom name="robot" type="cylinder" size="{_v(ROBOT_RADIUS, (z1 - z0) / 2)}"
        pos="0 0 {(z0 + z1) / 2:.6g}" rgba="0.25 0.27 0.30 1" contype="1" conaffinity="0"/>
  <geom type="cylinder" size="0.06 0.015" pos="0 0.155 0.06" euler="1.5708 0 0"
        rgba="0.05 0.05 0.05 1" {visual}/>
  <geom type="cylinder" size="0.06 0.015" pos="0 -0.155 0.06" euler="1.5708 0 0"
        rgba="0.05 0.05 0.05 1" {visual}/>
  <geom type="box" size="{_v(0.015, 0.015, max(mast, 0.005))}"
        pos="{_v(CAMERA_FORWARD - 0.04, 0, z1 + mast)}" rgba="0.2 0.2 0.2 1" {visual}/>
  <geom type="box" size="0.02 0.035 0.02" pos="{_v(CAMERA_FORWARD - 0.025, 0, h)}"
        rgba="0.1 0.1 0.1 1" {visual}/>
  <site name="drive" pos="0 0 {(z0 + z1) / 2:.6g}"/>
  <camera name="camera" pos="{_v(CAMERA_FORWARD, 0, h)}"
          xyaxes="{_v(0, -1, 0, math.sin(p), 0, math.cos(p))}" fovy="{CAMERA_FOVY}"/>
  <camera name="chase" pos="-1.6 0 1.1" xyaxes="0 -1 0 0.5 0 0.866" fovy="60"/>
</body>"""


def build_mjcf(objects: Sequence[Object3D], style: Style, target: Optional[int] = None,
               arena: float = ARENA_SIZE) -> str:
    """The MJCF text of an arena with these objects, in this style.

    `target` (an index into objects) gets a translucent disc on the floor, the geom
    `target_marker` in group MARKER_GROUP: visible in the overview, hidden from the
    robot's camera.
    """
    meshes = '\n'.join(_pyramid_mesh(f'pyramid_{i}', o) for i, o in enumerate(objects)
                       if o.shape == 'pyramid')
    bodies = '\n'.join(_solid_xml(i, o) for i, o in enumerate(objects))
    # Always present (World3D moves it when the target changes); invisible without a target.
    o = objects[target] if target is not None else None
    marker = (f'<geom name="target_marker" type="cylinder" '
              f'size="{_v((o.radius if o else 0) + ROBOT_RADIUS + 0.3, 0.002)}" '
              f'pos="{_v(o.x if o else 0, o.y if o else 0, 0.003)}" '
              f'rgba="0.9 0.3 0.8 {0.45 if o else 0}" group="{MARKER_GROUP}" '
              f'contype="0" conaffinity="0"/>')
    d = style.light_dir
    n = math.sqrt(sum(c * c for c in d)) or 1.0
    light_pos = _v(arena / 2 - 6 * d[0] / n, arena / 2 - 6 * d[1] / n, -6 * d[2] / n)
    hl = style.headlight
    return f"""<mujoco model="vla_arena3d">
<compiler angle="radian" autolimits="true"/>
<option timestep="{TIMESTEP}" integrator="implicitfast"/>
<statistic center="{_v(arena / 2, arena / 2, 0.3)}" extent="{arena * 0.8:.6g}"/>
<visual>
  <global offwidth="{MAX_RENDER}" offheight="{MAX_RENDER}"/>
  <quality shadowsize="{SHADOW_SIZE}" offsamples="0"/>
  <headlight ambient="0 0 0" diffuse="{_v(hl, hl, hl)}" specular="0 0 0"/>
  <map znear="0.005" zfar="3"/>
</visual>
<asset>
{_texture_xml('floor', style.floor)}
{_texture_xml('wall', style.wall)}
<texture name="sky" type="skybox" builtin="gradient" rgb1="{_v(*style.sky[0])}"
         rgb2="{_v(*style.sky[1])}" width="64" height="64"/>
{meshes}
</asset>
<worldbody>
<light name="sun" directional="true" dir="{_v(*d)}" pos="{light_pos}"
       diffuse="{_v(*style.light_diffuse)}" ambient="{_v(*style.light_ambient)}"
       specular="{_v(*style.light_specular)}" castshadow="{str(style.shadows).lower()}"/>
<geom name="floor" type="plane" size="{_v(*[arena / 2 + WALL_THICKNESS] * 2, 0.1)}"
      pos="{_v(arena / 2, arena / 2, 0)}" material="floor" contype="0" conaffinity="0"/>
{_walls_xml(arena)}
{marker}
<camera name="overview" pos="{_v(arena / 2, arena / 2, OVERVIEW_HEIGHT)}"
        xyaxes="1 0 0 0 1 0" fovy="60"/>
{bodies}
{_robot_xml(style)}
</worldbody>
<actuator>
  <velocity name="forward" site="drive" gear="1 0 0 0 0 0" kv="{KV_LINEAR}"
            forcerange="{_v(-FORCE_LIMIT, FORCE_LIMIT)}"/>
  <velocity name="lateral" site="drive" gear="0 1 0 0 0 0" kv="{KV_LINEAR}"
            forcerange="{_v(-FORCE_LIMIT, FORCE_LIMIT)}"/>
  <velocity name="turn" joint="yaw" kv="{KV_ANGULAR}"
            forcerange="{_v(-TORQUE_LIMIT, TORQUE_LIMIT)}"/>
</actuator>
</mujoco>"""


def build_model(objects: Sequence[Object3D], style: Style, target: Optional[int] = None,
                arena: float = ARENA_SIZE) -> mujoco.MjModel:
    """Compiled MuJoCo model of build_mjcf's arena."""
    return mujoco.MjModel.from_xml_string(build_mjcf(objects, style, target, arena))
