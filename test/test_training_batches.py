"""Text batches: rows grouped by length so padding stays small, none lost or reordered."""
import numpy as np

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
    images, groups, pixels = BatchMaker(cfg, tokenizer, split, np.arange(50), rng).make()
    assert images.shape[0] == 10 and pixels is None
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
