"""Behaviour-cloning samples for the action head: (camera frame, instruction) -> the
expert's (linear, angular, done).

    batch = sample_batch(np.random.default_rng(0), 256)                 # 2D arena
    batch = sample_batch(np.random.default_rng(0), 256, 96, world='3d')  # MuJoCo arena
    batch['images']        uint8 (n, S, S, 3) RGB egocentric frames (2D: render_camera,
                           3D: World3D.render)
    batch['instructions']  list of n str
    batch['velocity']      float32 (n, 2): linear, angular as fractions of the maximum
                           speeds, in [-1, 1] (positive angular = turn left)
    batch['done']          float32 (n,): 1 where the goal is reached (stop: always 1)
    batch['phase']         list of n str: search | far | near | turn | done | stop | decoy
                           | lookalike
    batch['target_uv']     float32 (n, 2): where the target is in the image (u, v as
                           fractions of width, height; 2D: its icon's centre, 3D: the
                           centroid of its segmentation mask); meaningful where
    batch['target_seen']   float32 (n,) is 1 (in view, and the instruction names it; 3D:
                           its mask covers at least captions.min_pixels_for the frame)

States come from the expert's own rollouts with noisy execution (random per-episode noise
level, plus occasional multi-step drifts), from perturbed copies of those states, and,
when a rollout lacked a phase, from states placed directly in that phase. Every label
is the expert's action at the state itself (the expert is stateless), so off-course
states teach the correction: DAgger-style recovery without a learner in the loop. Pass
`driver` (a batched policy, `driver(frames, instructions) -> [(linear, angular, done)]`)
to let a learner drive the rollouts instead: true DAgger.

Hard negatives: in the "decoy" phase the robot is placed at, and facing, a distractor
that shares the target's colour or shape. The expert's label there is "not done, carry
on", which is what the closed loop needs: a policy that says done at the first shape of
the right colour fails its episode (the commonest failure of earlier checkpoints).
In the "lookalike" phase (not in the default mix; TrainConfig.phase_mix adds it) the
robot faces a look-alike from anywhere in the arena while the target is out of view: the
expert searches on and the pointer says "not in view". A camera policy that takes the
first red sphere it sees for the red cube it was sent to, while the cube is behind it,
commits to the wrong object long before a decoy's reach (half of the 3D arena's wrong
targets, model card, "Look-alikes in the search").

Samples are balanced over instruction kinds (KIND_MIX) and phases (PHASE_MIX); wordings
come from the train templates, or the held-out ones with held_out=True. Worlds use seeds
below evaluate.EVAL_SEED_START, so evaluation arenas are never trained on.

`world='3d'` draws the arenas from World3D.random in training styles only (never a
held-out style) and names targets with their 3D shape words; its specifics (frames,
target_uv, closing the render contexts) are in sim3d/demonstrations3d.py. Everything
else here reads only the worlds' shared interface.
"""
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..control.instructions import Goal, instruction_text
from .evaluate import IMAGE_SIZES, WORLDS
from .expert import expert_action, FACE_TOLERANCE
from .render import camera_point
from .world import MAX_ANGULAR, MAX_LINEAR, Pose, REACH_DISTANCE, World

TRAIN_SEEDS = 1_000_000           # world seeds in [0, TRAIN_SEEDS); evaluation starts there
KIND_MIX = {'goto': 0.7, 'face': 0.2, 'stop': 0.1}
PHASE_MIX = {'goto': {'search': 0.1, 'far': 0.35, 'near': 0.25, 'done': 0.2, 'decoy': 0.1},
             'face': {'search': 0.2, 'turn': 0.4, 'done': 0.3, 'decoy': 0.1},
             'stop': {'stop': 1.0}}
NEAR_GAP = 1.0                    # m: "near" the target below this gap
SAMPLES_PER_WORLD = 8             # consecutive samples share an arena (rollouts cost time)
# A learner's rollout renders a frame per step for the learner to drive by, so its arenas
# give more samples each (the rollout is most of a DAgger batch's cost).
DRIVEN_SAMPLES_PER_WORLD = 24
ROLLOUT_STEPS = 60                # 6 s of the expert's rollouts: the far and near phases
DRIVEN_ROLLOUT_STEPS = 120        # a learner's (DAgger): long enough to reach the goal


def _pick(rng, mix: dict) -> str:
    keys = list(mix)
    return keys[rng.choice(len(keys), p=list(mix.values()))]


def phase_of(world: World, goal: Goal, target) -> str:
    """Which part of the task the robot is in at the world's current pose."""
    if goal.kind == 'stop':
        return 'stop'
    if not world.in_view(target):
        return 'search'
    if goal.kind == 'face':
        return 'done' if abs(world.bearing(target)) <= FACE_TOLERANCE else 'turn'
    gap = world.gap(target)
    return 'done' if gap <= REACH_DISTANCE else ('near' if gap <= NEAR_GAP else 'far')


