"""Labelled 3D-arena frames for the language side: reproducible, training seeds and
styles apart from evaluation's, and every label about what the camera really sees."""
import numpy as np
import pytest

pytest.importorskip('mujoco')

from vla_ros.evaluate_scenes3d import eval_frames, named_objects  # noqa: E402
from vla_ros.sim3d.training_frames import EVAL_SEED_START, labelled_frames  # noqa: E402
from vla_ros.sim3d.world3d import World3D  # noqa: E402


def test_training_frames_use_training_seeds_and_styles_only():
    frames = list(labelled_frames(np.random.default_rng(0), 12, image_size=64))
    assert len(frames) == 12
    for f in frames:
        assert f.seed < EVAL_SEED_START
        assert f.image.shape == (64, 64, 3) and f.image.dtype == np.uint8
        assert not World3D.random(f.seed).style.held_out


def test_most_frames_show_objects_and_captions_name_exactly_the_seen_ones():
    frames = list(labelled_frames(np.random.default_rng(1), 24))
    assert sum(bool(f.seen) for f in frames) >= 12, 'viewpoints should mostly aim at objects'
    for f in frames:
        assert named_objects(f.caption) == set(f.seen)
        assert len(f.questions) == 8
        assert all(isinstance(a, str) and a for _q, a, _t in f.questions)


def test_evaluation_frames_are_reproducible_and_from_consecutive_held_out_seeds():
    a, b = eval_frames(6), eval_frames(6)
    assert [f.seed for f in a] == [EVAL_SEED_START + k // 4 for k in range(6)]
    for x, y in zip(a, b):
        assert np.array_equal(x.image, y.image)
        assert x.questions == y.questions and x.caption == y.caption
    held = eval_frames(2, held_out_style=True)
    assert all(World3D.random(f.seed, held_out_style=True).style.held_out for f in held)


def test_named_objects_reads_colour_shape_pairs():
    assert named_objects('a red sphere on the left, a gray cube in the center and a blue '
                         'pyramid on the right') == {'red sphere', 'gray cube', 'blue pyramid'}
    assert named_objects('nothing but the floor and walls') == set()


def test_a_frame_pool_renders_once_and_asks_new_questions_each_draw():
    from vla_ros.sim3d.training_frames import FramePool
    pool = FramePool(np.random.default_rng(2), 3)
    first = pool.draw(30)
    assert len(pool.frames) == 3 and {f.seed for f in first} <= {f.seed for f in pool.frames}
    again = [f for f in first if f.image is first[0].image]
    assert len(again) > 1, 'drawn with replacement from 3 frames'
    assert len({tuple(f.questions) for f in again}) > 1, 'each draw asks new questions'
    for f in first:
        assert named_objects(f.caption) == set(f.seen) and len(f.questions) == 8


def test_a_pool_rendered_by_two_processes_holds_the_same_frames_as_by_one():
    from vla_ros.sim3d import training_frames
    one = training_frames.FramePool(np.random.default_rng(4), 7, image_size=32, workers=1)
    two = training_frames.FramePool(np.random.default_rng(4), 7, image_size=32, workers=2)
    old = training_frames.CHUNK
    training_frames.CHUNK = 3      # three chunks, so two processes share them
    try:
        a, b = one.render(), two.render()
    finally:
        training_frames.CHUNK = old
    assert len(a) == len(b) == 7
    for x, y in zip(a, b):
        assert x.seed == y.seed and np.array_equal(x.image, y.image) and x.caption == y.caption


def test_busy_viewpoints_show_more_objects_and_evaluation_never_uses_them():
    from vla_ros.sim3d.training_frames import FramePool, viewpoint
    seeds = range(20)
    plain, busy = [], []
    for seed in seeds:
        world = World3D.random(seed)
        try:
            for tries, counts in ((1, plain), (3, busy)):
                rng = np.random.default_rng(seed)
                for _ in range(5):
                    world.pose = viewpoint(world, rng, busy_tries=tries)
                    counts.append(sum(world.in_view(j) for j in world.objects))
        finally:
            world.close()
    assert np.mean(busy) > np.mean(plain) + 0.5, (np.mean(busy), np.mean(plain))
    pool = FramePool(np.random.default_rng(5), 4, image_size=32, busy_tries=3)
    assert len(pool.render()) == 4 and pool.busy_tries == 3
    with pytest.raises(ValueError, match='busy_tries'):
        next(labelled_frames(np.random.default_rng(0), 1, seed_start=EVAL_SEED_START,
                             busy_tries=2))
