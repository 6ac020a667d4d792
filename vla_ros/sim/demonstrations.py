"""Behaviour-cloning samples for the action head: (camera frame, instruction) -> the
expert's (linear, angular, done).

    batch = sample_batch(np.random.default_rng(0), 256)
    batch['images']        uint8 (n, S, S, 3) RGB egocentric frames (render_camera)
    batch['instructions']  list of n str
    batch['velocity']      float32 (n, 2): linear, angular as fractions of the maximum
                           speeds, in [-1, 1] (positive angular = turn left)
    batch['done']          float32 (n,): 1 where the goal is reached (stop: always 1)
    batch['phase']         list of n str: search | far | near | turn | done | stop
    batch['target_uv']     float32 (n, 2): where the target's icon is centred in the image
                           (u, v as fractions of width, height); meaningful where
    batch['target_seen']   float32 (n,) is 1 (in view, and the instruction names it)

States come from the expert's own rollouts with noisy execution (random per-episode noise
level, plus occasional multi-step drifts), from perturbed copies of those states, and,
when a rollout lacked a phase, from states placed directly in that phase. Every label
is the expert's action at the state itself (the expert is stateless), so off-course
states teach the correction: DAgger-style recovery without a learner in the loop. Pass
`driver` (a policy) to let a learner drive the rollouts instead: true DAgger.

Samples are balanced over instruction kinds (KIND_MIX) and phases (PHASE_MIX); wordings
come from the train templates, or the held-out ones with held_out=True. Worlds use seeds
below evaluate.EVAL_SEED_START, so evaluation arenas are never trained on.
"""
import math

import numpy as np

from .expert import expert_action, FACE_TOLERANCE
from .instructions import Goal, instruction_text
from .render import camera_point, in_view, render_camera
from .world import MAX_ANGULAR, MAX_LINEAR, Pose, REACH_DISTANCE, World

TRAIN_SEEDS = 1_000_000           # world seeds in [0, TRAIN_SEEDS); evaluation starts there
KIND_MIX = {'goto': 0.7, 'face': 0.2, 'stop': 0.1}
PHASE_MIX = {'goto': {'search': 0.1, 'far': 0.35, 'near': 0.3, 'done': 0.25},
             'face': {'search': 0.2, 'turn': 0.45, 'done': 0.35},
             'stop': {'stop': 1.0}}
NEAR_GAP = 1.0                    # m: "near" the target below this gap
SAMPLES_PER_WORLD = 8             # consecutive samples share an arena (rollouts cost time)
ROLLOUT_STEPS = 60


def _pick(rng, mix: dict) -> str:
    keys = list(mix)
    return keys[rng.choice(len(keys), p=list(mix.values()))]


def phase_of(world: World, goal: Goal, target) -> str:
    """Which part of the task the robot is in at the world's current pose."""
    if goal.kind == 'stop':
        return 'stop'
    if not in_view(world, target):
        return 'search'
    if goal.kind == 'face':
        return 'done' if abs(world.bearing(target)) <= FACE_TOLERANCE else 'turn'
    gap = world.gap(target)
    return 'done' if gap <= REACH_DISTANCE else ('near' if gap <= NEAR_GAP else 'far')


def _rollout(world: World, goal: Goal, target: int, rng, driver=None, instruction=''):
    """Poses visited while the expert (or `driver`) drives with noise from world.pose."""
    sigma = rng.uniform(0.0, 0.4)          # this episode's execution noise
    drift, drift_steps = (0.0, 0.0), 0
    poses, after_done = [], 0
    for _ in range(ROLLOUT_STEPS):
        poses.append(Pose(world.pose.x, world.pose.y, world.pose.theta))
        if driver is not None:
            linear, angular, done = driver(render_camera(world), instruction)
        else:
            linear, angular, done = expert_action(world, goal, target)
        if done >= 0.5:
            after_done += 1        # keep jittering around the goal for a few steps
            if after_done > 5:
                break
        if drift_steps == 0 and rng.random() < 0.04:
            drift, drift_steps = tuple(rng.uniform(-1, 1, size=2)), int(rng.integers(3, 9))
        if drift_steps:
            linear, angular, drift_steps = drift[0], drift[1], drift_steps - 1
        linear, angular = np.clip([linear, angular] + rng.normal(0, sigma, size=2), -1, 1)
        world.step(linear * MAX_LINEAR, angular * MAX_ANGULAR)
    return poses