@dataclass
class Arena:
    """One training arena: its world, the sampled goal and what is driven in rollouts."""
    world: World
    goal: Goal
    drive_goal: Goal        # a stop episode's rollout drives to the target like a goto
    instruction: str        # the drive goal's wording, for a learner driving the rollout


def _arena(rng, driver=None, make_world=World.random) -> Arena:
    world = make_world(int(rng.integers(TRAIN_SEEDS)))
    s = world.shapes[world.target]
    goal = Goal(_pick(rng, KIND_MIX), s.color, s.shape)
    drive_goal = goal if goal.kind != 'stop' else Goal('goto', s.color, s.shape)
    return Arena(world, goal, drive_goal,
                 instruction_text(rng, drive_goal) if driver is not None else '')


def _rollouts(arenas, rng, driver=None, image_size: int = 64):
    """Per arena, the poses visited while the expert (or `driver`) drives with noise.

    All arenas advance in lock step so a learner `driver(frames, instructions) ->
    [(linear, angular, done)]` sees one batch per step instead of one frame at a time.
    """
    n = len(arenas)
    sigma = rng.uniform(0.0, 0.4, size=n)          # each rollout's execution noise
    drift, drift_steps = np.zeros((n, 2)), np.zeros(n, int)
    after_done = np.zeros(n, int)
    poses = [[] for _ in arenas]
    live = list(range(n))
    for _ in range(ROLLOUT_STEPS if driver is None else DRIVEN_ROLLOUT_STEPS):
        if not live:
            break
        for i in live:
            p = arenas[i].world.pose
            poses[i].append(Pose(p.x, p.y, p.theta))
        if driver is not None:
            actions = driver([arenas[i].world.render(image_size, image_size) for i in live],
                             [arenas[i].instruction for i in live])
        else:
            actions = [expert_action(arenas[i].world, arenas[i].drive_goal,
                                     arenas[i].world.target) for i in live]
        still = []
        for i, (linear, angular, done) in zip(live, actions):
            if done >= 0.5:
                after_done[i] += 1     # keep jittering around the goal for a few steps
                if after_done[i] > 5:
                    continue
            if drift_steps[i] == 0 and rng.random() < 0.04:
                drift[i], drift_steps[i] = rng.uniform(-1, 1, size=2), rng.integers(3, 9)
            if drift_steps[i]:
                (linear, angular), drift_steps[i] = drift[i], drift_steps[i] - 1
            linear, angular = np.clip([linear, angular] + rng.normal(0, sigma[i], size=2), -1, 1)
            world = arenas[i].world
            # glide: no contact physics (3D: ~10x cheaper; rollouts only pick states, every
            # label is the expert's)
            world.glide(linear * MAX_LINEAR, angular * MAX_ANGULAR)
            still.append(i)
        live = still
    return poses


def _free(world: World, pose: Pose) -> bool:
    lo, hi = 0.16, world.arena - 0.16
    return lo <= pose.x <= hi and lo <= pose.y <= hi and \
        all(world.gap(i, pose) > 0.0 for i in range(len(world.shapes)))


def _lookalikes(world: World, target: int) -> list:
    """The distractors sharing the target's colour or shape, or every distractor when none
    does (clutter is never a look-alike)."""
    s = world.shapes[target]
    others = [j for j in world.objects if j != target]
    return [j for j in others if world.shapes[j].color == s.color
            or world.shapes[j].shape == s.shape] or others


def _decoy(world: World, target: int, rng) -> Pose:
    """A pose within reach of, and facing, a distractor; one that shares the target's
    colour or shape when there is one."""
    j = int(rng.choice(_lookalikes(world, target)))
    p = world.random_free_pose(rng, near=j, max_dist=REACH_DISTANCE)
    d = world.shapes[j]
    p.theta = math.atan2(d.y - p.y, d.x - p.x) + rng.normal(0, 0.25)
    return p


def _lookalike(world: World, goal: Goal, target: int, rng) -> Pose:
    """A free pose facing a look-alike (a distractor sharing the target's colour or
    shape, else any distractor) from any distance, with the target out of view; a search
    pose where no such pose is found."""
    alike = _lookalikes(world, target)
    for _ in range(50):
        d = world.shapes[int(rng.choice(alike))]
        p = world.random_free_pose(rng, clearance=0.05)
        p.theta = math.atan2(d.y - p.y, d.x - p.x) + rng.normal(0, 0.25)
        world.pose = p
        if phase_of(world, goal, target) == 'search':
            return p
    return _placed(world, goal, target, 'search', rng)


def _placed(world: World, goal: Goal, target: int, phase: str, rng) -> Pose:
    """A pose made for `phase` directly (rejection-sampled)."""
    if phase == 'decoy':
        return _decoy(world, target, rng)
    if phase == 'lookalike':
        return _lookalike(world, goal, target, rng)
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


