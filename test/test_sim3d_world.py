"""The 3D arena (MuJoCo): determinism, camera geometry, contacts, commands, what is seen,
styles, and the 2D world's expert driving in it. Renders headless through EGL."""
import math

import numpy as np
import pytest

pytest.importorskip('mujoco')

from vla_ros.sim.expert import expert_action, FACE_TOLERANCE  # noqa: E402
from vla_ros.control.instructions import ground, parse_instruction  # noqa: E402
from vla_ros.sim.world import (MAX_ANGULAR, MAX_LINEAR, Pose, REACH_DISTANCE,  # noqa: E402
                               ROBOT_RADIUS, World)
from vla_ros.sim3d.scene import default_height, Object3D, SHAPES_3D  # noqa: E402
from vla_ros.sim3d.styles import (HELD_OUT_STYLES, held_out_style, sample_style,  # noqa: E402
                                  Style)
from vla_ros.sim3d.world3d import OBJECT_COUNTS, World3D  # noqa: E402

CLEAN = Style(noise_std=0.0)


def sphere(color, x, y, d=0.1):
    return Object3D('sphere', color, x, y, d, d)


def cube(color, x, y, side=0.4):
    """A cube of this side (its footprint circle passes through the corners)."""
    return Object3D('cube', color, x, y, side * math.sqrt(2), side)


@pytest.fixture
def make_world():
    worlds = []

    def make(shapes, pose, style=CLEAN, target=None):
        worlds.append(World3D(shapes, pose, style, target=target))
        return worlds[-1]
    yield make
    for w in worlds:
        w.close()


def _quat(q):
    """(x, y, z, w) quaternion -> 3x3 rotation matrix."""
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def test_same_seed_same_world_frames_and_motion():
    a, b = World3D.random(11), World3D.random(11)
    try:
        assert a.shapes == b.shapes and a.style == b.style and a.pose == b.pose
        assert np.array_equal(a.render(), b.render())   # sensor noise included
        commands = [(0.5, 0.0)] * 15 + [(0.2, 1.5)] * 10 + [(float('nan'), -0.7)] * 5
        events = [(a.step(*c), b.step(*c)) for c in commands]
        assert all(ea == eb for ea, eb in events)
        assert np.array_equal(a.data.qpos, b.data.qpos) and a.time == b.time
        assert np.array_equal(a.render(), b.render())
        other = World3D.random(12)
        assert other.shapes != a.shapes
        other.close()
    finally:
        a.close()
        b.close()


def test_layout_is_the_2d_arena_lifted():
    kinds = set()
    for seed in range(12):
        flat, w = World.random(seed, n_shapes=5), World3D.random(seed, n_objects=5)
        assert [(s.x, s.y, s.color) for s in flat.shapes] == \
            [(o.x, o.y, o.color) for o in w.shapes if not o.clutter]
        assert all(o.size <= s.size for s, o in zip(flat.shapes, w.shapes))   # never grows
        target = w.shapes[w.target]
        assert w.target == 0 and target.word is not None   # today's language can name it
        assert w.find(target.color, target.word) == 0 == w.find(target.color, target.shape)
        assert all(o.clutter for o in w.shapes[5:])
        assert all(w.gap(i) > 0.3 for i in range(len(w.shapes)))   # a clear start
        kinds |= {o.shape for o in w.shapes}
    assert set(SHAPES_3D) <= kinds and kinds - set(SHAPES_3D)   # 4 shapes and some clutter
    counts = {len(World3D.random(s).objects) for s in range(30)}
    assert min(counts) >= OBJECT_COUNTS[0] and max(counts) <= OBJECT_COUNTS[1]


