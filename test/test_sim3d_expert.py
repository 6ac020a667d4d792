"""The privileged expert, its demonstrations and the closed-loop evaluation in the 3D arena
(MuJoCo, rendered headless through EGL)."""
import json
import math
import re

import numpy as np
import pytest

pytest.importorskip('mujoco')

from vla_ros.control.instructions import Goal  # noqa: E402
from vla_ros.sim import demonstrations as demos  # noqa: E402
from vla_ros.sim.evaluate import (EVAL_SEED_START, evaluate, ExpertPolicy,  # noqa: E402
                                  make_world, run_episode)
from vla_ros.sim.expert import (expert_action, FACE_TOLERANCE, max_detour,  # noqa: E402
                                MAX_DETOUR)
from vla_ros.sim.world import (MAX_ANGULAR, MAX_LINEAR, Pose, REACH_DISTANCE,  # noqa: E402
                               Shape, World)
from vla_ros.sim3d import demonstrations3d  # noqa: E402
from vla_ros.sim3d.captions import min_pixels_for  # noqa: E402
from vla_ros.sim3d.scene import Object3D  # noqa: E402
from vla_ros.sim3d.styles import HELD_OUT_STYLES, Style  # noqa: E402
from vla_ros.sim3d.world3d import World3D  # noqa: E402

# Arenas where the expert once got boxed in beside a distractor with its target at the edge
# of the 3D camera's view (before the detour limit and the grazing margin), and a few more.
HARD_SEEDS = (1_000_095, 1_000_384, 1_000_440, 1_000_458, 2_000_799)


def _drive(world, goal, target, steps=300):
    done = 0.0
    for _ in range(steps):
        linear, angular, done = expert_action(world, goal, target)
        if done >= 0.5:
            break
        world.step(linear * MAX_LINEAR, angular * MAX_ANGULAR)
    return done


@pytest.mark.parametrize('kind', ['goto', 'face'])
def test_the_expert_reaches_its_goal_in_3d(kind):
    for seed in (EVAL_SEED_START + k for k in range(4)):
        world = make_world(seed, '3d')
        try:
            target = world.shapes[world.target]
            goal = Goal(kind, target.color, target.shape)   # the 3D shape name
            assert world.find(goal.color, goal.shape) == world.target == 0
            assert _drive(world, goal, 0) >= 0.5, f'seed {seed}: not done in 30 s'
            if kind == 'goto':
                assert world.gap(0) <= REACH_DISTANCE
            else:   # facing it, and really seeing it
                assert abs(world.bearing(0)) <= FACE_TOLERANCE and 0 in world.visible_objects()
            assert not world.touched and not world.wall_hits, f'seed {seed}: collided'
        finally:
            world.close()


def test_the_expert_slips_past_obstacles_with_its_target_in_view():
    results = [run_episode(ExpertPolicy(), seed, world='3d') for seed in HARD_SEEDS]
    assert all(r.success and not r.collision for r in results), results


def test_visibility_and_detours_follow_the_world_camera():
    # 2D: the half-plane ahead is in view; 3D: the 80 degree field of view only.
    flat = World([Shape('circle', 'red', 2.0, 3.4, 0.3)], Pose(2.0, 2.0, 0.0))
    assert flat.in_view(0) and max_detour(flat, 0) == MAX_DETOUR   # 90 deg left
    world = World3D([Object3D('sphere', 'red', 2.0, 3.4, 0.3, 0.3)], Pose(2.0, 2.0, 0.0),
                    Style(), target=0)
    try:
        assert not world.in_view(0)
        goal = Goal('face', 'red', 'sphere')
        assert expert_action(world, goal, 0)[:2] == (0.0, 0.7)   # search: turn left
        world.pose = Pose(2.0, 2.0, math.pi / 2 - 0.1)           # nearly facing it
        assert world.in_view(0) and expert_action(world, goal, 0) == (0, 0, 1)
        assert max_detour(world, 0) < world.view_half_angle() + 0.2 < MAX_DETOUR
        u, v = world.image_point(0, 96, 96)       # ahead, a little left: left of centre
        assert 0.3 < u < 0.5 and 0 < v < 1
        world.pose = Pose(2.0, 2.0, -math.pi / 2)
        assert world.image_point(0) is None       # behind the camera
    finally:
        world.close()


