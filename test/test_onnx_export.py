"""`vla-ros export`: the ONNX export of the shipped checkpoint, its manifest, and the clear
refusal of a missing, corrupt or stale export (the error names the file)."""
import json
import os
import shutil

import pytest

pytest.importorskip('onnxruntime')

from vla_ros.engine.api import default_checkpoint, file_sha256  # noqa: E402
from vla_ros.errors import CheckpointError  # noqa: E402
from vla_ros.onnx_export import export_onnx, source_directory  # noqa: E402
from vla_ros.onnx_manifest import GRAPHS, MANIFEST, read_manifest  # noqa: E402
from vla_ros.engine.onnxruntime_backend import OnnxEngine  # noqa: E402

CHECKPOINT = source_directory(default_checkpoint())
COMMITTED = os.path.join(CHECKPOINT, 'onnx')
QUESTION = 'what color is the shape?'


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """A copy of the shipped checkpoint with a fresh export in its onnx/ folder."""
    directory = tmp_path_factory.mktemp('checkpoint') / 'vla_tiny'
    directory.mkdir()
    for name in ('config.json', 'tokenizer.json', 'model.safetensors'):
        shutil.copy(os.path.join(CHECKPOINT, name), directory / name)
    manifest = export_onnx(str(directory))
    return str(directory), manifest


def test_export_writes_small_graphs_and_a_manifest_that_loads(exported, tmp_path):
    directory, manifest = exported
    assert set(manifest['graphs']) == set(GRAPHS)
    total = sum(os.path.getsize(g['path']) for g in manifest['graphs'].values())
    assert total < 5 * 2**20, f'export is {total / 2**20:.1f} MB'
    for name, (file, inputs, outputs) in GRAPHS.items():
        graph = manifest['graphs'][name]
        assert graph['path'] == os.path.join(directory, 'onnx', file)
        assert set(graph['inputs']) <= set(inputs) and graph['outputs'] == list(outputs)
    assert manifest['opset'] >= 17
    image = __import__('numpy').full((64, 64, 3), 200, 'uint8')
    assert OnnxEngine(directory).answer(image, QUESTION).text == \
        OnnxEngine(CHECKPOINT).answer(image, QUESTION).text
    # --out elsewhere: the checkpoint directory is left alone
    out = tmp_path / 'elsewhere'
    export_onnx(directory, str(out))
    assert sorted(os.listdir(out)) == sorted([MANIFEST] + [f for f, _, _ in GRAPHS.values()])


def test_committed_export_matches_the_shipped_checkpoint(exported):
    manifest = read_manifest(COMMITTED, CHECKPOINT)   # raises when stale or corrupt
    for name, digest in manifest['checkpoint_sha256'].items():
        assert file_sha256(os.path.join(CHECKPOINT, name)) == digest, name
    # Export is deterministic: the same torch re-exports the same graphs, node for node,
    # with the same weights up to float rounding (folding batch norm into the stem's
    # convolutions rounds differently on another CPU: 2e-7 apart, so not byte-identical).
    directory, fresh = exported
    if fresh['exported_with'] == manifest['exported_with']:
        for name, (file, _, _) in GRAPHS.items():
            assert_same_graph(os.path.join(COMMITTED, file),
                              os.path.join(directory, 'onnx', file), name)


def assert_same_graph(committed: str, fresh: str, name: str):
    import numpy as np
    import onnx
    from onnx import numpy_helper
    a, b = onnx.load(committed), onnx.load(fresh)
    assert [n.SerializeToString() for n in a.graph.node] == \
        [n.SerializeToString() for n in b.graph.node], f'{name}: the graphs differ'
    assert [t.name for t in a.graph.initializer] == [t.name for t in b.graph.initializer]
    for x, y in zip(a.graph.initializer, b.graph.initializer):
        x, y = numpy_helper.to_array(x), numpy_helper.to_array(y)
        assert x.shape == y.shape and np.allclose(x, y, rtol=0, atol=1e-5), name


def _copy(exported, tmp_path):
    src, _ = exported
    dst = tmp_path / 'ckpt'
    shutil.copytree(src, dst)
    return dst


