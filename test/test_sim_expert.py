"""The expert reaches goals reliably, and the closed-loop evaluation scores policies right."""
import math

from vla_ros.sim.evaluate import (EVAL_SEED_START, evaluate, ExpertPolicy, run_episode,
                                  summarize)
from vla_ros.sim.expert import expert_action, FACE_TOLERANCE, SEARCH_TURN
from vla_ros.control.instructions import Goal
from vla_ros.sim.world import Pose, REACH_DISTANCE, Shape, World


def test_expert_reaches_goto_goals_over_200_held_out_arenas():
    report = evaluate(ExpertPolicy(), episodes=200)
    assert report['success_rate'] >= 0.99, report['failures']
    assert report['wrong_target_rate'] == 0 and report['collision_rate'] <= 0.01
    assert report['distractors'] == [2, 5] and report['seed_start'] == EVAL_SEED_START


def test_expert_faces_targets_with_held_out_wordings():
    report = evaluate(ExpertPolicy(), episodes=100, kinds=('face',), held_out=True)
    assert report['success_rate'] >= 0.99, report['failures']
    assert report['median_time_to_goal_s'] < 5


def test_expert_labels():
    red = Shape('circle', 'red', 3.0, 2.5, 0.4)
    world = World([red], Pose(1.0, 2.5, 0.0), target=0)
    linear, angular, done = expert_action(world, Goal('goto', 'red', 'circle'), 0)
    assert linear == 1.0 and angular == 0.0 and done == 0.0      # far, dead ahead: full speed
    world.pose = Pose(3.0 - 0.2 - REACH_DISTANCE - 0.1, 2.5, 0.0)  # inside reach
    assert expert_action(world, Goal('goto', 'red', 'circle'), 0) == (0.0, 0.0, 1.0)
    world.pose = Pose(1.0, 2.5, math.pi)                           # target behind: search left
    assert expert_action(world, Goal('goto', 'red', 'circle'), 0) == (0.0, SEARCH_TURN, 0.0)
    world.pose = Pose(1.0, 2.5, -0.5)                              # target to the left
    linear, angular, done = expert_action(world, Goal('face', 'red', 'circle'), 0)
    assert linear == 0.0 and angular > 0 and done == 0.0
    world.pose = Pose(1.0, 2.5, FACE_TOLERANCE / 2)
    assert expert_action(world, Goal('face', 'red', 'circle'), 0) == (0.0, 0.0, 1.0)
    assert expert_action(world, Goal('stop'), None) == (0.0, 0.0, 1.0)


def test_expert_detours_around_a_distractor_in_the_way():
    shapes = [Shape('circle', 'red', 4.0, 2.5, 0.4), Shape('rectangle', 'blue', 2.5, 2.5, 0.5)]
    world = World(shapes, Pose(1.0, 2.5, 0.0), target=0)
    goal = Goal('goto', 'red', 'circle')
    for _ in range(300):
        linear, angular, done = expert_action(world, goal, 0)
        if done:
            break
        world.step(linear * 0.5, angular * 1.5)
    assert done and world.touched == set() and world.gap(0) <= REACH_DISTANCE
    assert max(abs(y - 2.5) for _x, y in world.path) > 0.3     # it went around


class Policy:
    """A scripted policy: drive straight for `steps` steps, then say done."""

    def __init__(self, steps, linear=1.0):
        self.steps, self.linear, self.calls = steps, linear, 0

    def __call__(self, frame, instruction):
        assert frame.shape == (64, 64, 3) and isinstance(instruction, str)
        self.calls += 1
        return (self.linear, 0.0, float(self.calls > self.steps))


def test_evaluation_scores_failures():
    lazy = run_episode(Policy(steps=0), EVAL_SEED_START)        # done at once, far away
    assert (lazy.success, lazy.done_said, lazy.reached) == (False, True, False)
    timeout = run_episode(Policy(steps=10**6, linear=0.0), EVAL_SEED_START, time_limit=2.0)
    assert (timeout.success, timeout.done_said, timeout.time_s) == (False, False, 2.0)
    # An arena whose distractor sits dead ahead: driving straight touches it.
    for seed in range(EVAL_SEED_START, EVAL_SEED_START + 200):
        w = World.random(seed)
        ahead = [j for j in range(1, len(w.shapes))
                 if abs(w.bearing(j)) < 0.05 and w.gap(j) < w.gap(0)]
        if ahead:
            break
    assert ahead, 'no arena with a distractor dead ahead'
    bump = run_episode(Policy(steps=10**6), seed)
    assert bump.wrong_target and bump.collision and not bump.success
    summary = summarize([lazy, timeout, bump])
    assert summary['success_rate'] == 0 and summary['wrong_target_rate'] == round(1 / 3, 4)
    assert summary['median_time_to_goal_s'] is None and len(summary['failures']) == 3
    assert summary['wrong_target_never_in_view_rate'] == round((not bump.target_in_view) / 3, 4)


def test_episodes_say_whether_the_target_was_ever_in_view():
    # done at once: in view exactly when the start pose sees it
    starts = [(seed, World.random(seed)) for seed in range(EVAL_SEED_START, EVAL_SEED_START + 40)]
    seen = next(s for s, w in starts if w.in_view(w.target))
    unseen = next(s for s, w in starts if not w.in_view(w.target))
    assert run_episode(Policy(steps=0), seen).target_in_view
    lazy = run_episode(Policy(steps=0), unseen)
    assert not lazy.target_in_view and not lazy.wrong_target

    class Spin(Policy):   # turns on the spot: the target comes into view
        def __call__(self, frame, instruction):
            return 0.0, 1.0, float(super().__call__(frame, instruction)[2])
    assert run_episode(Spin(steps=60), unseen).target_in_view
    summary = summarize([lazy])
    assert summary['wrong_target_never_in_view_rate'] == 0.0
