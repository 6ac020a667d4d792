"""Bad input never escapes as anything but a clear refusal: images, questions, instructions.

Property-based (hypothesis): every generated input either works or raises the one
documented error type with a reason; nothing else (no IndexError from a short buffer, no
UnicodeEncodeError from a lone surrogate, no hang). The number of cases is kept small in
the default run; VLA_ROS_FUZZ=1 runs the long version (tens of thousands of cases).
"""
import array
import math
import os
import time

import numpy as np
import pytest
from hypothesis import given, HealthCheck, settings, strategies as st

from vla_ros.control.action_loop import ActionLoop, REFUSED, RUNNING, STOPPED
from vla_ros.control.velocity_safety import VelocityLimits
from vla_ros.data.easy_vqa import load_split
from vla_ros.engine import InferenceEngine, QuestionError
from vla_ros.preprocess import ImageError

pytest.importorskip('rclpy')
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from vla_ros.ros.image_conversion import (  # noqa: E402
    message_to_rgb, rgb_to_compressed, SUPPORTED_ENCODINGS)

LONG = os.environ.get('VLA_ROS_FUZZ') == '1'
FUZZ = settings(max_examples=20_000 if LONG else 1_500, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
ENGINE_FUZZ = settings(max_examples=5_000 if LONG else 300, deadline=None,
                       suppress_health_check=[HealthCheck.too_slow])
ENCODINGS = SUPPORTED_ENCODINGS + ('32FC1', '32FC3', '64FC1', '16UC1', '8UC3', 'nv12',
                                   'nv21', '', 'RGB8', 'jpeg', 'rgb8 ', '\u00e9', 'x' * 300)


@st.composite
def raw_images(draw):
    """Headers that are sometimes right, mostly subtly wrong, and data to match or not."""
    encoding = draw(st.sampled_from(ENCODINGS) | st.text(max_size=12))
    height = draw(st.integers(0, 40) | st.sampled_from([2**31, 2**32 - 1]))
    width = draw(st.integers(0, 40) | st.sampled_from([2**31, 2**32 - 1]))
    bpp = draw(st.sampled_from([1, 2, 3, 4, 6, 8, 12]))
    step = draw(st.sampled_from([width * bpp, width * bpp + 1, width * bpp + 3,
                                 max(0, width * bpp - 1), 0]) | st.integers(0, 2**32 - 1))
    step %= 2**32
    exact = height * step
    length = draw(st.sampled_from([exact, exact + 1, max(0, exact - 1), 0])
                  if exact < 200_000 else st.integers(0, 5_000))
    fill = draw(st.sampled_from([0, 255, 127]))
    return Image(height=height, width=width, encoding=encoding, step=step,
                 is_bigendian=draw(st.integers(0, 255)),
                 data=array.array('B', bytes([fill]) * length))


def check_outcome(msg, rgb_or_error):
    if isinstance(rgb_or_error, ImageError):
        assert str(rgb_or_error), 'a refusal must say why'
        return
    rgb = rgb_or_error
    assert rgb.dtype == np.uint8 and rgb.shape == (msg.height, msg.width, 3)


def convert(msg):
    try:
        return message_to_rgb(msg)
    except ImageError as e:
        return e


@FUZZ
@given(raw_images())
def test_any_raw_image_converts_or_is_refused_with_a_reason(msg):
    check_outcome(msg, convert(msg))


@FUZZ
@given(st.binary(max_size=2_000),
       st.sampled_from(['jpeg', 'png', '', 'bmp', 'rgb8; jpeg compressed bgr8',
                        '16UC1; compressedDepth']))
def test_any_compressed_bytes_decode_or_are_refused(data, fmt):
    msg = CompressedImage(format=fmt, data=array.array('B', data))
    result = convert(msg)
    assert isinstance(result, ImageError) or (result.ndim == 3 and result.shape[2] == 3)


@ENGINE_FUZZ   # each case encodes and decodes two images: fewer cases
@given(st.integers(0, 10_000), st.integers(0, 255))
def test_truncated_or_corrupted_jpeg_and_png_are_refused_or_decoded(cut, flip):
    rng = np.random.default_rng(cut)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    for fmt in ('jpeg', 'png'):
        data = bytearray(rgb_to_compressed(rgb, fmt=fmt).data)
        data = data[:cut % (len(data) + 1)]
        if data:
            data[flip % len(data)] ^= 0xFF
        result = convert(CompressedImage(format=fmt, data=array.array('B', bytes(data))))
        assert isinstance(result, ImageError) or result.shape[2] == 3


def test_16_bit_nan_like_and_float_frames_are_handled():
    # float encodings (depth cameras) carry no colour: refused, even full of NaN / inf
    nan = np.array([np.nan, np.inf, -np.inf, 1.0], np.float32).tobytes() * 4
    msg = Image(height=4, width=4, encoding='32FC1', step=16, data=array.array('B', nan))
    with pytest.raises(ImageError, match='32FC1'):
        message_to_rgb(msg)
    # 16-bit in either byte order converts (all bit patterns are valid numbers)
    for big in (0, 1):
        words = np.arange(48, dtype='>u2' if big else '<u2') * 1000
        msg = Image(height=4, width=4, encoding='rgb16', step=24, is_bigendian=big,
                    data=array.array('B', words.tobytes()))
        assert message_to_rgb(msg).shape == (4, 4, 3)


def test_a_huge_frame_is_used():
    """8000x6000 rgb8 (144 MB): converted and answered about, not refused or crashed."""
    import cv2
    split = load_split('test')
    image = split.images[0]
    colour = split.objects[0][0].color
    rgb = cv2.resize(image, (8000, 6000), interpolation=cv2.INTER_NEAREST)
    msg = Image(height=6000, width=8000, encoding='rgb8', step=24000,
                data=array.array('B', rgb.tobytes()))
    assert message_to_rgb(msg).shape == (6000, 8000, 3)
    del msg
    engine = InferenceEngine()
    assert engine.answer(rgb, 'what color is the shape?').text == colour


# -- text --------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def engine():
    return InferenceEngine()


FRAME = np.full((64, 64, 3), 200, np.uint8)
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=600)


