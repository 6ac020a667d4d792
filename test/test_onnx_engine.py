"""The ONNX Runtime engine against the torch engine with the shipped checkpoint: the same
answers, captions and refusals, act() within tolerance, and no torch in its process."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip('onnxruntime')

from vla_ros.data.easy_vqa import load_split  # noqa: E402
from vla_ros.engine import make_engine, QuestionError, resolve_backend  # noqa: E402
from vla_ros.engine.api import ActionResult, default_checkpoint, TextResult  # noqa: E402
from vla_ros.onnx_export import source_directory  # noqa: E402
from vla_ros.preprocess import ImageError  # noqa: E402

QUESTIONS = 200
INSTRUCTIONS = ('go to the red circle', 'drive to the blue square', 'turn left',
                'find the green triangle', 'stop')


@pytest.fixture(scope='module')
def engines():
    return make_engine(backend='torch'), make_engine(backend='onnxruntime')


@pytest.fixture(scope='module')
def split():
    return load_split('test')


def test_same_answers_as_torch_on_easy_vqa_test_questions(engines, split):
    torch_engine, ort_engine = engines
    assert (torch_engine.backend, ort_engine.backend) == ('torch', 'onnxruntime')
    differ = []
    for q, _a, i in split.questions[:QUESTIONS]:
        a, b = torch_engine.answer(split.images[i], q), ort_engine.answer(split.images[i], q)
        assert isinstance(b, TextResult) and b.latency_ms > 0
        if a.text != b.text or abs(a.confidence - b.confidence) > 1e-4:
            differ.append((q, i, a, b))
    assert not differ, differ[:5]


def test_same_captions_as_torch(engines, split):
    torch_engine, ort_engine = engines
    for i in range(20):
        a, b = torch_engine.caption(split.images[i]), ort_engine.caption(split.images[i])
        assert a.text == b.text and abs(a.confidence - b.confidence) < 1e-4, (i, a, b)


def test_act_matches_torch_within_tolerance(engines, split):
    torch_engine, ort_engine = engines
    for n, instruction in enumerate(INSTRUCTIONS):
        image = split.images[n]
        a, b = torch_engine.act(image, instruction), ort_engine.act(image, instruction)
        assert isinstance(b, ActionResult)
        assert np.allclose([a.linear, a.angular, a.done], [b.linear, b.angular, b.done],
                           atol=1e-4), (instruction, a, b)


def test_same_refusals_as_torch(engines):
    image = np.zeros((64, 64, 3), np.uint8)
    for question in ('', '  \n', 'why ' * 3000, None, 'word ' * 60):
        messages = []
        for engine in engines:
            with pytest.raises(QuestionError) as e:
                engine.answer(image, question)
            messages.append(str(e.value))
        assert messages[0] == messages[1]
    for bad in (np.zeros((64, 64, 3), np.float32), np.zeros((0, 5, 3), np.uint8), 'image'):
        messages = []
        for engine in engines:
            with pytest.raises(ImageError) as e:
                engine.caption(bad)
            messages.append(str(e.value))
        assert messages[0] == messages[1]


def test_any_frame_size_and_bgr_as_torch(engines, split):
    torch_engine, ort_engine = engines
    big = np.ascontiguousarray(np.repeat(np.repeat(split.images[3], 5, 0), 7, 1))
    for image, bgr in ((big, False), (split.images[3][:, :, ::-1].copy(), True)):
        assert torch_engine.answer(image, 'what shape is it?', bgr=bgr).text == \
            ort_engine.answer(image, 'what shape is it?', bgr=bgr).text
    assert ort_engine.image_size == torch_engine.image_size == 64
    assert ort_engine.checkpoint == torch_engine.checkpoint
    assert ort_engine.tokenizer.vocab == torch_engine.tokenizer.vocab
    assert ort_engine.prepare_image(big).shape == (1, 64, 64, 3)


def test_auto_backend_is_onnxruntime_with_a_fresh_export_else_torch(tmp_path):
    checkpoint = source_directory(default_checkpoint())
    assert resolve_backend('auto', checkpoint) == 'onnxruntime'   # the shipped export
    stale = tmp_path / 'stale'
    shutil.copytree(checkpoint, stale)
    config = stale / 'config.json'
    config.write_text(config.read_text() + ' ')     # the same model, but not re-exported
    assert resolve_backend('auto', str(stale)) == 'torch'
    onnx_only = tmp_path / 'onnx_only'
    onnx_only.mkdir()
    for name in ('config.json', 'tokenizer.json'):
        shutil.copy(os.path.join(checkpoint, name), onnx_only / name)
    shutil.copytree(os.path.join(checkpoint, 'onnx'), onnx_only / 'onnx')
    engine = make_engine(str(onnx_only), backend='auto')   # no model.safetensors
    assert engine.backend == 'onnxruntime'
    with pytest.raises(ValueError, match='backend must be one of'):
        make_engine(backend='tensorflow')


TORCH_FREE = """
import sys
import numpy as np
import vla_ros.engine, vla_ros.engine.api, vla_ros.engine.onnxruntime_backend
import vla_ros.engine.hf_families, vla_ros.onnx_manifest
import vla_ros.tokenizer, vla_ros.preprocess, vla_ros.model.config, vla_ros.bench
from vla_ros.model import ModelConfig
from vla_ros.engine import make_engine, QuestionError, TextResult
engine = make_engine(backend='onnxruntime')
print(engine.answer(np.zeros((64, 64, 3), np.uint8), 'what color is the shape?').text)
assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))
assert 'transformers' not in sys.modules
"""


def test_onnx_engine_process_never_imports_torch():
    run = subprocess.run([sys.executable, '-c', TORCH_FREE], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip()


def test_a_batch_gets_each_request_its_own_answer_on_both_backends(engines, split):
    """answer_batch: mixed images (some shared), prompts of several lengths, refusals in
    between; every answer is what answer() gives alone, on torch and on ONNX Runtime."""
    questions = split.questions[:60]
    shared = split.images[questions[0][2]]
    requests = [(split.images[i] if n % 3 else shared, q)
                for n, (q, _a, i) in enumerate(questions)]
    requests[5] = (shared, '   ')                                  # refused: empty
    requests[9] = (np.zeros((4, 4), np.float32), 'what color is the shape?')  # bad frame
    assert len({len(q.split()) for _i, q in requests}) > 2             # several lengths
    for engine in engines:
        batch = engine.answer_batch(requests)
        assert isinstance(batch[5], QuestionError) and isinstance(batch[9], ImageError)
        for n, (image, question) in enumerate(requests):
            if n in (5, 9):
                continue
            alone = engine.answer(image, question)
            assert (batch[n].text, batch[n].tokens) == (alone.text, alone.tokens), n
            assert batch[n].confidence == pytest.approx(alone.confidence, rel=1e-4, abs=1e-6)


def test_read_only_frames_are_encoded_once_and_writable_ones_every_time(engines, split):
    """The nodes' camera frames are read-only: asking about one again (another batch, a
    caption) reuses its encoding. A writable array may change between calls: never reused."""
    engine = engines[1]
    encoded = []
    real = engine._encode
    engine._encode = lambda pixels: (encoded.append(len(pixels)), real(pixels))[1]
    try:
        frozen = split.images[0].copy()
        frozen.flags.writeable = False
        first = engine.answer(frozen, 'what color is the shape?')
        engine.answer_batch([(frozen, 'what shape is this?'), (frozen, 'is there a circle?')])
        engine.caption(frozen)
        assert encoded == [1]
        assert engine.answer(frozen, 'what color is the shape?').text == first.text
        writable = split.images[0].copy()
        before = engine.answer(writable, 'what color is the shape?').text
        writable[:] = 255 - writable
        assert engine.answer(writable, 'what color is the shape?').text != before
        assert encoded == [1, 1, 1]
    finally:
        engine._encode = real


def test_the_batch_1_graphs_compute_what_the_any_batch_graphs_do(engines, split):
    """One frame runs on sessions whose batch axis is fixed at 1 (OnnxEngine): every graph's
    outputs there equal the any-batch session's, and a frame's row of a batch of three."""
    engine = engines[1]
    frames = np.concatenate([engine.pixels(split.images[i]) for i in range(3)])
    visual, patches = engine.encode(frames)                        # any-batch sessions
    with pytest.raises(Exception, match='pixels'):                 # batch 1 is fixed there
        engine.single_sessions['image_encoder'].run(None, {'pixels': frames})
    prompt = np.array([[1, 5, 9, 12]], np.int64)
    for b in range(3):
        one_visual, one_patches = engine.encode(frames[b:b + 1])   # batch-1 sessions
        np.testing.assert_allclose(one_visual, visual[b:b + 1], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(one_patches, patches[b:b + 1], rtol=1e-4, atol=1e-5)
        single = engine.single_sessions['decoder_step'].run(
            None, {'ids': prompt, 'visual': one_visual, 'past': engine._no_past})
        anyb = engine.sessions['decoder_step'].run(
            None, {'ids': prompt, 'visual': one_visual, 'past': engine._no_past})
        for a, s in zip(anyb, single):
            np.testing.assert_allclose(s, a, rtol=1e-4, atol=1e-5)
        feeds = {'last_hidden': single[1], 'patches': one_patches}
        head = [engine.single_sessions['action_head'], engine.sessions['action_head']]
        outs = [h.run(None, {i.name: feeds[i.name] for i in h.get_inputs()}) for h in head]
        for a, s in zip(*outs):
            np.testing.assert_allclose(s, a, rtol=1e-4, atol=1e-5)
