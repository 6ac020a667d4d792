"""sensor_msgs image <-> numpy conversion: every supported path and every refusal.

Pure functions on real message objects; nothing spins.
"""
import array

import numpy as np
import pytest

pytest.importorskip('rclpy')  # needs the ROS message packages

from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from vla_ros.preprocess import ImageError  # noqa: E402
from vla_ros.ros.image_conversion import (  # noqa: E402
    check_image, compressed_to_rgb, image_to_rgb, message_to_rgb, rgb_to_compressed,
    rgb_to_image, SUPPORTED_ENCODINGS)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)   # odd sizes catch stride bugs


def raw(encoding, pixels, step=None, height=None, width=None, data=None, bigendian=0):
    """An Image whose rows are `pixels` (H, W, C) reshaped to bytes, padded to `step`."""
    h, w = pixels.shape[:2]
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(h, -1)
    step = rows.shape[1] if step is None else step
    padded = np.zeros((h, step), np.uint8)
    padded[:, :rows.shape[1]] = rows
    return Image(height=h if height is None else height, width=w if width is None else width,
                 encoding=encoding, is_bigendian=bigendian, step=step,
                 data=array.array('B', padded.tobytes() if data is None else data))


@pytest.mark.parametrize('encoding, pixels', [
    ('rgb8', RGB),
    ('bgr8', RGB[:, :, ::-1]),
    ('rgba8', np.dstack([RGB, np.full(RGB.shape[:2], 255, np.uint8)])),
    ('bgra8', np.dstack([RGB[:, :, ::-1], np.zeros(RGB.shape[:2], np.uint8)])),
])
def test_colour_encodings_give_the_same_rgb(encoding, pixels):
    out = image_to_rgb(raw(encoding, pixels))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, RGB)


def test_mono8_is_grey_rgb():
    grey = RGB[:, :, 0]
    out = image_to_rgb(raw('mono8', grey[:, :, None]))
    np.testing.assert_array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))


@pytest.mark.parametrize('step', [21, 22, 24, 32])   # padding need not be whole pixels
def test_row_padding_is_skipped(step):
    np.testing.assert_array_equal(image_to_rgb(raw('rgb8', RGB, step=step)), RGB)


@pytest.mark.parametrize('bigendian', [0, 1])
def test_16_bit_is_scaled_to_8_bit(bigendian):
    wide = (RGB.astype(np.uint16) * 257).astype('>u2' if bigendian else '<u2')  # v -> v*257
    out = image_to_rgb(raw('rgb16', wide, bigendian=bigendian))
    assert np.abs(out.astype(int) - RGB).max() <= 1


def test_yuv422_and_bayer_convert():
    # UYVY with U = V = 128 is grey: R = G = B.
    uyvy = np.zeros((4, 8), np.uint8)
    uyvy[:, 0::2], uyvy[:, 1::2] = 128, 100
    out = image_to_rgb(raw('yuv422', uyvy.reshape(4, 4, 2)))
    assert out.shape == (4, 4, 3) and (out == out[:, :, :1]).all()
    # An RGGB mosaic of a pure red scene demosaics to red-dominant pixels.
    mosaic = np.zeros((6, 6), np.uint8)
    mosaic[0::2, 0::2] = 200
    out = image_to_rgb(raw('bayer_rggb8', mosaic[:, :, None]))
    assert out.shape == (6, 6, 3) and out[..., 0].mean() > 4 * out[..., 2].mean()


def test_every_listed_encoding_converts():
    for encoding in SUPPORTED_ENCODINGS:
        depth = 2 if encoding.endswith('16') else 1
        channels = {'rgb': 3, 'bgr': 3, 'rgba': 4, 'bgra': 4}.get(
            encoding.rstrip('0123456789').rstrip('_'), 1)
        if encoding in ('yuv422', 'uyvy', 'yuyv', 'yuv422_yuy2'):
            channels = 2
        pixels = np.zeros((4, 6, channels), np.uint16 if depth == 2 else np.uint8)
        assert image_to_rgb(raw(encoding, pixels)).shape == (4, 6, 3), encoding


@pytest.mark.parametrize('change, words', [
    (dict(height=0), 'empty image'),
    (dict(width=0), 'empty image'),
    (dict(encoding='32FC1'), 'depth/generic'),
    (dict(encoding='16UC1'), 'depth/generic'),
    (dict(encoding='nv12'), '4:2:0'),
    (dict(encoding='jpeg'), 'unknown encoding'),
    (dict(encoding=''), 'encoding field is empty'),
    (dict(step=20), 'step 20 is less than width*bytes_per_pixel'),
    (dict(data=bytes(5 * 21 - 1)), 'data has 104 bytes, expected height*step = 5*21 = 105'),
    (dict(data=bytes(5 * 21 + 3)), 'data has 108 bytes'),
    (dict(height=6), 'expected height*step = 6*21'),
])
def test_invalid_images_are_refused_with_the_reason(change, words):
    msg = raw('rgb8', RGB)
    for key, value in change.items():
        setattr(msg, key, array.array('B', value) if key == 'data' else value)
    with pytest.raises(ImageError) as err:
        image_to_rgb(msg)
    assert words in str(err.value)
    with pytest.raises(ImageError):
        check_image(msg)


def test_16_bit_step_must_be_whole_channels_and_yuv_width_even():
    with pytest.raises(ImageError, match='multiple of the 2-byte channel size'):
        image_to_rgb(raw('mono16', np.zeros((2, 3, 1), np.uint16), step=7))
    with pytest.raises(ImageError, match='even width'):
        image_to_rgb(raw('yuyv', np.zeros((2, 3, 2), np.uint8)))


def test_compressed_round_trip_and_refusals():
    png = rgb_to_compressed(RGB, fmt='png')
    assert png.format == 'png'
    np.testing.assert_array_equal(compressed_to_rgb(png), RGB)
    jpeg = message_to_rgb(rgb_to_compressed(RGB, fmt='jpeg', quality=95))
    assert jpeg.shape == RGB.shape
    with pytest.raises(ImageError, match='no data'):
        compressed_to_rgb(CompressedImage(format='jpeg'))
    with pytest.raises(ImageError, match='could not decode 4 bytes'):
        compressed_to_rgb(CompressedImage(format='jpeg', data=array.array('B', b'\xff\xd8ab')))
    with pytest.raises(ImageError, match='compressed depth'):
        compressed_to_rgb(CompressedImage(format='16UC1; compressedDepth png', data=png.data))


def test_numpy_to_image_round_trip():
    header = Image().header
    header.frame_id = 'cam'
    msg = rgb_to_image(RGB, header)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (5, 7, 21, 'rgb8')
    assert msg.header.frame_id == 'cam'
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)
    bgr = rgb_to_image(RGB, encoding='bgr8')
    np.testing.assert_array_equal(np.frombuffer(bgr.data, np.uint8).reshape(5, 7, 3),
                                  RGB[:, :, ::-1])
    for bad in (RGB[:, :, 0], RGB.astype(np.float32), 'image'):
        with pytest.raises(ImageError, match='expected an'):
            rgb_to_image(bad)