def test_camera_info_projects_objects_onto_their_pixels(make_world):
    # Small spheres at known places; project their centres with K and the advertised
    # frames (base_link from the pose, then base_to_camera, camera_to_optical), and find
    # them at that pixel in the segmentation render. The blobs' centroids agree within a
    # fraction of a pixel, with no bias: a half-pixel principal point error would show.
    balls = [sphere('red', 2.5, 2.0), sphere('blue', 2.9, 2.6, 0.12),
             sphere('green', 3.4, 1.4, 0.12), sphere('yellow', 1.8, 2.3, 0.06)]
    w = make_world(balls, Pose(1.0, 2.1, 0.05), Style(camera_pitch=14.0, camera_height=0.3))
    p = w.pose
    for width, height in ((320, 240), (96, 96)):
        info = w.camera_info(width, height)
        K = info['K']
        assert K[0, 0] == K[1, 1] == pytest.approx((height / 2) / math.tan(math.radians(40)))
        assert info['frame_id'] == 'camera_optical_frame'
        (t1, q1), (t2, q2) = info['base_to_camera'], info['camera_to_optical']
        r_base = _quat((0, 0, math.sin(p.theta / 2), math.cos(p.theta / 2)))
        r_optical = r_base @ _quat(q1) @ _quat(q2)
        origin = np.array([p.x, p.y, 0.0]) + r_base @ np.array(t1) + np.array(t2)
        position, rotation = w.camera_pose()   # MuJoCo's own camera agrees with the frames
        assert np.allclose(position, origin) and np.allclose(rotation, r_optical, atol=1e-6)
        seg = w.segmentation(width, height)
        errors = []
        for i, ball in enumerate(balls):
            xc = r_optical.T @ (np.array(ball.centre) - origin)   # (3,) in the optical frame
            u, v = (K @ xc)[:2] / xc[2]
            assert seg[round(v), round(u)] == i
            rows, cols = np.nonzero(seg == i)
            errors.append((cols.mean() - u, rows.mean() - v))
        assert np.abs(errors).max() < 0.5
        if width == 320:
            assert np.abs(np.mean(errors, axis=0)).max() < 0.15


def test_a_cylinder_and_a_cube_have_different_silhouettes(make_world):
    # From the robot's camera (25-40 cm up, looking along the floor) a cylinder as wide as
    # it is tall shows the same square as a cube; the world's cylinders are columns, so
    # their silhouettes differ by shape, not by shading (scene.py's docstring).
    size = 0.5
    solids = [Object3D(kind, 'red', 3.0, y, size, default_height(kind, size))
              for kind, y in (('cube', 2.2), ('cylinder', 2.8))]
    w = make_world(solids, Pose(1.0, 2.5, 0.0))
    seg = w.segmentation(320, 240)
    aspect = []
    for i in range(2):
        rows, cols = np.nonzero(seg == i)
        aspect.append((np.ptp(rows) + 1) / (np.ptp(cols) + 1))   # height / width, pixels
    cube_aspect, cylinder_aspect = aspect
    assert cube_aspect < 1.1 and cylinder_aspect > 1.4 * cube_aspect


def test_bumping_into_an_object_is_a_contact_and_blocks(make_world):
    w = make_world([cube('red', 3.0, 1.0)], Pose(2.0, 1.0, 0.0))
    events = [e for _ in range(30) for e in w.step(0.5, 0.0)]
    assert events.count(('touch', 0)) == 1 and ('reach', 0) in events
    assert w.touched == {0}
    face = 3.0 - 0.2
    assert w.pose.x + ROBOT_RADIUS == pytest.approx(face, abs=0.005)   # against it, not in it


def test_footprints_overlapping_without_contact_is_not_a_touch(make_world):
    # Drive past a cube 1 cm from its face: its footprint circle (through the corners)
    # overlaps the robot's, the solids never meet, so there is no touch.
    c = cube('blue', 2.5, 1.0 + ROBOT_RADIUS + 0.2 + 0.01)
    w = make_world([c], Pose(1.5, 1.0, 0.0))
    gaps = []
    for _ in range(40):
        assert not [e for e in w.step(0.5, 0.0) if e[0] == 'touch']
        gaps.append(w.gap(0))
    assert min(gaps) < 0 and not w.touched


def test_walls_are_contacts(make_world):
    w = make_world([], Pose(1.0, 2.5, math.pi))
    events = [e for _ in range(30) for e in w.step(0.5, 0.0)]
    assert ('wall',) in events and w.wall_hits == events.count(('wall',))
    assert w.pose.x == pytest.approx(ROBOT_RADIUS, abs=0.005)


def test_cmd_vel_is_obeyed_rep103(make_world):
    w = make_world([], Pose(1.0, 1.0, 0.0))
    for _ in range(10):
        w.step(0.3, 0.0)
    assert (w.pose.x, w.pose.y) == pytest.approx((1.3, 1.0), abs=0.01)
    for _ in range(10):
        w.step(0.0, 1.0)
    assert w.pose.theta == pytest.approx(1.0, abs=0.03)   # positive = counter-clockwise
    w.pose = Pose(2.0, 2.0, 0.0)
    for _ in range(10):
        w.step(0.3, 0.5)                                   # an arc to the left
    assert w.pose.y > 2.05 and w.pose.theta == pytest.approx(0.5, abs=0.03)


