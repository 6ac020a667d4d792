"""Text batches: rows grouped by length so padding stays small, none lost or reordered."""
import numpy as np
import pytest

from vla_ros import tokenizer as tok
from vla_ros.data.corpus import vocabulary_texts
from vla_ros.data.easy_vqa import load_split
from vla_ros.train import TrainConfig
from vla_ros.training.batches import BatchMaker, length_groups, LENGTH_GROUPS


def test_length_groups_keep_every_row_once_in_order():
    rows = [(i, (list(range(n)), [])) for i, n in enumerate([3, 10, 11, 14, 15, 20, 21, 40, 2])]
    groups = length_groups(rows, (10, 14, 20))
    assert [[i for i, _ in g] for g in groups] == [[0, 1, 8], [2, 3], [4, 5], [6, 7]]
    assert length_groups(rows[:2], (10, 14, 20)) == [rows[:2]]    # no empty groups


def test_a_step_pads_each_group_to_its_own_bound():
    cfg = TrainConfig(easy_vqa_images_per_step=6, scene_images_per_step=4)
    rng = np.random.default_rng(0)
    tokenizer = tok.Tokenizer.from_corpus(vocabulary_texts())
    split = load_split('train')
    images, groups, pixels, grounding = BatchMaker(cfg, tokenizer, split, np.arange(50),
                                                   rng).make()
    assert images.shape[0] == 10 and pixels is None and grounding is None
    bounds = LENGTH_GROUPS + (max(g[0].shape[1] for g in groups),)
    rows = 0
    for ids, labels, index in groups:
        lengths = (ids != tok.PAD).sum(1)
        assert int(lengths.max()) == ids.shape[1]               # padded to its longest row
        bound = next(b for b in bounds if ids.shape[1] <= b)
        lower = ([0] + list(bounds))[bounds.index(bound)]
        assert int(lengths.min()) > lower                       # nothing shorter strays in
        assert ((labels != -100).sum(1) >= 1).all()             # every row has an answer
        rows += ids.shape[0]
    assert set(int(i) for g in groups for i in g[2]) == set(range(10))
    assert rows > 10 * 5                                        # several rows per image


def test_grounding_rows_name_what_the_frame_shows_or_does_not():
    pytest.importorskip('mujoco')
    from vla_ros.control.instructions import parse_instruction
    from vla_ros.sim3d.training_frames import labelled_frames
    from vla_ros.training.batches import grounding_rows
    rng = np.random.default_rng(0)
    kinds = {'seen': 0, 'not in view': 0}
    for frame in labelled_frames(rng, 12, 96, 0):
        view = frame.view
        where = {(o.color, o.shape): (o.u, o.v) for o in view.seen}
        visible = {(o.color, o.shape) for o in view.visible}
        for text, uv in grounding_rows(rng, view, 6):
            goal = parse_instruction(text)
            named = (goal.color, goal.shape)
            if uv is None:
                assert named not in visible, text
                kinds['not in view'] += 1
            else:
                assert where[named] == uv, text
                kinds['seen'] += 1
    assert kinds['seen'] > 20 and kinds['not in view'] > 5


def test_grounding_rows_train_the_pointer():
    pytest.importorskip('mujoco')
    import torch
    from vla_ros.model import ModelConfig, VLAModel
    from vla_ros.training.actions import pointer_loss
    cfg = TrainConfig(easy_vqa_images_per_step=1, scene_images_per_step=0,
                      scene3d_images_per_step=3, grounding_per_image=4)
    tokenizer = tok.Tokenizer.from_corpus(vocabulary_texts())
    images, _, _, grounding = BatchMaker(cfg, tokenizer, load_split('train'), np.arange(5),
                                         np.random.default_rng(1), 96).make()
    assert grounding['ids'].shape[0] == 12 and set(grounding['index'].tolist()) == {1, 2, 3}
    torch.manual_seed(0)
    model = VLAModel(ModelConfig(vocab_size=len(tokenizer), image_size=96, dim=32, heads=4,
                                 kv_heads=2, kv_rank=8, stem_channels=8, vision_layers=1,
                                 decoder_layers=1, num_queries=4, max_text_len=32,
                                 action_pointer=True))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(15):                  # the same batch: the pointer's loss must fall
        visual, patches = model.encode(images)
        index = grounding['index']
        loss = pointer_loss(model, visual[index], patches[index], grounding)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