def _free(world: World, pose: Pose) -> bool:
    lo, hi = 0.16, world.arena - 0.16
    return lo <= pose.x <= hi and lo <= pose.y <= hi and \
        all(world.gap(i, pose) > 0.0 for i in range(len(world.shapes)))


def _placed(world: World, goal: Goal, target: int, phase: str, rng) -> Pose:
    """A pose made for `phase` directly (rejection-sampled)."""
    s = world.shapes[target]
    for _ in range(50):
        if phase in ('done', 'near') and goal.kind == 'goto':
            reach = REACH_DISTANCE if phase == 'done' else NEAR_GAP
            p = world.random_free_pose(rng, near=target, max_dist=reach)
        else:
            p = world.random_free_pose(rng, clearance=0.05)
        to_target = math.atan2(s.y - p.y, s.x - p.x)
        if phase == 'search':
            p.theta = to_target + math.pi + rng.uniform(-1.3, 1.3)
        elif phase == 'done' and goal.kind == 'face':
            p.theta = to_target + rng.uniform(-FACE_TOLERANCE, FACE_TOLERANCE)
        elif phase in ('turn', 'done', 'near'):
            p.theta = to_target + rng.normal(0, 0.8)
        world.pose = p
        if phase_of(world, goal, target) == phase:
            return p
    return p


def _world_samples(rng, k: int, held_out: bool, driver=None):
    """Yield k (world at the sample's pose, goal, target, instruction) from one arena."""
    world = World.random(int(rng.integers(TRAIN_SEEDS)))
    kind = _pick(rng, KIND_MIX)
    target = world.target
    s = world.shapes[target]
    goal = Goal(kind, s.color, s.shape)
    drive_goal = goal if kind != 'stop' else Goal('goto', s.color, s.shape)
    start = world.pose
    instruction = instruction_text(rng, drive_goal) if driver is not None else ''
    poses = _rollout(world, drive_goal, target, rng, driver, instruction)
    for p in poses[::3]:   # perturbed copies: off the path the expert would take
        q = Pose(p.x + rng.normal(0, 0.15), p.y + rng.normal(0, 0.15),
                 p.theta + rng.normal(0, 0.4))
        if _free(world, q):
            poses.append(q)
    poses.append(start)
    by_phase = {}
    for p in poses:
        world.pose = p
        by_phase.setdefault(phase_of(world, goal, target), []).append(p)
    for _ in range(k):
        phase = _pick(rng, PHASE_MIX[kind])
        candidates = by_phase.get(phase)
        if candidates and rng.random() < 0.7:
            pose = candidates[rng.integers(len(candidates))]
        else:
            pose = _placed(world, goal, target, phase, rng)
        world.pose = Pose(pose.x, pose.y, math.atan2(math.sin(pose.theta), math.cos(pose.theta)))
        yield world, goal, target, instruction_text(rng, goal, held_out)


def sample_batch(rng: np.random.Generator, n: int, image_size: int = 64,
                 held_out: bool = False, driver=None) -> dict:
    """n behaviour-cloning samples (see the module docstring for the fields)."""
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    velocity = np.empty((n, 2), np.float32)
    done = np.empty(n, np.float32)
    target_uv = np.zeros((n, 2), np.float32)
    target_seen = np.zeros(n, np.float32)
    instructions, phases = [], []
    i = 0
    while i < n:
        for world, goal, target, text in _world_samples(rng, min(SAMPLES_PER_WORLD, n - i),
                                                        held_out, driver):
            linear, angular, d = expert_action(world, goal, target)
            images[i] = render_camera(world, image_size)
            velocity[i] = linear, angular
            done[i] = d
            if goal.kind != 'stop' and in_view(world, target):
                u, v, _ = camera_point(*world.ego(target))
                if 0.0 <= u <= 1.0 and 0.0 <= v <= 1.0:
                    target_uv[i], target_seen[i] = (u, v), 1.0
            instructions.append(text)
            phases.append(phase_of(world, goal, target))
            i += 1
    return {'images': images, 'instructions': instructions, 'velocity': velocity,
            'done': done, 'phase': phases, 'target_uv': target_uv, 'target_seen': target_seen}