def test_nan_and_huge_commands_are_dropped_or_clamped(make_world):
    w = make_world([], Pose(2.5, 2.5, 0.0))
    for cmd in [(float('nan'), float('nan')), (float('inf'), -float('inf')), (1e30, -1e30)]:
        before = w.pose
        w.step(*cmd)
        p = w.pose
        assert np.isfinite([p.x, p.y, p.theta]).all()
        assert math.hypot(p.x - before.x, p.y - before.y) <= MAX_LINEAR * w.dt + 1e-6
        assert abs(p.theta - before.theta) <= MAX_ANGULAR * w.dt + 1e-6
    w.step(float('nan'), 0.0)
    w.step(float('nan'), 0.0)
    assert abs(w.data.qvel).max() < 1e-3   # a dropped command means stop


def test_visible_objects_are_what_the_camera_sees(make_world):
    objects = [cube('red', 2.5, 2.5, 0.5),          # in front
               sphere('blue', 3.5, 2.5, 0.2),       # behind the cube
               sphere('green', 0.8, 2.5, 0.3),      # behind the robot
               sphere('yellow', 2.8, 3.2, 0.3)]     # ahead on the left, in view
    w = make_world(objects, Pose(1.5, 2.5, 0.0))
    assert w.visible_objects() == [0, 3]
    assert [w.in_view(i) for i in range(4)] == [True, True, False, True]   # no occlusion
    w.pose = Pose(1.5, 2.5, math.pi)
    assert w.visible_objects() == [2]


def test_held_out_styles_are_never_sampled_for_training():
    rng = np.random.default_rng(0)
    train = [sample_style(rng) for _ in range(2000)]
    assert all(s.name == 'train' and not s.held_out for s in train)
    assert all(s.floor.mark == s.wall.mark == 'none' for s in train)
    assert {s.floor.builtin for s in train} == {'checker', 'gradient', 'flat'}
    assert 0.1 < np.mean([s.shadows for s in train]) < 0.5
    held = [sample_style(rng, held_out=True) for _ in range(30)]
    assert {s.name for s in held} == set(HELD_OUT_STYLES)
    assert all(s.floor.mark != 'none' for s in held)
    assert held_out_style('tiled_night', rng).name == 'tiled_night'
    a, b = World3D.random(7), World3D.random(7, held_out_style=True)
    assert b.style.held_out and a.shapes == b.shapes   # same layout, another look


def test_overview_marks_the_target_for_people_only():
    w = World3D.random(4, style=CLEAN)
    try:
        top = w.overview(240)
        assert top.shape == (240, 240, 3) and top.dtype == np.uint8
        magenta = (top[..., 0] > 150) & (top[..., 2] > 130) & (top[..., 1] < 130)
        assert magenta.sum() > 50
        assert w.overview(120, view='chase').shape == (120, 120, 3)
        assert w.render(96, 64).shape == (64, 96, 3)
    finally:
        w.close()


@pytest.mark.parametrize('kind', ['go to', 'face'])
def test_the_2d_expert_reaches_its_targets_in_3d(kind):
    for seed in range(4):
        w = World3D.random(seed)
        target_object = w.shapes[w.target]
        goal = parse_instruction(f'{kind} the {target_object.color} {target_object.word}')
        target = ground(goal, w)
        assert target == w.target
        done = 0.0
        for _ in range(300):
            linear, angular, done = expert_action(w, goal, target)
            if done >= 0.5:
                break
            w.step(linear * MAX_LINEAR, angular * MAX_ANGULAR)
        assert done >= 0.5, f'seed {seed}: not done in 30 s'
        if goal.kind == 'goto':
            assert w.gap(target) <= REACH_DISTANCE
        else:
            assert abs(w.bearing(target)) <= FACE_TOLERANCE
            assert target in w.visible_objects()
        assert not w.touched and not w.wall_hits, f'seed {seed}: collided'


def test_the_readme_episode_strip_shows_frames_and_the_overview():
    from vla_ros.sim3d.episode_strip import episode_strip, FRAMES, TILE
    strip = episode_strip(1_000_003)
    assert strip.shape == (TILE, TILE * (FRAMES + 1), 3) and strip.dtype == np.uint8
    assert strip[:, :TILE].std() > 10          # a rendered scene, not a blank tile
