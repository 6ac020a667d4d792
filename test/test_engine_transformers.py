"""The transformers backend on tiny random Hugging Face models (Idefics3 / SmolVLM,
PaliGemma, LLaVA, Qwen2-VL, Qwen2.5-VL) built here in their real on-disk formats
(tiny_hf_models.py), offline.

Its replies must be exactly what the library's own processor + greedy `generate` give for
the same image and prompt (for Qwen2-VL, whose processor needs torchvision, its recipe by
hand); bad directories must end in CheckpointError naming the file;
replies are bounded in time; and the vqa_service node serves such a model over DDS.
"""
import json
import os
import shutil
import threading

import numpy as np
import pytest

os.environ['HF_HUB_OFFLINE'] = '1'
torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

from PIL import Image  # noqa: E402
from transformers import (AutoImageProcessor, AutoModelForImageTextToText,  # noqa: E402
                          AutoProcessor, AutoTokenizer)

from vla_ros.engine import (default_checkpoint, GenerationCanceled,  # noqa: E402
                            GenerationTimeout, make_engine, QuestionError,
                            resolve_backend, UnsupportedError)
from vla_ros.errors import CheckpointError  # noqa: E402

FAMILIES = ('idefics3', 'paligemma', 'llava', 'qwen2_vl', 'qwen2_5_vl')
QUESTION = 'what color is the shape?'
MAX_NEW_TOKENS = 8
IMAGE = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope='module')
def engines(model_dirs):
    return {name: make_engine(path, backend='transformers', max_new_tokens=MAX_NEW_TOKENS)
            for name, path in model_dirs.items()}


