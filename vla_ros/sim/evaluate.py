"""Closed-loop evaluation of any policy in the simulated arena.

A policy is a callable `policy(frame_rgb, instruction) -> (linear, angular, done)` with
velocities as fractions of the robot's maximum speeds (like InferenceEngine.act) and
`done` a probability. If it has a `reset(world)` method, that is called at the start of
every episode (the expert uses it to see the world; a camera policy needs nothing).

An episode ends when the policy says done (>= 0.5), touches a distractor, or runs out
of time. It succeeds when, at the moment the policy says done, the goal holds (goto:
within reach of the named target; face: the target within FACE_SUCCESS of straight
ahead) and no other shape was touched. Episodes use seeds >= EVAL_SEED_START, which
the demonstration generator never uses.
"""
import math
import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from ..control.instructions import (Goal, ground, instruction_text, InstructionRefused,
                                    parse_instruction)
from ..control.velocity_safety import VelocityLimits, safe_velocity
from .expert import expert_action, FACE_TOLERANCE
from .render import render_camera
from .world import MAX_ANGULAR, MAX_LINEAR, REACH_DISTANCE, World

EVAL_SEED_START = 1_000_000
TIME_LIMIT_S = 30.0
REACH_SUCCESS = REACH_DISTANCE + 0.1   # m: a little slack over the expert's own "done"
FACE_SUCCESS = FACE_TOLERANCE + 0.1    # rad
LIMITS = VelocityLimits(MAX_LINEAR, MAX_ANGULAR)


@dataclass
class EpisodeResult:
    seed: int
    instruction: str
    kind: str
    success: bool
    time_s: float
    done_said: bool            # the policy declared done before the time limit
    reached: Optional[bool]    # came within REACH_SUCCESS of the target at some point (goto)
    wrong_target: bool         # touched a distractor, or said done at one instead
    collision: bool            # touched a distractor or a wall
    distractors: int


class ExpertPolicy:
    """The privileged expert behind the policy interface (reads the world, not the frame)."""

    name = 'expert'

    def reset(self, world: World):
        self.world, self._parsed = world, {}

    def __call__(self, frame, instruction: str):
        if instruction not in self._parsed:
            goal = parse_instruction(instruction)
            self._parsed[instruction] = goal, ground(goal, self.world)
        goal, target = self._parsed[instruction]
        return expert_action(self.world, goal, target)


class ModelPolicy:
    """InferenceEngine.act behind the policy interface."""

    name = 'model'

    def __init__(self, engine):
        self.engine = engine

    def __call__(self, frame, instruction: str):
        r = self.engine.act(frame, instruction)
        return r.linear, r.angular, r.done


def episode_goal(seed: int, kind: str = 'goto', held_out: bool = False):
    """(world, Goal, instruction text) of evaluation episode `seed`."""
    world = World.random(seed)
    target = world.shapes[world.target]
    goal = Goal(kind, target.color, target.shape)
    return world, goal, instruction_text(np.random.default_rng([seed, 1]), goal, held_out)


def _at_goal(world: World, goal: Goal, target: int) -> bool:
    if goal.kind == 'face':
        return abs(world.bearing(target)) <= FACE_SUCCESS
    return world.gap(target) <= REACH_SUCCESS


def _at_distractor(world: World, goal: Goal, target: int) -> bool:
    others = [j for j in range(len(world.shapes)) if j != target]
    if goal.kind == 'face':
        return any(abs(world.bearing(j)) <= FACE_SUCCESS for j in others) and \
            not _at_goal(world, goal, target)
    return any(world.gap(j) <= REACH_SUCCESS for j in others)


def run_episode(policy, seed: int, kind: str = 'goto', held_out: bool = False,
                time_limit: float = TIME_LIMIT_S, image_size: int = 64,
                instruction: str = None, on_step=None) -> EpisodeResult:
    """One closed-loop episode in arena `seed`.

    The instruction is a random wording of `kind` about the arena's target, or
    `instruction` (raises InstructionRefused if it does not parse or ground there).
    `on_step(world, frame, instruction, (linear, angular, done))` sees every step.
    """
    world, goal, text = episode_goal(seed, kind, held_out)
    if instruction is not None:
        goal, text = parse_instruction(instruction), instruction
    target = world.target = ground(goal, world)
    if goal.kind == 'stop':
        raise InstructionRefused('a stop episode has nothing to evaluate')
    if hasattr(policy, 'reset'):
        policy.reset(world)
    done_said = reached = False
    for _ in range(round(time_limit / world.dt)):
        frame = render_camera(world, image_size)
        linear, angular, done = policy(frame, text)
        if on_step is not None:
            on_step(world, frame, text, (linear, angular, done))
        if math.isfinite(done) and done >= 0.5:
            done_said = True
            break
        world.step(*safe_velocity(linear, angular, LIMITS))
        reached = reached or world.gap(target) <= REACH_SUCCESS
        if world.touched - {target}:
            break
    touched_other = bool(world.touched - {target})
    at_goal = done_said and _at_goal(world, goal, target)
    wrong = touched_other or (done_said and not at_goal and _at_distractor(world, goal, target))
    return EpisodeResult(seed, text, goal.kind, at_goal and not touched_other,
                         round(world.time, 2), done_said,
                         reached if goal.kind == 'goto' else None, wrong,
                         touched_other or world.wall_hits > 0, len(world.shapes) - 1)


def evaluate(policy, episodes: int = 200, seed_start: int = EVAL_SEED_START,
             kinds=('goto',), held_out: bool = False, time_limit: float = TIME_LIMIT_S,
             image_size: int = 64) -> dict:
    """Run `episodes` episodes (kinds in turn) and summarise them."""
    start = time.perf_counter()
    results = [run_episode(policy, seed_start + k, kinds[k % len(kinds)], held_out,
                           time_limit, image_size) for k in range(episodes)]
    return summarize(results, time.perf_counter() - start) | {
        'seed_start': seed_start, 'kinds': list(kinds), 'held_out_wordings': held_out,
        'time_limit_s': time_limit}


def _rate(flags):
    return round(sum(flags) / len(flags), 4) if flags else None


def summarize(results, seconds: float = 0.0) -> dict:
    """The benchmark figures of a list of EpisodeResults (failures: the first 20)."""
    times = [r.time_s for r in results if r.success]
    counts = [r.distractors for r in results]
    return {
        'episodes': len(results),
        'success_rate': _rate([r.success for r in results]),
        'median_time_to_goal_s': round(float(np.median(times)), 2) if times else None,
        'wrong_target_rate': _rate([r.wrong_target for r in results]),
        'collision_rate': _rate([r.collision for r in results]),
        'reached_rate': _rate([r.reached for r in results if r.reached is not None]),
        'done_rate': _rate([r.done_said for r in results]),
        'distractors': [min(counts), max(counts)] if counts else None,   # [fewest, most]
        'seconds': round(seconds, 1),
        'failures': [asdict(r) for r in results if not r.success][:20],
    }
