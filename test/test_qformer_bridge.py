"""The Q-Former bridge: `vla-ros train --vision-encoder DIR` trains the Q-Former, decoder
and action head on a frozen pretrained SigLIP / CLIP vision tower (BLIP-2's recipe).

Tiny random towers are built here in their real on-disk format (`save_pretrained`,
safetensors); the plumbing is what is checked (a real tower's accuracy is not): the tower
stays frozen, checkpoints leave its weights in its own directory, the checkpoint answers,
acts and grounds through the torch engine, and its ONNX export (the tower inside) gives
what torch gives. A missing or mismatched tower is one clear error.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

from safetensors.torch import load_file  # noqa: E402

from vla_ros.engine import make_engine  # noqa: E402
from vla_ros.errors import CheckpointError  # noqa: E402
from vla_ros.model import ModelConfig, VLAModel  # noqa: E402
from vla_ros.model.checkpoint import load_checkpoint  # noqa: E402
from vla_ros.onnx_export import export_onnx  # noqa: E402

IMAGE = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=32, patch_size=8)


def build_tower(directory, kind: str = 'siglip', **overrides) -> str:
    if kind == 'siglip':
        model = transformers.SiglipVisionModel(transformers.SiglipVisionConfig(
            **{**TINY, **overrides}))
    else:
        model = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(
            **{**TINY, **overrides}, projection_dim=16))
    model.save_pretrained(directory)
    with open(os.path.join(directory, 'preprocessor_config.json'), 'w') as f:
        json.dump({'image_mean': [0.48, 0.46, 0.41], 'image_std': [0.27, 0.26, 0.28]}, f)
    return str(directory)


def vla_ros(*args):
    return subprocess.run([sys.executable, '-m', 'vla_ros.cli', *args], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope='module')
def bridged(tmp_path_factory):
    """(tower dir, checkpoint dir): a few training steps on a tiny SigLIP tower."""
    root = tmp_path_factory.mktemp('bridge')
    tower = build_tower(root / 'siglip')
    config = root / 'tiny.yaml'
    config.write_text(
        'steps: 3\neasy_vqa_images_per_step: 4\nscene_images_per_step: 2\nval_images: 10\n'
        'action_samples_per_step: 4\neval_every: 3\n'
        'model: {dim: 32, heads: 2, kv_heads: 1, kv_rank: 8, decoder_layers: 1, '
        'action_pointer: true}\n')
    result = vla_ros('train', '--config', str(config), '--vision-encoder', tower,
                     '--out', str(root / 'ck'))
    assert result.returncode == 0, result.stderr
    return tower, str(root / 'ck')


def test_training_keeps_the_tower_frozen_and_out_of_the_checkpoint(bridged):
    tower, checkpoint = bridged
    cfg = json.loads(open(os.path.join(checkpoint, 'config.json')).read())
    assert cfg['vision_encoder'] == os.path.abspath(tower)
    assert (cfg['image_size'], cfg['vision_encoder_patch'], cfg['vision_encoder_width']) == \
        (32, 8, 32)
    stored = load_file(os.path.join(checkpoint, 'model.safetensors'))
    assert not any(k.startswith('vision.tower.') for k in stored)
    assert 'vision.project.weight' in stored and any(k.startswith('qformer.') for k in stored)
    model, _ = load_checkpoint(checkpoint)
    original = load_file(os.path.join(tower, 'model.safetensors'))
    loaded = model.vision.tower.state_dict()
    assert original and all(torch.equal(loaded[k], v) for k, v in original.items())
    model.train()
    assert not model.vision.tower.training            # frozen: stays in eval mode
    assert not any(p.requires_grad for p in model.vision.tower.parameters())


def test_the_bridged_checkpoint_serves_and_exports_with_the_tower_inside(bridged, tmp_path):
    tower, checkpoint = bridged
    engine = make_engine(checkpoint, backend='torch')
    assert engine.capabilities == {'answer', 'caption', 'act', 'ground'}
    answer = engine.answer(IMAGE, 'what color is the shape?')
    act = engine.act(IMAGE, 'go to the red circle')
    grounding = engine.ground(IMAGE, 'red circle')
    assert grounding.frame_size == (48, 64)
    # the ONNX export embeds the tower: the exported model runs without its directory
    copy = tmp_path / 'ck'
    shutil.copytree(checkpoint, copy)
    export_onnx(str(copy))
    moved = tmp_path / 'tower_moved'
    shutil.move(tower, moved)
    try:
        onnx = make_engine(str(copy), backend='onnxruntime')
        assert onnx.answer(IMAGE, 'what color is the shape?').text == answer.text
        linear = onnx.act(IMAGE, 'go to the red circle').linear
        assert linear == pytest.approx(act.linear, abs=1e-4)
        assert onnx.ground(IMAGE, 'red circle').boxes == grounding.boxes
        # torch needs the tower: a moved one is one clear error naming the file
        with pytest.raises(CheckpointError, match=r'config.json: file not found'):
            make_engine(checkpoint, backend='torch')
    finally:
        shutil.move(moved, tower)


def test_a_clip_tower_drops_its_class_token(tmp_path):
    tower = build_tower(tmp_path / 'clip', 'clip')
    cfg = ModelConfig(vocab_size=64, dim=32, heads=2, kv_heads=1, kv_rank=8, image_size=32,
                      vision_encoder=tower, vision_encoder_patch=8, vision_encoder_width=32,
                      action_pointer=True)
    model = VLAModel(cfg)
    visual, patches = model.encode(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))
    assert patches.shape == (2, cfg.num_patches, 32) and cfg.num_patches == 16
    assert cfg.grid_side == 4 and visual.shape == (2, cfg.num_queries, 32)


def test_bad_towers_are_refused_with_the_file_and_the_problem(tmp_path, bridged):
    _, checkpoint = bridged
    result = vla_ros('train', '--vision-encoder', str(tmp_path), '--steps', '1',
                     '--out', str(tmp_path / 'x'))
    assert result.returncode != 0
    assert 'config.json: file not found' in result.stderr.strip().splitlines()[-1]
    bigger = build_tower(tmp_path / 'other', image_size=64)
    cfg = json.loads(open(os.path.join(checkpoint, 'config.json')).read())
    cfg['vision_encoder'] = bigger
    moved = tmp_path / 'ck'
    shutil.copytree(checkpoint, moved)
    (moved / 'config.json').write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match='a 64 px tower .* trained on 32'):
        load_checkpoint(str(moved))
