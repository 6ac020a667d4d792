"""The llamacpp backend: GGUF + mmproj through llama-cpp-python.

llama-cpp-python is an opt-in install (`scripts/setup.sh --with llamacpp`): where it is
missing, only the checks that need no llama.cpp run (file layout, the install hint).
Where it is installed, the tiny random SmolVLM of the transformers tests is converted to
GGUF with llama.cpp's own converter and served: answers equal llama-cpp-python's own
non-streamed chat completion for the same messages, over /vqa as well.
"""
import pytest

from vla_ros.engine import (GenerationCanceled, GenerationTimeout, make_engine,
                            resolve_backend)
from vla_ros.engine.llamacpp_backend import gguf_files, llamacpp_available
from vla_ros.engine.openai_backend import chat_messages
from vla_ros.errors import CheckpointError
from test_engine_transformers import IMAGE, MAX_NEW_TOKENS, QUESTION, vqa_over_dds

needs_llamacpp = pytest.mark.skipif(not llamacpp_available(),
                                    reason='llama-cpp-python not installed (opt-in: '
                                    'scripts/setup.sh --with llamacpp)')


def test_gguf_layout_is_checked_naming_the_directory(tmp_path):
    (tmp_path / 'model.gguf').write_bytes(b'')
    with pytest.raises(CheckpointError, match='mmproj'):
        gguf_files(str(tmp_path))
    (tmp_path / 'mmproj-model.gguf').write_bytes(b'')
    assert gguf_files(str(tmp_path)) == (str(tmp_path / 'model.gguf'),
                                         str(tmp_path / 'mmproj-model.gguf'))
    assert gguf_files(str(tmp_path / 'model.gguf'))[1] == str(tmp_path / 'mmproj-model.gguf')
    (tmp_path / 'other.gguf').write_bytes(b'')
    with pytest.raises(CheckpointError, match='exactly one model'):
        gguf_files(str(tmp_path))
    with pytest.raises(CheckpointError, match='no such file'):
        gguf_files(str(tmp_path / 'missing.gguf'))
    assert resolve_backend('auto', str(tmp_path)) == 'llamacpp'


@pytest.mark.skipif(llamacpp_available(), reason='llama-cpp-python is installed')
def test_without_llama_cpp_python_the_backend_says_how_to_install_it(tmp_path):
    for name in ('model.gguf', 'mmproj-model.gguf'):
        (tmp_path / name).write_bytes(b'')
    with pytest.raises(CheckpointError, match='--with llamacpp'):
        make_engine(str(tmp_path), backend='llamacpp')


@pytest.fixture(scope='module')
def gguf_dir(model_dirs, tmp_path_factory):
    if not llamacpp_available():
        pytest.skip('llama-cpp-python not installed (opt-in: scripts/setup.sh --with llamacpp)')
    from vla_ros.engine.gguf_convert import convert_to_gguf
    out = tmp_path_factory.mktemp('gguf')
    convert_to_gguf(model_dirs['idefics3'], str(out), outtype='f32', gpt2_pretokenizer=True)
    return str(out)


@pytest.fixture(scope='module')
def engine(gguf_dir):
    return make_engine(gguf_dir, max_new_tokens=MAX_NEW_TOKENS)


def reference(engine, text: str) -> str:
    """llama-cpp-python's own answer: one non-streamed, greedy chat completion."""
    reply = engine.llm.create_chat_completion(
        messages=chat_messages(engine._data_url(IMAGE, False), text),
        max_tokens=MAX_NEW_TOKENS, temperature=0.0, seed=0)
    return reply['choices'][0]['message']['content'].strip()


@needs_llamacpp
def test_answers_and_captions_are_llama_cpp_pythons_own(engine):
    assert engine.backend == 'llamacpp' and engine.capabilities == {'answer', 'caption'}
    answer = engine.answer(IMAGE, QUESTION)
    assert answer.text == reference(engine, QUESTION)
    assert answer.text                 # random weights, but something to compare
    assert 0 < answer.tokens <= MAX_NEW_TOKENS
    assert 0 < answer.first_token_ms <= answer.latency_ms
    assert engine.caption(IMAGE).text == reference(engine, 'Describe this image in one sentence.')
    assert engine.answer(IMAGE[:, :, ::-1].copy(), QUESTION, bgr=True).text == answer.text


@needs_llamacpp
def test_streaming_cancel_and_deadline(gguf_dir, engine):
    seen = []
    engine.answer(IMAGE, QUESTION, on_text=lambda text, n: seen.append(n) or True)
    assert seen == list(range(1, len(seen) + 1)) and seen
    with pytest.raises(GenerationCanceled):
        engine.answer(IMAGE, QUESTION, on_text=lambda text, n: False)
    quick = make_engine(gguf_dir, max_new_tokens=MAX_NEW_TOKENS, timeout_s=1e-6)
    with pytest.raises(GenerationTimeout, match='deadline'):
        quick.answer(IMAGE, QUESTION)


@needs_llamacpp
def test_vqa_service_node_serves_a_gguf_model_over_dds(ros_executor, gguf_dir, engine):
    response = vqa_over_dds(ros_executor, gguf_dir, 'llamacpp', QUESTION, IMAGE, timeout=60)
    assert response.answer == reference(engine, QUESTION)
