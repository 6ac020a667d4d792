"""The pointer action head and its second training stage."""
import dataclasses

import numpy as np
import torch

from vla_ros.model import ModelConfig, VLAModel
from vla_ros.model.action_head import patch_grid
from vla_ros.sim.demonstrations import sample_batch
from vla_ros.train import init_model, pointer_target, TrainConfig

CFG = ModelConfig(vocab_size=64, dim=32, heads=2, kv_heads=1, kv_rank=8, vision_layers=1,
                  decoder_layers=1, action_hidden=16, action_pointer=True)


def test_pointer_head_shapes_and_gradients():
    torch.manual_seed(0)
    model = VLAModel(CFG)
    pixels = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    ids = torch.randint(5, 64, (3, 6))
    visual, patches = model.encode(pixels)
    velocity, done = model.act(visual, ids, torch.tensor([6, 4, 2]), patches=patches)
    assert velocity.shape == (3, 2) and done.shape == (3,)
    assert velocity.abs().max() <= 1
    _, _, logits = model.act(visual, ids, patches=patches, with_pointer=True)
    assert logits.shape == (3, CFG.num_patches + 1)
    (velocity.sum() + done.sum() + logits.sum()).backward()
    assert model.vision.patch.weight.grad.abs().sum() > 0   # the pointer trains the vision


def test_pointer_target_is_a_gaussian_at_the_target_or_not_in_view():
    grid = patch_grid(8)
    uv = torch.tensor([[0.0625, 0.9375], [0.5, 0.5]])
    target = pointer_target(grid, uv, torch.tensor([1.0, 0.0]))
    assert torch.allclose(target.sum(1), torch.ones(2))
    assert target[0, :-1].argmax() == 56 and target[0, -1] == 0   # bottom-left patch
    assert target[1, -1] == 1


def test_demonstrations_say_where_the_target_was_drawn():
    from vla_ros.data.vocabulary import COLORS
    from vla_ros.control.instructions import parse_instruction
    b = sample_batch(np.random.default_rng(3), 64)
    seen = np.flatnonzero(b['target_seen'] == 1)
    assert 0 < len(seen) < 64
    hits = 0
    for i in seen:
        colour = parse_instruction(b['instructions'][i]).color
        u, v = b['target_uv'][i]
        pixel = b['images'][i][min(63, int(v * 64)), min(63, int(u * 64))].astype(int)
        hits += int(np.abs(pixel - np.array(COLORS[colour])).max() <= 40)
    assert hits >= 0.8 * len(seen), f'{hits} of {len(seen)} target centres have its colour'
    assert not any(b['target_seen'][i] for i, p in enumerate(b['phase']) if p == 'stop')


def test_second_stage_swaps_in_the_pointer_head_and_keeps_the_rest(tmp_path):
    from vla_ros.model.checkpoint import save_checkpoint
    from vla_ros.tokenizer import Tokenizer
    torch.manual_seed(1)
    tokenizer = Tokenizer.from_corpus(['go to the red circle'])
    mlp_cfg = dataclasses.replace(CFG, vocab_size=len(tokenizer), action_pointer=False)
    base = VLAModel(mlp_cfg)
    save_checkpoint(base, tokenizer, tmp_path / 'mlp_head')
    model, _ = init_model(TrainConfig(init_from=str(tmp_path / 'mlp_head'),
                                      model={'action_pointer': True}))
    assert model.cfg == dataclasses.replace(mlp_cfg, action_pointer=True)
    assert type(model.action).__name__ == 'PointerActionHead'
    for name, value in base.state_dict().items():
        if not name.startswith('action.'):
            assert torch.equal(model.state_dict()[name], value), name


def test_the_map_reads_the_whole_view_not_only_under_the_pointer():
    torch.manual_seed(2)
    model = VLAModel(dataclasses.replace(CFG, action_map=True)).eval()
    ids = torch.randint(5, 64, (1, 6))
    patches = torch.randn(1, CFG.num_patches, CFG.dim)
    visual = torch.randn(1, CFG.num_queries, CFG.dim)
    with torch.no_grad():
        p = model.action.pointer_logits(model.decoder(ids, visual)[0][:, -1], patches)
        far = int(p[0, :-1].argmin())              # the patch the pointer looks at least
        before = model.act(visual, ids, patches=patches)[0]
        moved = patches.clone()
        moved[0, far] += 3.0                       # something appears away from the target
        after = model.act(visual, ids, patches=moved)[0]
    assert (after - before).abs().max() > 1e-4


def test_adding_the_map_keeps_the_pointer_and_frozen_training_only_moves_the_head(tmp_path):
    from vla_ros.model.checkpoint import save_checkpoint
    from vla_ros.train import train
    from vla_ros.tokenizer import Tokenizer
    torch.manual_seed(3)
    tokenizer = Tokenizer.from_corpus(['go to the red circle'])
    base = VLAModel(dataclasses.replace(CFG, vocab_size=len(tokenizer)))
    save_checkpoint(base, tokenizer, tmp_path / 'pointer')
    cfg = TrainConfig(init_from=str(tmp_path / 'pointer'), model={'action_map': True},
                      frozen_backbone=True, steps=2, action_samples_per_step=16,
                      dagger_fraction=0.5, val_images=4, eval_every=2, threads=1,
                      out=str(tmp_path / 'map'))
    model, _ = init_model(cfg)
    assert model.cfg.action_map and hasattr(model.action, 'map_conv')
    for name in ('action.query.weight', 'action.key.weight', 'action.not_in_view'):
        assert torch.equal(model.state_dict()[name], base.state_dict()[name]), name
    train(cfg, progress=False)
    from vla_ros.model.checkpoint import load_checkpoint
    trained, _ = load_checkpoint(str(tmp_path / 'map'))
    for name, value in base.state_dict().items():
        same = torch.equal(trained.state_dict()[name], value)
        assert same != name.startswith('action.'), name   # backbone frozen, head trained


def test_a_frozen_backbone_stage_without_demonstrations_is_refused():
    import pytest
    from vla_ros.train import train
    with pytest.raises(ValueError, match='action_samples_per_step'):
        train(TrainConfig(frozen_backbone=True, action_samples_per_step=0), progress=False)
