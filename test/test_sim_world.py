"""The simulated arena: kinematics, contacts, determinism, and what the camera shows."""
import math

import numpy as np
import pytest

from vla_ros.data.vocabulary import COLORS
from vla_ros.sim.render import camera_point, in_view, render_camera, render_overview, WALL_RGB
from vla_ros.sim.world import (MAX_ANGULAR, MAX_LINEAR, Pose, REACH_DISTANCE, ROBOT_RADIUS,
                               Shape, World)


def open_world(pose=Pose(1.0, 2.5, 0.0), shapes=(), dt=0.1):
    return World(list(shapes), pose, target=None, dt=dt)


def test_straight_line_and_turn_in_place():
    w = open_world()
    for _ in range(10):
        w.step(0.4, 0.0)
    assert (w.pose.x, w.pose.y, w.pose.theta) == pytest.approx((1.4, 2.5, 0.0))
    for _ in range(10):
        w.step(0.0, 1.2)
    assert (w.pose.x, w.pose.y, w.pose.theta) == pytest.approx((1.4, 2.5, 1.2))
    assert w.time == pytest.approx(2.0) and len(w.path) == 21


def test_constant_commands_trace_an_exact_arc():
    # v = 0.5 m/s, w = 1 rad/s: a circle of radius 0.5 m; a quarter turn ends 0.5 left, 0.5 up
    w = open_world()
    steps = 157
    w.dt = (math.pi / 2) / steps
    for _ in range(steps):
        w.step(0.5, 1.0)
    assert (w.pose.x, w.pose.y, w.pose.theta) == pytest.approx((1.5, 3.0, math.pi / 2), abs=1e-9)


def test_commands_are_clamped_and_non_finite_ones_ignored():
    w = open_world()
    w.step(100.0, -100.0)
    assert w.pose.x == pytest.approx(1.0 + MAX_LINEAR * 0.1, abs=1e-3)
    assert w.pose.theta == pytest.approx(-MAX_ANGULAR * 0.1)
    before = (w.pose.x, w.pose.y, w.pose.theta)
    w.step(float('nan'), float('inf'))
    assert (w.pose.x, w.pose.y, w.pose.theta) == before


def test_touching_a_shape_stops_the_robot_and_reports_once():
    box = Shape('rectangle', 'red', 2.0, 2.5, 0.4)
    w = open_world(shapes=[box])
    events = [e for _ in range(40) for e in w.step(0.5, 0.0)]
    assert ('reach', 0) in events and events.count(('touch', 0)) == 1
    assert w.gap(0) >= 0 and w.gap(0) < 0.06   # stopped against it, never inside
    assert w.touched == {0} and w.reached == {0}
    w.step(0.0, 1.0)                             # it may still turn away
    assert w.pose.theta == pytest.approx(0.1 * 1.0)


def test_walls_stop_the_robot():
    w = open_world(Pose(4.5, 2.5, 0.0))
    events = [e for _ in range(20) for e in w.step(0.5, 0.0)]
    assert ('wall',) in events and w.wall_hits > 0
    assert w.pose.x <= w.arena - ROBOT_RADIUS


def test_random_worlds_are_deterministic_and_well_formed():
    for seed in range(50):
        a, b = World.random(seed), World.random(seed)
        assert a.shapes == b.shapes and a.pose == b.pose and a.background == b.background
        assert 3 <= len(a.shapes) <= 6 and a.target == 0
        kinds = [(s.shape, s.color) for s in a.shapes]
        assert len(set(kinds)) == len(kinds), 'shape + colour must be distinct'
        assert all(s.color in COLORS for s in a.shapes)
        assert min(a.gap(i) for i in range(len(a.shapes))) > 0.4
        assert a.gap(0) > REACH_DISTANCE
    assert World.random(1).shapes != World.random(2).shapes


def test_rendering_is_deterministic():
    w = World.random(7)
    assert np.array_equal(render_camera(w), render_camera(World.random(7)))
    assert np.array_equal(render_overview(w), render_overview(World.random(7)))
    img = render_camera(w, 96)
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8


def test_camera_is_egocentric():
    """Ahead is up, left is left, behind is invisible; near things look bigger."""
    def red_pixels(theta, x=2.5, y=2.5):
        w = open_world(Pose(1.0, 2.5, theta), [Shape('circle', 'red', x, y, 0.5)])
        img = render_camera(w)
        ys, xs = np.nonzero(np.all(img == COLORS['red'], axis=2))
        return xs, ys, w

    xs, ys, w = red_pixels(0.0)              # 1.5 m straight ahead
    assert abs(xs.mean() - 31.5) < 1 and ys.mean() < 40 and in_view(w, 0)
    u, v, _ = camera_point(1.5, 0.0)
    assert (u, v) == pytest.approx((0.5, 1 - 1.5 / 2.7))
    xs, _ys, _w = red_pixels(-0.6)           # heading to the right: the disc is on the left
    assert xs.mean() < 25
    xs, _ys, _w = red_pixels(0.6)
    assert xs.mean() > 38
    xs, _ys, w = red_pixels(math.pi)         # behind
    assert len(xs) == 0 and not in_view(w, 0)
    far, _, _ = red_pixels(0.0, x=4.0)
    near, _, _ = red_pixels(0.0, x=1.8)
    assert len(near) > 2 * len(far) > 0


def test_camera_shows_walls_and_floor_in_the_scene_palette():
    w = World.random(3)
    img = render_camera(w)
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    assert WALL_RGB in colours and tuple(w.background) in colours
    assert all(tuple(COLORS[s.color]) in colours for i, s in enumerate(w.shapes) if
               in_view(w, i) and w.ego(i)[0] > 0.3)