def _world_samples(rng, arena: Arena, poses: list, k: int, held_out: bool,
                   phase_mix: dict = PHASE_MIX):
    """Yield k (world at the sample's pose, goal, target, phase, instruction) from one arena,
    given the poses its rollout visited."""
    world, goal = arena.world, arena.goal
    target = world.target
    start = poses[0]
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
        phase = _pick(rng, phase_mix[goal.kind])
        candidates = by_phase.get(phase)   # (never decoy/lookalike: phase_of does not say it)
        if candidates and rng.random() < 0.7:
            pose = candidates[rng.integers(len(candidates))]
        else:
            pose = _placed(world, goal, target, phase, rng)
        world.pose = Pose(pose.x, pose.y, math.atan2(math.sin(pose.theta), math.cos(pose.theta)))
        label = phase_of(world, goal, target)
        if phase == 'decoy' and label != 'done':   # a decoy pose may be in reach of the target
            label = 'decoy'
        if phase == 'lookalike' and label == 'search':
            label = 'lookalike'
        yield world, goal, target, label, instruction_text(rng, goal, held_out)


def target_uv_2d(world: World, target: int, size: int):
    """(u, v) of the target's icon centre in the 2D camera image, or None if not drawn."""
    if not world.in_view(target):
        return None
    u, v, _ = camera_point(*world.ego(target))
    return (u, v) if 0.0 <= u <= 1.0 and 0.0 <= v <= 1.0 else None


def check_phase_mix(mix: dict) -> dict:
    """`mix` ({kind: {phase: share}}) checked against the phases each kind can be in, its
    shares non-negative and summing to 1 per kind; kinds it leaves out keep PHASE_MIX's."""
    allowed = {kind: set(shares) | ({'lookalike'} if kind != 'stop' else set())
               for kind, shares in PHASE_MIX.items()}
    out = dict(PHASE_MIX)
    for kind, shares in mix.items():
        if kind not in allowed:
            raise ValueError(f'phase_mix: unknown instruction kind {kind!r} '
                             f'(one of {sorted(allowed)})')
        wrong = sorted(set(shares) - allowed[kind])
        if wrong:
            raise ValueError(f'phase_mix[{kind!r}]: no phase {wrong} for {kind} '
                             f'(one of {sorted(allowed[kind])})')
        if any(not v >= 0 for v in shares.values()) or abs(sum(shares.values()) - 1) > 1e-6:
            raise ValueError(f'phase_mix[{kind!r}]: shares must be >= 0 and sum to 1, '
                             f'got {shares}')
        out[kind] = dict(shares)
    return out


def sample_batch(rng: np.random.Generator, n: int, image_size: Optional[int] = None,
                 held_out: bool = False, driver=None, world: str = '2d',
                 phase_mix: Optional[dict] = None) -> dict:
    """n behaviour-cloning samples (see the module docstring for the fields) from `world`
    arenas ('2d' or '3d'), frames image_size square (default: 64 in 2D, 96 in 3D).
    `phase_mix` replaces PHASE_MIX for the kinds it names (check_phase_mix)."""
    if world not in WORLDS:
        raise ValueError(f"world must be one of {WORLDS}, got {world!r}")
    phase_mix = check_phase_mix(phase_mix or {})
    image_size = image_size or IMAGE_SIZES[world]
    if world == '3d':
        from ..sim3d import demonstrations3d as backend   # MuJoCo only when asked for
        make_world, target_uv_of = backend.training_world, backend.target_uv
    else:
        make_world, target_uv_of = World.random, target_uv_2d
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    velocity = np.empty((n, 2), np.float32)
    done = np.empty(n, np.float32)
    target_uv = np.zeros((n, 2), np.float32)
    target_seen = np.zeros(n, np.float32)
    instructions, phases = [], []
    per_world = SAMPLES_PER_WORLD if driver is None else DRIVEN_SAMPLES_PER_WORLD
    arenas = [_arena(rng, driver, make_world) for _ in range(-(-n // per_world))]
    try:
        i = 0
        for arena, poses in zip(arenas, _rollouts(arenas, rng, driver, image_size)):
            k = min(per_world, n - i)
            for w, goal, target, phase, text in _world_samples(rng, arena, poses, k, held_out,
                                                               phase_mix):
                linear, angular, d = expert_action(w, goal, target)
                images[i] = w.render(image_size, image_size)
                velocity[i] = linear, angular
                done[i] = d
                uv = target_uv_of(w, target, image_size) if goal.kind != 'stop' else None
                if uv is not None:
                    target_uv[i], target_seen[i] = uv, 1.0
                instructions.append(text)
                phases.append(phase)
                i += 1
            arena.world.close()   # World3D: free its render context as soon as it is done
    finally:
        for arena in arenas:
            arena.world.close()
    return {'images': images, 'instructions': instructions, 'velocity': velocity,
            'done': done, 'phase': phases, 'target_uv': target_uv, 'target_seen': target_seen}
