"""Behaviour-cloning samples: the documented fields, consistent labels, balance, determinism."""
from collections import Counter
import re

import numpy as np
import pytest

from vla_ros.sim.demonstrations import sample_batch
from vla_ros.control.instructions import parse_instruction, TEMPLATES


def test_batch_fields_and_ranges():
    b = sample_batch(np.random.default_rng(0), 300)
    assert set(b) == {'images', 'instructions', 'velocity', 'done', 'phase', 'target_uv',
                      'target_seen'}
    assert b['target_uv'].shape == (300, 2) and b['target_seen'].shape == (300,)
    assert 0 <= b['target_uv'].min() and b['target_uv'].max() <= 1
    assert b['images'].shape == (300, 64, 64, 3) and b['images'].dtype == np.uint8
    assert b['velocity'].shape == (300, 2) and b['velocity'].dtype == np.float32
    assert b['done'].shape == (300,) and b['done'].dtype == np.float32
    assert len(b['instructions']) == len(b['phase']) == 300
    assert np.abs(b['velocity']).max() <= 1.0 and set(np.unique(b['done'])) <= {0.0, 1.0}
    assert sample_batch(np.random.default_rng(1), 5, image_size=32)['images'].shape[1:] == \
        (32, 32, 3)


def test_labels_agree_with_phase_and_instruction():
    b = sample_batch(np.random.default_rng(1), 400)
    for text, phase, (linear, angular), done in zip(b['instructions'], b['phase'],
                                                    b['velocity'], b['done']):
        goal = parse_instruction(text)   # every instruction is one the node would accept
        assert (phase == 'stop') == (goal.kind == 'stop')
        assert (done == 1) == (phase in ('done', 'stop')), (text, phase)
        if done:
            assert linear == angular == 0
        if phase == 'search':
            assert linear == 0 and angular > 0   # target behind: turn left
        if goal.kind == 'face':
            assert linear == 0


def test_mix_of_kinds_and_phases_is_balanced():
    b = sample_batch(np.random.default_rng(2), 1500)
    phases = Counter(b['phase'])
    for phase in ('search', 'far', 'near', 'turn', 'done', 'stop', 'decoy'):
        assert phases[phase] / 1500 > 0.05, phases
    assert 0.2 < b['done'].mean() < 0.5
    moving = b['velocity'][:, 0] > 0.5
    assert 0.15 < moving.mean() < 0.6, 'far states drive at speed'


def held_out_phrase(text):
    """The held-out template phrase in `text`, or None."""
    phrases = [t.split('{t}')[0].strip() for _train, held in TEMPLATES.values() for t in held]
    return next((p for p in phrases if re.search(rf'\b{p}\b', text)), None)


def test_deterministic_for_a_generator_state_and_wordings_split():
    a, b = (sample_batch(np.random.default_rng(3), 40) for _ in range(2))
    assert np.array_equal(a['images'], b['images']) and a['instructions'] == b['instructions']
    assert np.array_equal(a['velocity'], b['velocity'])
    train = sample_batch(np.random.default_rng(4), 300)['instructions']
    held = sample_batch(np.random.default_rng(4), 300, held_out=True)['instructions']
    assert not [t for t in train if held_out_phrase(t)]
    assert all(held_out_phrase(t) for t in held)


def test_a_learner_can_drive_the_rollouts():
    from vla_ros.sim.demonstrations import DRIVEN_SAMPLES_PER_WORLD
    batches = []

    def spinning(frames, instructions):
        assert len(frames) == len(instructions)
        batches.append(len(frames))
        return [(0.0, 1.0, 0.0)] * len(frames)
    n = 2 * DRIVEN_SAMPLES_PER_WORLD
    b = sample_batch(np.random.default_rng(5), n, driver=spinning)
    assert batches and len(b['instructions']) == n
    assert max(batches) == 2, 'both arenas are driven in one batch'


def test_decoy_states_face_a_lookalike_within_reach_and_are_never_done():
    from vla_ros.sim.demonstrations import _decoy
    from vla_ros.sim.world import REACH_DISTANCE, World
    rng = np.random.default_rng(7)
    for seed in range(30):
        world = World.random(seed)
        t = world.shapes[world.target]
        world.pose = _decoy(world, world.target, rng)
        near = [j for j in range(1, len(world.shapes)) if world.gap(j) <= REACH_DISTANCE]
        alike = [j for j in near if world.shapes[j].color == t.color
                 or world.shapes[j].shape == t.shape]
        if any(s.color == t.color or s.shape == t.shape for s in world.shapes[1:]):
            near = alike
        assert near and min(abs(world.bearing(j)) for j in near) < 1.2, seed
    b = sample_batch(np.random.default_rng(6), 800)
    decoys = [i for i, p in enumerate(b['phase']) if p == 'decoy']
    assert len(decoys) > 20 and not b['done'][decoys].any()


def test_lookalike_states_face_a_lookalike_with_the_target_out_of_view():
    from vla_ros.sim.world import World
    mix = {'goto': {'far': 0.5, 'lookalike': 0.5}, 'face': {'turn': 0.5, 'lookalike': 0.5}}
    b = sample_batch(np.random.default_rng(8), 400, phase_mix=mix)
    assert set(b['phase']) <= {'far', 'near', 'done', 'turn', 'search', 'lookalike', 'stop'}
    looks = [i for i, p in enumerate(b['phase']) if p == 'lookalike']
    assert len(looks) > 80, Counter(b['phase'])
    # the expert searches on and the pointer has nothing to point at
    assert np.allclose(b['velocity'][looks], [0.0, 0.7]) and not b['done'][looks].any()
    assert not b['target_seen'][looks].any()
    # ... while a look-alike is straight ahead
    from vla_ros.sim.demonstrations import _lookalike, phase_of
    from vla_ros.control.instructions import Goal
    rng = np.random.default_rng(9)
    ahead = 0
    for seed in range(30):
        world = World.random(seed)
        t = world.shapes[world.target]
        goal = Goal('goto', t.color, t.shape)
        world.pose = _lookalike(world, goal, world.target, rng)
        assert phase_of(world, goal, world.target) == 'search', seed
        alike = [j for j in range(1, len(world.shapes)) if world.shapes[j].color == t.color
                 or world.shapes[j].shape == t.shape] or range(1, len(world.shapes))
        ahead += min(abs(world.bearing(j)) for j in alike) < 0.8
    assert ahead >= 25


def test_a_phase_mix_is_checked():
    from vla_ros.sim.demonstrations import check_phase_mix, PHASE_MIX
    assert check_phase_mix({}) == PHASE_MIX
    assert check_phase_mix({'goto': {'far': 1.0}})['face'] == PHASE_MIX['face']
    for bad in ({'goto': {'turn': 1.0}}, {'goto': {'far': 0.5}}, {'jump': {'far': 1.0}},
                {'goto': {'far': 1.5, 'near': -0.5}}):
        with pytest.raises(ValueError, match='phase_mix'):
            check_phase_mix(bad)