@ENGINE_FUZZ
@given(text=ANY_TEXT)
def test_any_question_is_answered_or_refused_with_a_reason(engine, text):
    try:
        result = engine.answer(FRAME, text)
    except QuestionError as e:
        assert str(e)
        return
    assert isinstance(result.text, str) and 0.0 <= result.confidence <= 1.0


@ENGINE_FUZZ
@given(text=ANY_TEXT)
def test_any_instruction_is_refused_or_acted_on_safely(engine, text):
    loop = ActionLoop(VelocityLimits(0.5, 1.5), known_words=set(engine.tokenizer.index))
    out = loop.start(text, 0.0)
    assert out.status.state in (RUNNING, REFUSED, STOPPED)
    if out.status.state == REFUSED:
        assert out.status.reason and out.command == (0.0, 0.0)
        return
    try:
        action = engine.act(FRAME, text)
    except QuestionError as e:   # the node turns this into a refusal with the reason
        assert str(e)
        return
    assert all(math.isfinite(x) for x in (action.linear, action.angular, action.done))


@pytest.mark.parametrize('text, words', [
    ('', 'empty'), ('   \t\n ', 'empty'), ('why' * 40_000, 'characters long'),
    ('what color is the shape? ' * 12, 'tokens long'),
])
def test_refusals_name_the_problem(engine, text, words):
    with pytest.raises(QuestionError, match=words):
        engine.answer(FRAME, text)


@pytest.mark.parametrize('text', [
    'what color is the shape? \U0001F600\U0001F916', 'WHAT COLOR\u0000 is\x1b[31m the shape',
    'what colour is the shape\ud800?', 'q\u0301uel est la forme ?', '\u202ewhat shape\u202c',
])
def test_unicode_emoji_control_characters_and_lone_surrogates_get_an_answer(engine, text):
    assert engine.answer(FRAME, text).text


def test_a_100k_character_question_or_instruction_costs_no_more_than_a_normal_one(engine):
    text = 'red ' * 25_000
    start = time.perf_counter()
    with pytest.raises(QuestionError):
        engine.answer(FRAME, text)
    loop = ActionLoop(VelocityLimits(0.5, 1.5), known_words=set(engine.tokenizer.index))
    out = loop.start(text, 0.0)
    assert out.status.state == REFUSED and out.command == (0.0, 0.0)
    # Generous bound against accidental quadratic work; a normal answer takes ~3 ms.
    assert time.perf_counter() - start < 5.0