def _states_3d(rng, n_arenas, k=8):
    """(world, goal, target, phase) of demonstration states in 3D training arenas."""
    arenas = [demos._arena(rng, None, demonstrations3d.training_world) for _ in range(n_arenas)]
    try:
        for arena, poses in zip(arenas, demos._rollouts(arenas, rng)):
            for world, goal, target, phase, _text in demos._world_samples(rng, arena, poses,
                                                                          k, False):
                yield world, goal, target, phase
    finally:
        for arena in arenas:
            arena.world.close()


def test_3d_demonstration_labels_are_consistent():
    rng = np.random.default_rng(0)
    seen = on_mask = 0
    for world, goal, target, phase in _states_3d(rng, 16):
        assert not world.style.held_out and world.seed < demos.TRAIN_SEEDS
        linear, angular, done = expert_action(world, goal, target)
        assert (done == 1) == (phase in ('done', 'stop')), phase
        if done and goal.kind == 'goto':
            assert world.gap(target) <= REACH_DISTANCE
        if done and goal.kind == 'face':
            assert abs(world.bearing(target)) <= FACE_TOLERANCE and world.in_view(target)
        if phase == 'search':
            assert (linear, angular) == (0.0, 0.7)
        if goal.kind == 'stop':
            continue
        uv = demonstrations3d.target_uv(world, target, 48)
        seg = world.segmentation(48, 48)
        if uv is None:   # not seen: (almost) no pixels, or out of the expert's view
            assert (seg == target).sum() < min_pixels_for(48, 48) or phase == 'search'
            continue
        seen += 1
        assert phase != 'search'   # the pointer never sees what the expert searches for
        rows, cols = np.nonzero(seg == target)
        assert uv == pytest.approx(((cols.mean() + 0.5) / 48, (rows.mean() + 0.5) / 48))
        on_mask += seg[int(uv[1] * 48), int(uv[0] * 48)] == target
    assert seen > 30 and on_mask >= 0.9 * seen


def test_3d_batches_have_the_fields_and_training_styles_only(monkeypatch):
    styles = []
    make = demonstrations3d.training_world

    def recording(seed):
        world = make(seed)
        styles.append(world.style)
        return world
    monkeypatch.setattr(demonstrations3d, 'training_world', recording)
    b = demos.sample_batch(np.random.default_rng(1), 40, 48, world='3d')
    assert b['images'].shape == (40, 48, 48, 3) and b['images'].dtype == np.uint8
    assert b['velocity'].shape == (40, 2) and set(np.unique(b['done'])) <= {0.0, 1.0}
    assert len(styles) == 5 and not any(s.held_out for s in styles)
    seen = b['target_seen'] == 1
    assert 0 < seen.sum() < 40 and ((0 <= b['target_uv']) & (b['target_uv'] <= 1)).all()
    assert not b['target_seen'][[p in ('stop', 'search') for p in b['phase']]].any()
    shapes = {'sphere', 'ball', 'cube', 'box', 'block', 'pyramid', 'cylinder', 'drum'}
    named = [t for t, p in zip(b['instructions'], b['phase']) if p != 'stop']
    assert named and all(shapes & set(re.findall('[a-z]+', t)) for t in named)
    with pytest.raises(ValueError):
        demonstrations3d.training_world(demos.TRAIN_SEEDS)   # evaluation seeds: never


class Frames:
    """A camera policy stand-in: checks its frames, drives straight, says done after n."""

    def __init__(self, steps):
        self.steps, self.calls, self.shapes = steps, 0, set()

    def __call__(self, frame, instruction):
        self.shapes.add(frame.shape)
        self.calls += 1
        return 1.0, 0.0, float(self.calls > self.steps)