def test_stale_export_is_refused_naming_the_changed_file(exported, tmp_path):
    ckpt = _copy(exported, tmp_path)
    config = json.loads((ckpt / 'config.json').read_text())
    (ckpt / 'config.json').write_text(json.dumps(config, indent=4))   # same model, new bytes
    with pytest.raises(CheckpointError, match='stale export') as e:
        OnnxEngine(str(ckpt))
    assert str(ckpt / 'onnx' / MANIFEST) in str(e.value)
    assert str(ckpt / 'config.json') in str(e.value) and 'vla-ros export' in str(e.value)


@pytest.mark.parametrize('damage, words', [
    ('truncate', 'corrupt or modified'),
    ('delete', 'file not found'),
    ('garbage_with_matching_hash', 'ONNX Runtime cannot load it'),
])
def test_corrupt_or_missing_graph_is_refused_naming_the_file(exported, tmp_path, damage, words):
    ckpt = _copy(exported, tmp_path)
    graph = ckpt / 'onnx' / 'decoder_step.onnx'
    if damage == 'truncate':
        graph.write_bytes(graph.read_bytes()[:1000])
    elif damage == 'delete':
        graph.unlink()
    else:   # bytes ONNX Runtime cannot parse, with the manifest updated to match them
        graph.write_bytes(b'not an onnx graph')
        manifest_path = ckpt / 'onnx' / MANIFEST
        manifest = json.loads(manifest_path.read_text())
        manifest['graphs']['decoder_step']['sha256'] = file_sha256(str(graph))
        manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=words) as e:
        OnnxEngine(str(ckpt))
    assert str(graph) in str(e.value)


def test_missing_or_invalid_manifest_is_refused_naming_it(exported, tmp_path):
    ckpt = _copy(exported, tmp_path)
    manifest = ckpt / 'onnx' / MANIFEST
    manifest.write_text('{"format": 1}')
    with pytest.raises(CheckpointError, match='invalid manifest') as e:
        OnnxEngine(str(ckpt))
    assert str(manifest) in str(e.value)
    manifest.unlink()
    with pytest.raises(CheckpointError, match='file not found') as e:
        OnnxEngine(str(ckpt))
    assert str(manifest) in str(e.value)


def test_export_without_weights_is_used_without_them(exported, tmp_path):
    """A robot may ship only config, tokenizer and the export (no safetensors)."""
    ckpt = _copy(exported, tmp_path)
    (ckpt / 'model.safetensors').unlink()
    image = __import__('numpy').zeros((64, 64, 3), 'uint8')
    assert OnnxEngine(str(ckpt)).caption(image).text


@pytest.mark.parametrize('lookup_after_text', [False, True])
def test_a_3d_shaped_model_exports_and_answers_as_torch(tmp_path, lookup_after_text):
    """decoder_patches and a depth-2 stem, as the 3D recipe's model; both orders of the
    decoder layer's attentions."""
    import numpy as np
    import torch

    from vla_ros.engine.torch_backend import InferenceEngine
    from vla_ros.model import ModelConfig, VLAModel
    from vla_ros.model.checkpoint import save_checkpoint
    from vla_ros.tokenizer import Tokenizer
    words = ['what', 'color', 'is', 'the', 'shape', 'red', 'blue', 'circle']
    tokenizer = Tokenizer(words)
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=len(tokenizer), dim=32, heads=4, kv_heads=2, kv_rank=8,
                      stem_channels=8, vision_layers=1, qformer_layers=1, decoder_layers=1,
                      num_queries=4, max_text_len=24, mlp_ratio=2, action_hidden=16,
                      action_pointer=True, decoder_patches=True, stem_depth=2,
                      decoder_lookup_after_text=lookup_after_text)
    model = VLAModel(cfg).eval()
    with torch.no_grad():                  # sharpen it: replies are not argmax tie-breaks
        model.decoder.embed.weight.mul_(20)
    save_checkpoint(model, tokenizer, str(tmp_path))
    export_onnx(str(tmp_path))
    torch_engine, ort_engine = InferenceEngine(str(tmp_path)), OnnxEngine(str(tmp_path))
    rng = np.random.default_rng(0)
    for question in ('what color is the shape?', 'is the circle red?', 'what shape?'):
        image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        a, b = torch_engine.answer(image, question), ort_engine.answer(image, question)
        assert a.text == b.text and a.confidence == pytest.approx(b.confidence, rel=1e-4)
