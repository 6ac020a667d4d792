"""Closed-loop evaluation of any policy in the simulated arena.

A policy is a callable `policy(frame_rgb, instruction) -> (linear, angular, done)` with
velocities as fractions of the robot's maximum speeds (like InferenceEngine.act) and
`done` a probability. If it has a `reset(world)` method, that is called at the start of
every episode (the expert uses it to see the world; a camera policy needs nothing).

An episode ends when the policy says done (>= 0.5), touches anything but its target,
or runs out of time. It succeeds when, at the moment the policy says done, the goal holds
(goto: within reach of the named target; face: the target within FACE_SUCCESS of straight
ahead) and nothing else was touched. Episodes use seeds >= EVAL_SEED_START, which the
demonstration generator never uses.

Two arenas (`world`): '2d' (sim/world.py, the top-down camera of render.py, 64 px frames
by default) and '3d' (sim3d/world3d.py: MuJoCo, the robot's perspective camera, 96 px
frames by default, 3 to 7 distractors plus 0 to 3 clutter items against the walls, in
training looks or, with held_out_style, in looks no demonstration uses). Touching clutter
or a wall is a collision; only palette objects (what an instruction can name) count for
a wrong target.
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
from .world import MAX_ANGULAR, MAX_LINEAR, REACH_DISTANCE, World

WORLDS = ('2d', '3d')
IMAGE_SIZES = {'2d': 64, '3d': 96}     # px, default frame side per arena
EVAL_OBJECTS_3D = (4, 8)               # palette objects in a 3D episode: 3..7 distractors
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
    collision: bool            # touched a distractor, a clutter item or a wall
    distractors: int           # palette objects other than the target
    clutter: int = 0           # clutter items (3D)
    # the target was in the camera's field of view (world.in_view, occlusion ignored) at
    # some step: a wrong target without it is a false sighting during the search, one
    # with it a confusion between objects in view
    target_in_view: bool = False
    style: str = ''            # the 3D arena's style ('train' or a held-out style's name)


class ExpertPolicy:
    """The privileged expert behind the policy interface (reads the world, not the frame).

    It parses instructions as the robot would; run_episode, which knows what its own
    instruction means, also tells it the goal (`reset(world, goal, text)`), so the
    reference row measures driving, not the parser's vocabulary.
    """

    name = 'expert'
    needs_frames = False       # run_episode need not render for it
    takes_goal = True          # run_episode passes reset() the episode's goal and text

    def reset(self, world, goal: Optional[Goal] = None, instruction: Optional[str] = None):
        self.world, self._parsed = world, {}
        if goal is not None and instruction is not None:
            self._parsed[instruction] = goal, ground(goal, world)

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
        self.image_size = getattr(engine, 'image_size', None)   # frames it was trained on

    def __call__(self, frame, instruction: str):
        r = self.engine.act(frame, instruction)
        return r.linear, r.angular, r.done


def make_world(seed: int, world: str = '2d', held_out_style: bool = False):
    """The arena of evaluation episode `seed`: a 2D World or a World3D (close() it)."""
    if world not in WORLDS:
        raise ValueError(f"world must be one of {WORLDS}, got {world!r}")
    if world == '2d':
        if held_out_style:
            raise ValueError('held-out styles are looks of the 3D arena (world=3d)')
        return World.random(seed)
    from ..sim3d.world3d import World3D   # MuJoCo only when a 3D arena is asked for
    n = int(np.random.default_rng([seed, 2]).integers(EVAL_OBJECTS_3D[0],
                                                      EVAL_OBJECTS_3D[1] + 1))
    return World3D.random(seed, n_objects=n, held_out_style=held_out_style)


def episode_goal(seed: int, kind: str = 'goto', held_out: bool = False, world: str = '2d',
                 held_out_style: bool = False):
    """(world, Goal, instruction text) of evaluation episode `seed`. The goal names the
    target's shape in the arena's own words (3D: sphere, cube, pyramid...)."""
    arena = make_world(seed, world, held_out_style)
    target = arena.shapes[arena.target]
    goal = Goal(kind, target.color, target.shape)
    return arena, goal, instruction_text(np.random.default_rng([seed, 1]), goal, held_out)


MAX_ARENAS_PER_EPISODE = 20   # relations: about 1 arena in 3 offers a pair; never loop on


def relational_episode_goal(arena, seed: int, kind: str = 'goto', held_out: bool = False):
    """(Goal, text) naming a target of arena `seed` through a neighbour in the robot's first
    view ("go to the cube left of the green ball"), or None where the view has no such
    pair. 3D arenas only."""
    from ..sim3d.captions import observe          # MuJoCo: only for 3D arenas
    from ..sim3d.relations import relational_goals
    options = relational_goals(observe(arena))
    if not options:
        return None
    rng = np.random.default_rng([seed, 3])
    _target, color, shape, side, *anchor = options[rng.integers(len(options))]
    goal = Goal(kind, color, shape, side, tuple(anchor))
    return goal, instruction_text(rng, goal, held_out)


def _at_goal(world: World, goal: Goal, target: int) -> bool:
    if goal.kind == 'face':
        return abs(world.bearing(target)) <= FACE_SUCCESS
    return world.gap(target) <= REACH_SUCCESS


def _at_distractor(world: World, goal: Goal, target: int) -> bool:
    others = [j for j in world.objects if j != target]
    if goal.kind == 'face':
        return any(abs(world.bearing(j)) <= FACE_SUCCESS for j in others) and \
            not _at_goal(world, goal, target)
    return any(world.gap(j) <= REACH_SUCCESS for j in others)


def image_size_for(policy, world: str = '2d') -> int:
    """The frame side a policy sees: its own (ModelPolicy: the model's), else the arena's
    default (IMAGE_SIZES)."""
    return getattr(policy, 'image_size', None) or IMAGE_SIZES[world]


def run_episode(policy, seed: int, kind: str = 'goto', held_out: bool = False,
                time_limit: float = TIME_LIMIT_S, image_size: Optional[int] = None,
                instruction: str = None, on_step=None, world: str = '2d',
                held_out_style: bool = False, relation: bool = False) -> Optional[EpisodeResult]:
    """One closed-loop episode in arena `seed` of `world` ('2d' or '3d').

    The instruction is a random wording of `kind` about the arena's target, or
    `instruction` (raises InstructionRefused if it does not parse or ground there).
    `on_step(world, frame, instruction, (linear, angular, done))` sees every step.
    Frames are image_size square (default: image_size_for(policy, world)). `relation`
    (3D): the target is named through a neighbour (relational_episode_goal); None where
    the arena's first view has no such pair.
    """
    arena, goal, text = episode_goal(seed, kind, held_out, world, held_out_style)
    try:
        if relation:
            named = relational_episode_goal(arena, seed, kind, held_out)
            if named is None:
                return None
            goal, text = named
        if instruction is not None:
            goal, text = parse_instruction(instruction), instruction
        target = arena.target = ground(goal, arena)
        if goal.kind == 'stop':
            raise InstructionRefused('a stop episode has nothing to evaluate')
        return _drive(policy, arena, goal, text, target, time_limit,
                      image_size or image_size_for(policy, world), on_step)
    finally:
        arena.close()   # World3D: frees its render context


def _drive(policy, world, goal: Goal, text: str, target: int, time_limit: float,
           image_size: int, on_step) -> EpisodeResult:
    if getattr(policy, 'takes_goal', False):
        policy.reset(world, goal, text)
    elif hasattr(policy, 'reset'):
        policy.reset(world)
    render = on_step is not None or getattr(policy, 'needs_frames', True)
    done_said = reached = in_view = False
    for _ in range(round(time_limit / world.dt)):
        in_view = in_view or world.in_view(target)
        frame = world.render(image_size, image_size) if render else None
        linear, angular, done = policy(frame, text)
        if on_step is not None:
            on_step(world, frame, text, (linear, angular, done))
        if math.isfinite(done) and done >= 0.5:
            done_said = True
            break
        world.step(*safe_velocity(linear, angular, LIMITS))
        reached = reached or world.gap(target) <= REACH_SUCCESS
        if world.touched - {target}:   # a distractor or a clutter item
            break
    objects = world.objects
    touched_other = bool(world.touched - {target})
    at_goal = done_said and _at_goal(world, goal, target)
    wrong = bool(world.touched & (set(objects) - {target})) or \
        (done_said and not at_goal and _at_distractor(world, goal, target))
    return EpisodeResult(world.seed, text, goal.kind, at_goal and not touched_other,
                         round(world.time, 2), done_said,
                         reached if goal.kind == 'goto' else None, wrong,
                         touched_other or world.wall_hits > 0, len(objects) - 1,
                         len(world.shapes) - len(objects), in_view,
                         getattr(getattr(world, 'style', None), 'name', ''))


def evaluate(policy, episodes: int = 200, seed_start: int = EVAL_SEED_START,
             kinds=('goto',), held_out: bool = False, time_limit: float = TIME_LIMIT_S,
             image_size: Optional[int] = None, world: str = '2d',
             held_out_style: bool = False, relations: bool = False) -> dict:
    """Run `episodes` episodes (kinds in turn) in `world` arenas and summarise them.
    `relations` (3D): targets named through a neighbour; arenas whose first view has no
    such pair are passed over (counted in 'seeds_without_a_relation')."""
    if relations and world != '3d':
        raise ValueError('relational instructions are grounded in the 3D world (world=3d)')
    size = image_size or image_size_for(policy, world)
    start = time.perf_counter()
    results, seed = [], seed_start
    while len(results) < episodes:
        if seed - seed_start >= MAX_ARENAS_PER_EPISODE * episodes:
            raise RuntimeError(f'{seed - seed_start} arenas gave only {len(results)} '
                               'episodes with a relation')
        kind = kinds[len(results) % len(kinds)]
        result = run_episode(policy, seed, kind, held_out, time_limit, size, world=world,
                             held_out_style=held_out_style, relation=relations)
        seed += 1
        if result is not None:
            results.append(result)
    return summarize(results, time.perf_counter() - start) | {
        'relations': relations, 'seeds_without_a_relation': seed - seed_start - len(results),
        'seed_start': seed_start, 'kinds': list(kinds), 'held_out_wordings': held_out,
        'time_limit_s': time_limit, 'world': world, 'held_out_style': held_out_style,
        'image_size': size}


def _rate(flags):
    return round(sum(flags) / len(flags), 4) if flags else None


def _by_style(results) -> dict:
    """{'by_style': {name: figures}} for the held-out styles among `results`, else {}."""
    by_style = {}
    for name in sorted({r.style for r in results} - {'', 'train'}):
        group = [r for r in results if r.style == name]
        by_style[name] = {'episodes': len(group),
                          'success_rate': _rate([r.success for r in group]),
                          'wrong_target_rate': _rate([r.wrong_target for r in group]),
                          'collision_rate': _rate([r.collision for r in group])}
    return {'by_style': by_style} if by_style else {}


def summarize(results, seconds: float = 0.0) -> dict:
    """The benchmark figures of a list of EpisodeResults (failures: the first 20; with
    held-out styles, 'by_style')."""
    times = [r.time_s for r in results if r.success]
    counts = [r.distractors for r in results]
    clutter = [r.clutter for r in results]
    return _by_style(results) | {
        'episodes': len(results),
        'success_rate': _rate([r.success for r in results]),
        'median_time_to_goal_s': round(float(np.median(times)), 2) if times else None,
        'wrong_target_rate': _rate([r.wrong_target for r in results]),
        # of all episodes: wrong target without the target ever in view (false sightings)
        'wrong_target_never_in_view_rate': _rate([r.wrong_target and not r.target_in_view
                                                  for r in results]),
        'collision_rate': _rate([r.collision for r in results]),
        'reached_rate': _rate([r.reached for r in results if r.reached is not None]),
        'done_rate': _rate([r.done_said for r in results]),
        'distractors': [min(counts), max(counts)] if counts else None,   # [fewest, most]
        'clutter': [min(clutter), max(clutter)] if clutter else None,
        'seconds': round(seconds, 1),
        'failures': [asdict(r) for r in results if not r.success][:20],
    }
