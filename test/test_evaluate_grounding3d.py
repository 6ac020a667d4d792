"""`vla-ros eval --grounding3d`: the pointer's box scored against the simulator's
segmentation of the robot camera's frame."""
import numpy as np
import pytest

pytest.importorskip('mujoco')

from vla_ros.evaluate_grounding3d import (box_outcome, evaluate_grounding3d,  # noqa: E402
                                          OUTCOMES, palette_class)


def test_a_box_is_scored_by_what_the_segmentation_shows_under_it():
    classes = np.zeros((96, 96), np.uint8)
    red_cube, blue_sphere = palette_class('red', 'cube'), palette_class('blue', 'sphere')
    classes[40:60, 10:22] = red_cube
    classes[40:60, 70:80] = blue_sphere
    assert box_outcome((12, 36, 24, 48), classes, red_cube) == 'on the target'
    assert box_outcome((72, 36, 84, 48), classes, red_cube) == 'on another object'
    assert box_outcome((36, 0, 48, 12), classes, red_cube) == 'background'
    assert box_outcome(None, classes, red_cube) == 'not visible'
    # a box reaching past the frame is clipped, not wrapped to the other side
    assert box_outcome((-12.5, 50, 9.5, 62), classes, red_cube) == 'background'
    assert box_outcome((88, 50, 100, 62), classes, blue_sphere) == 'background'


def test_every_seen_object_is_grounded_once_and_shares_add_up(tmp_path):
    import torch
    from vla_ros import tokenizer as tok
    from vla_ros.data.corpus import vocabulary_texts
    from vla_ros.engine import make_engine
    from vla_ros.model import ModelConfig, VLAModel
    from vla_ros.model.checkpoint import save_checkpoint
    from vla_ros.sim3d.training_frames import EVAL_SEED_START, labelled_frames
    tokenizer = tok.Tokenizer.from_corpus(vocabulary_texts())
    torch.manual_seed(0)
    model = VLAModel(ModelConfig(vocab_size=len(tokenizer), image_size=96, dim=32, heads=4,
                                 kv_heads=2, kv_rank=8, stem_channels=8, vision_layers=1,
                                 decoder_layers=1, num_queries=4, max_text_len=32,
                                 action_pointer=True)).eval()
    save_checkpoint(model, tokenizer, str(tmp_path))
    report = evaluate_grounding3d(make_engine(str(tmp_path), backend='torch'), frames=6)
    frames = labelled_frames(np.random.default_rng([0, EVAL_SEED_START]), 6, 96, 0,
                             seed_start=EVAL_SEED_START, pixel_labels=True)
    seen = sum(len(f.view.seen) for f in frames)
    assert report['in_view']['n'] == seen > 0 and report['absent']['n'] == 6
    assert sum(report['in_view'][k] for k in OUTCOMES) == pytest.approx(1.0, abs=1e-3)
    assert sum(v['n'] for v in report['by_objects_in_view'].values()) == seen