def test_evaluate_in_3d_reports_world_and_style():
    report = evaluate(ExpertPolicy(), episodes=4, kinds=('goto', 'face'), world='3d',
                      held_out_style=True)
    for key in ('success_rate', 'median_time_to_goal_s', 'wrong_target_rate',
                'collision_rate', 'episodes', 'distractors', 'clutter', 'seed_start'):
        assert key in report, key
    assert report['world'] == '3d' and report['held_out_style'] is True
    assert report['success_rate'] == 1.0 and report['image_size'] == 96
    by_style = report['by_style']   # each held-out style's own figures, summing to the whole
    assert set(by_style) <= set(HELD_OUT_STYLES) and by_style
    assert sum(s['episodes'] for s in by_style.values()) == 4
    assert all(s['success_rate'] == 1.0 for s in by_style.values())
    assert 3 <= report['distractors'][0] <= report['distractors'][1] <= 7
    policy = Frames(steps=3)
    lazy = evaluate(policy, episodes=1, world='3d')
    assert policy.shapes == {(96, 96, 3)} and lazy['success_rate'] == 0.0
    assert 'by_style' not in lazy   # training styles: the whole is the breakdown
    with pytest.raises(ValueError):
        evaluate(ExpertPolicy(), episodes=1, held_out_style=True)   # 2D has no styles


class ToClutter:
    """A privileged policy that drives into the arena's first clutter item."""

    needs_frames = False

    def reset(self, world):
        self.world = world
        self.clutter = next(i for i, s in enumerate(world.shapes) if s.clutter)

    def __call__(self, frame, instruction):
        bearing = self.world.bearing(self.clutter)
        return (1.0 if abs(bearing) < 0.1 else 0.0), max(-1.0, min(1.0, 3 * bearing)), 0.0


def test_touching_clutter_is_a_collision_not_a_wrong_target():
    for seed in range(EVAL_SEED_START, EVAL_SEED_START + 100):   # a clear line to clutter
        world = make_world(seed, '3d')
        p, items = world.pose, [i for i, s in enumerate(world.shapes) if s.clutter]
        clear = items and all(_clear_of(world, p, world.shapes[items[0]], j)
                              for j in world.objects)
        world.close()
        if clear:
            break
    assert clear, 'no arena with a clear line to a clutter item'
    policy = ToClutter()
    r = run_episode(policy, seed, world='3d')
    assert policy.world.touched and all(world.shapes[i].clutter for i in policy.world.touched)
    assert r.collision and not r.success and not r.wrong_target and not r.done_said
    assert r.distractors == len(world.objects) - 1 and r.clutter == len(items)


def _clear_of(world, p, item, j):
    """Whether footprint j keeps clear of the robot's straight path from p to item."""
    s = world.shapes[j]
    dx, dy = item.x - p.x, item.y - p.y
    t = max(0.0, min(1.0, ((s.x - p.x) * dx + (s.y - p.y) * dy) / (dx * dx + dy * dy)))
    return math.hypot(p.x + t * dx - s.x, p.y + t * dy - s.y) > s.radius + 0.3


def test_sim_eval_and_sim_record_take_the_world(capsys, tmp_path):
    from vla_ros.cli import build_parser

    def run(*argv):
        args = build_parser().parse_args(list(argv))
        args.func(args)
        return json.loads(capsys.readouterr().out)
    report = run('sim-eval', '--world', '3d', '--held-out-style', '--policy', 'expert',
                 '--episodes', '2', '--json')
    assert report['world'] == '3d' and report['held_out_style'] and report['episodes'] == 2
    assert report['success_rate'] == 1.0 and report['policy'] == 'expert'
    out = run('sim-record', '--world', '3d', '--policy', 'expert', '--kind', 'face',
              '--out', str(tmp_path / 'face.gif'))
    assert out['success'] and out['world'] == '3d' and (tmp_path / 'face.gif').stat().st_size
    with pytest.raises(SystemExit, match='needs --world 3d'):
        run('sim-eval', '--held-out-style', '--policy', 'expert', '--episodes', '1')