def qwen_inputs(directory: str, text: str):
    """Qwen2-VL's processor needs torchvision (absent), so its recipe by hand: the chat
    template's <|image_pad|> repeated grid_thw.prod() / merge^2 times, those tokens marked
    in mm_token_type_ids."""
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    image_processor = AutoImageProcessor.from_pretrained(directory, local_files_only=True)
    messages = [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': text}]}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    pixels = image_processor(images=[Image.fromarray(IMAGE)], return_tensors='pt')
    count = int(pixels['image_grid_thw'][0].prod()) // image_processor.merge_size ** 2
    inputs = tokenizer(prompt.replace('<|image_pad|>', '<|image_pad|>' * count),
                       return_tensors='pt')
    image_token = tokenizer.convert_tokens_to_ids('<|image_pad|>')
    inputs['mm_token_type_ids'] = (inputs['input_ids'] == image_token).int()
    return tokenizer, {**inputs, **pixels}


def reference(directory: str, family: str, text: str, **decoding) -> str:
    """The library's own answer: AutoProcessor + AutoModelForImageTextToText, greedy
    (`decoding`: generate's max_new_tokens, decode's skip_special_tokens)."""
    model = AutoModelForImageTextToText.from_pretrained(directory, local_files_only=True)
    if family.startswith('qwen'):
        processor, inputs = qwen_inputs(directory, text)
        return generate(model, processor, inputs, **decoding)
    processor = AutoProcessor.from_pretrained(directory, local_files_only=True)
    kwargs = {}
    if family == 'paligemma':
        prompt = text   # 'answer en ...' / 'caption en': the processor adds <image>, BOS, \n
    else:
        messages = [{'role': 'user', 'content': [{'type': 'image'},
                                                 {'type': 'text', 'text': text}]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        if family == 'idefics3':
            kwargs['do_image_splitting'] = False   # the engine's default budget: one tile
    inputs = processor(text=prompt, images=[Image.fromarray(IMAGE)], return_tensors='pt',
                       **kwargs)
    return generate(model, processor, inputs, **decoding)


def generate(model, processor, inputs, max_new_tokens: int = MAX_NEW_TOKENS,
             skip_special_tokens: bool = True) -> str:
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return processor.decode(out[0, inputs['input_ids'].shape[1]:],
                            skip_special_tokens=skip_special_tokens).strip()


@pytest.mark.parametrize('family', FAMILIES)
def test_answers_and_captions_are_what_generate_returns(engines, model_dirs, family):
    engine = engines[family]
    assert engine.config['model_type'] == family
    assert engine.backend == 'transformers'
    assert engine.capabilities == {'answer', 'caption'} | (
        {'ground', 'act'} if family in ('paligemma', 'qwen2_vl', 'qwen2_5_vl') else set())
    answer = engine.answer(IMAGE, QUESTION)
    prompt = f'answer en {QUESTION}' if family == 'paligemma' else QUESTION
    assert answer.text == reference(model_dirs[family], family, prompt)
    assert answer.text   # random weights, but not nothing: the comparison means something
    assert 0.0 <= answer.confidence <= 1.0 and 0 < answer.tokens <= MAX_NEW_TOKENS
    assert 0 < answer.first_token_ms <= answer.latency_ms
    caption = engine.caption(IMAGE)
    prompt = 'caption en' if family == 'paligemma' else 'Describe this image in one sentence.'
    assert caption.text == reference(model_dirs[family], family, prompt)
    # BGR frames are converted
    assert engine.answer(IMAGE[:, :, ::-1].copy(), QUESTION, bgr=True).text == answer.text


def test_auto_backend_picks_transformers_for_a_hugging_face_directory(model_dirs):
    assert resolve_backend('auto', model_dirs['llava']) == 'transformers'
    assert resolve_backend('auto', '') in ('torch', 'onnxruntime')   # the bundled model


def test_idefics3_image_budget(engines, model_dirs):
    engine = engines['idefics3']
    image_token = engine.processor.image_token

    def image_tokens(e, frame):
        ids = e.model_inputs(e.prepare_image(frame), e.question_prompt(QUESTION))['input_ids']
        return int((ids == e.tokenizer.convert_tokens_to_ids(image_token)).sum())
    one_tile = image_tokens(engine, IMAGE)
    assert one_tile == engine.processor.image_seq_len
    tiled = make_engine(model_dirs['idefics3'], backend='transformers', image_max_side=64,
                        image_splitting=True)
    assert image_tokens(tiled, IMAGE) == 5 * one_tile    # 2x2 tiles of 32 px + the global view
    big = np.zeros((480, 640, 3), np.uint8)
    assert engine.prepare_image(big).size == (512, 384)  # longest side within image_max_side
    # A budget below the 32-px tile shrinks the tile: a multiple of patch 4 x shuffle 2 = 8
    # px, (16 / 8)^2 = 4 image tokens, and the model runs on it.
    small = make_engine(model_dirs['idefics3'], backend='transformers', image_max_side=20)
    assert image_tokens(small, IMAGE) == 4 and small.answer(IMAGE, QUESTION).tokens > 0
    assert small.model_inputs(small.prepare_image(IMAGE), 'x <image>')[
        'pixel_values'].shape[-2:] == (16, 16)


def test_int8_weights_quantize_every_linear_layer_and_still_answer(model_dirs):
    engine = make_engine(model_dirs['llava'], backend='transformers', dtype='int8')
    kinds = {type(m).__module__ + '.' + type(m).__name__ for m in engine.model.modules()}
    assert 'torch.nn.modules.linear.Linear' not in kinds
    assert any('quantized' in k and k.endswith('.Linear') for k in kinds)
    answer = engine.answer(IMAGE, QUESTION)
    assert answer.text and answer.tokens > 0


def test_act_ground_and_bad_questions_are_refused_with_a_reason(engines):
    engine = engines['llava']
    with pytest.raises(UnsupportedError, match='transformers backend cannot follow instr'):
        engine.act(IMAGE, 'go to the red circle')     # LLaVA: no boxes (test_grounding.py)
    with pytest.raises(UnsupportedError, match='cannot ground'):
        engine.ground(IMAGE, 'the red circle')
    assert issubclass(UnsupportedError, QuestionError)   # nodes refuse them like bad questions
    with pytest.raises(QuestionError, match='empty'):
        engine.answer(IMAGE, '  ')


def test_a_tiny_deadline_stops_generation_with_a_timeout_error(model_dirs):
    engine = make_engine(model_dirs['llava'], backend='transformers', max_new_tokens=512,
                         timeout_s=1e-4)
    with pytest.raises(GenerationTimeout, match=r'passed its 0.0001 s deadline after .* 1 tok'):
        engine.answer(IMAGE, QUESTION)


def test_on_text_streams_the_reply_and_stops_it_when_asked(engines):
    engine = engines['idefics3']
    seen = []
    result = engine.answer(IMAGE, QUESTION, on_text=lambda t, n: seen.append((n, t)) or True)
    assert [n for n, _t in seen] == list(range(1, MAX_NEW_TOKENS + 1))
    assert seen[-1][1] == result.text and result.tokens == MAX_NEW_TOKENS
    seen.clear()
    with pytest.raises(GenerationCanceled, match='canceled after 3 tokens'):
        engine.answer(IMAGE, QUESTION, on_text=lambda t, n: seen.append(n) or n < 3)
    assert seen == [1, 2, 3]


def _copy(src, dst, edit=None):
    shutil.copytree(src, dst)
    if edit:
        path = os.path.join(dst, 'config.json')
        with open(path) as f:
            config = json.load(f)
        edit(config)
        with open(path, 'w') as f:
            json.dump(config, f)
    return str(dst)


def test_bad_model_directories_are_refused_naming_the_file(model_dirs, tmp_path):
    llava = model_dirs['llava']
    cases = [
        (str(tmp_path / 'nowhere'), 'nowhere: model directory not found'),
        (_copy(llava, tmp_path / 'unsupported', lambda c: c.update(model_type='bert')),
         "config.json: model_type 'bert' is not supported"),
        (_copy(llava, tmp_path / 'remote', lambda c: c.update(
            auto_map={'AutoModelForImageTextToText': 'modeling_x.XForVision'})),
         'config.json: the model brings its own Python code .* trust_remote_code is off'),
        (_copy(llava, tmp_path / 'arch', lambda c: c.update(architectures=['LlavaModel'])),
         'config.json: architectures .* are not an image-text-to-text LLaVA model'),
    ]
    no_config = _copy(llava, tmp_path / 'no_config')
    os.remove(os.path.join(no_config, 'config.json'))
    cases.append((no_config, 'no_config/config.json: file not found'))
    no_weights = _copy(llava, tmp_path / 'no_weights')
    os.rename(os.path.join(no_weights, 'model.safetensors'),
              os.path.join(no_weights, 'pytorch_model.bin'))
    cases.append((no_weights, 'model.safetensors: file not found .*pytorch_model.bin are '
                  'pickles'))
    # a processor that does not match the model: LLaVA's files next to an Idefics3 model
    mismatched = _copy(model_dirs['idefics3'], tmp_path / 'mismatched')
    for name in ('processor_config.json', 'tokenizer.json', 'tokenizer_config.json',
                 'chat_template.jinja'):
        shutil.copy(os.path.join(llava, name), mismatched)
    cases.append((mismatched, 'mismatched/processor_config.json: makes a LlavaProcessor, but '
                  "model_type 'idefics3' needs a Idefics3Processor"))
    for directory, message in cases:
        with pytest.raises(CheckpointError, match=message):
            make_engine(directory, backend='transformers')


def test_backend_and_directory_kind_must_agree(model_dirs):
    with pytest.raises(CheckpointError, match="a Hugging Face model .* the torch backend runs "
                       "the bundled model's format only"):
        make_engine(model_dirs['llava'], backend='torch')
    with pytest.raises(CheckpointError, match='no model_type: not a Hugging Face model'):
        make_engine(default_checkpoint(), backend='transformers')   # the bundled format
    with pytest.raises(CheckpointError, match='needs a model directory'):
        make_engine('', backend='transformers')


def test_cli_ask_with_a_hugging_face_model(model_dirs, capsys):
    from vla_ros.cli import main
    image = os.path.join(os.path.dirname(model_dirs['llava']), 'frame.png')
    Image.fromarray(IMAGE).save(image)
    main(['ask', '--model', model_dirs['llava'], '--backend', 'transformers', '--image', image,
          '--question', QUESTION, '--max-new-tokens', str(MAX_NEW_TOKENS), '--json'])
    reply = json.loads(capsys.readouterr().out)
    assert reply['text'] == reference(model_dirs['llava'], 'llava', QUESTION)


def vqa_over_dds(ros_executor, model: str, backend: str, question: str, image,
                 timeout: float = 20.0):
    """The response of a vqa_service node serving `model` (backend auto, which must pick
    `backend`) to one /vqa call with `image`, over DDS."""
    from rclpy.parameter import Parameter

    from vla_ros.ros.image_conversion import rgb_to_image
    from vla_ros.ros.vqa_service_node import VQAServiceNode
    from vla_ros.srv import VQA
    rclpy = pytest.importorskip('rclpy')
    params = {'model': model, 'backend': 'auto', 'max_new_tokens': MAX_NEW_TOKENS}
    node = VQAServiceNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    ros_executor.add_node(node)
    assert node.engine.backend == backend
    probe = rclpy.create_node(f'{backend}_probe')
    ros_executor.add_node(probe)
    client = probe.create_client(VQA, 'vqa')
    assert client.wait_for_service(timeout_sec=20), 'vqa service never appeared'
    done = threading.Event()
    future = client.call_async(VQA.Request(question=question, image=rgb_to_image(image)))
    future.add_done_callback(lambda _: done.set())
    assert done.wait(timeout), 'no /vqa response'
    response = future.result()
    assert response.success, response.error
    return response


def test_vqa_service_node_serves_a_transformers_model_over_dds(ros_executor, model_dirs):
    response = vqa_over_dds(ros_executor, model_dirs['idefics3'], 'transformers', QUESTION,
                            IMAGE)
    assert response.answer == reference(model_dirs['idefics3'], 'idefics3', QUESTION)


def test_vla_node_runs_a_transformers_model_and_refuses_instructions(rclpy_init, model_dirs):
    from rclpy.parameter import Parameter

    from vla_ros.ros.vla_node import VLANode
    params = {'model': model_dirs['llava'], 'caption_rate': 0.0,
              'max_new_tokens': MAX_NEW_TOKENS}
    node = VLANode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    try:
        assert node.engine.backend == 'transformers'
        assert node.actions.loop.known_words is None   # any words: the engine refuses
        with pytest.raises(UnsupportedError, match='cannot follow instructions'):
            node.actions.policy(IMAGE, 'go to the red circle')   # -> action_status refused
    finally:
        node.destroy_node()
