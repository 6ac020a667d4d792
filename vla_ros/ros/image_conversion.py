"""sensor_msgs/Image and CompressedImage <-> RGB uint8 numpy arrays.

Every raw image is validated here first (size, encoding, step, data length), because
the converters trust the header: ROS 2's Python cv_bridge and rosbags-image both
return garbage, or raise something unhelpful, for a wrong `step` or a short buffer.
The rules:

- `height` and `width` > 0; the encoding is one of `SUPPORTED_ENCODINGS`.
- `step` >= width * bytes per pixel and a multiple of the channel size (1 or 2 bytes).
  Row padding of any length is allowed (drivers pad rows to 4/32/64 bytes); it is
  stripped before conversion, so the converters always see tightly packed rows.
- `len(data) == height * step` exactly. A longer buffer is refused too: it means the
  header does not describe the data.
- 16-bit encodings (rgb16, mono16, bayer_*16, ...) are scaled to 8 bits.
- Refused with a reason: depth / float / generic OpenCV types (32FC1, 16UC1, 8UC3: they
  carry no colour convention) and 4:2:0 YUV (nv12, nv21: no agreed row layout in a
  sensor_msgs/Image).

Conversion itself uses ROS 2's `cv_bridge` when it imports (real ROS installs) and
`rosbags-image` otherwise (PyPI's `cv-bridge` is the ROS 1 build and breaks on ROS 2
messages and numpy 2). Compressed images are decoded with OpenCV's `imdecode`, which
is what both of those libraries call; doing it directly avoids rosbags-image's
`assert` on undecodable data and its grayscale-JPEG colour conversion error.
"""
import array
from types import SimpleNamespace

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from ..preprocess import ImageError

try:  # ROS 2's cv_bridge. PyPI's ROS 1 build fails to import or to convert a ROS 2 message,
    # so one 1-pixel conversion decides whether it is usable.
    from cv_bridge import CvBridge
    _BRIDGE = CvBridge()
    _BRIDGE.imgmsg_to_cv2(Image(height=1, width=1, encoding='bgr8', step=3,
                                data=array.array('B', b'\x01\x02\x03')), 'rgb8')
except Exception:  # noqa: BLE001 - any failure here means "not usable"
    _BRIDGE = None
if _BRIDGE is None:
    from rosbags.image import image_to_cvimage

BACKEND = 'cv_bridge' if _BRIDGE is not None else 'rosbags-image'

# encoding -> (channels, bytes per channel); yuv422 packs 2 bytes per pixel
_BAYER = ('rggb', 'bggr', 'gbrg', 'grbg')
_LAYOUT = {
    'rgb8': (3, 1), 'bgr8': (3, 1), 'rgba8': (4, 1), 'bgra8': (4, 1), 'mono8': (1, 1),
    'rgb16': (3, 2), 'bgr16': (3, 2), 'rgba16': (4, 2), 'bgra16': (4, 2), 'mono16': (1, 2),
    'yuv422': (2, 1), 'uyvy': (2, 1), 'yuyv': (2, 1), 'yuv422_yuy2': (2, 1),
    **{f'bayer_{p}8': (1, 1) for p in _BAYER},
    **{f'bayer_{p}16': (1, 2) for p in _BAYER},
}
SUPPORTED_ENCODINGS = tuple(_LAYOUT)
_REFUSED = {
    'nv12': '4:2:0 YUV has no agreed row layout in sensor_msgs/Image',
    'nv21': '4:2:0 YUV has no agreed row layout in sensor_msgs/Image',
}


def _encoding_layout(encoding: str) -> tuple:
    if encoding in _LAYOUT:
        return _LAYOUT[encoding]
    if encoding in _REFUSED:
        reason = _REFUSED[encoding]
    elif encoding[:1].isdigit() and 'C' in encoding.upper():   # 32FC1, 16UC1, 8UC3 ...
        reason = 'a depth/generic OpenCV type has no colour convention'
    elif not encoding:
        reason = 'the encoding field is empty'
    else:
        reason = 'unknown encoding'
    raise ImageError(f"encoding '{encoding}' not supported ({reason}); "
                     f"use one of {', '.join(SUPPORTED_ENCODINGS)}")


def check_image(msg) -> None:
    """Raise ImageError naming the first thing wrong with a sensor_msgs/Image header.

    Cheap (no pixel access), so subscribers can call it on every frame.
    """
    h, w, step, n = msg.height, msg.width, msg.step, len(msg.data)
    if h == 0 or w == 0:
        raise ImageError(f'empty image: {w}x{h}')
    channels, depth = _encoding_layout(msg.encoding)
    row_bytes = w * channels * depth
    if msg.encoding in ('yuv422', 'uyvy', 'yuyv', 'yuv422_yuy2') and w % 2:
        raise ImageError(f'{msg.encoding} needs an even width, got {w}')
    if msg.encoding.startswith('bayer_') and (h < 2 or w < 2):
        raise ImageError(f'a Bayer image needs at least 2x2 pixels, got {w}x{h}')
    if step < row_bytes:
        raise ImageError(f'step {step} is less than width*bytes_per_pixel = '
                         f'{w}*{channels * depth} = {row_bytes}')
    if step % depth:
        raise ImageError(f'step {step} is not a multiple of the {depth}-byte channel size')
    if n != h * step:
        raise ImageError(f'data has {n} bytes, expected height*step = {h}*{step} = {h * step}')


def image_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/Image -> (height, width, 3) uint8 RGB. Raises ImageError."""
    check_image(msg)
    channels, depth = _LAYOUT[msg.encoding]
    row_bytes = msg.width * channels * depth
    # Drop row padding: (height, step) bytes -> (height, row_bytes); copies only when padded.
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, :row_bytes]
    packed = np.ascontiguousarray(rows)
    try:
        if _BRIDGE is not None:
            if msg.step != row_bytes:
                msg = Image(header=msg.header, height=msg.height, width=msg.width,
                            encoding=msg.encoding, is_bigendian=msg.is_bigendian,
                            step=row_bytes, data=array.array('B', packed.tobytes()))
            rgb = _BRIDGE.imgmsg_to_cv2(msg, desired_encoding='rgb8')
        else:
            # rosbags-image only reads these fields, and ignores `step` (hence the packing)
            view = SimpleNamespace(height=msg.height, width=msg.width, encoding=msg.encoding,
                                   is_bigendian=msg.is_bigendian, step=row_bytes, data=packed)
            rgb = image_to_cvimage(view, 'rgb8')
    except Exception as e:  # noqa: BLE001 - converters raise assorted types
        raise ImageError(f'{msg.encoding} -> rgb8 conversion failed: {e}') from e
    return np.ascontiguousarray(rgb, dtype=np.uint8).reshape(msg.height, msg.width, 3)


def check_compressed(msg) -> None:
    """Raise ImageError for a CompressedImage that cannot be a camera frame (cheap checks)."""
    fmt = msg.format or '(empty format)'
    if 'compresseddepth' in fmt.lower().replace(' ', ''):
        raise ImageError(f"format '{fmt}' is a compressed depth image, not a camera frame")
    if len(msg.data) == 0:
        raise ImageError(f"compressed image ('{fmt}') has no data")


def compressed_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg, png, ...) -> (H, W, 3) uint8 RGB. Raises ImageError."""
    check_compressed(msg)
    fmt = msg.format or '(empty format)'
    bgr = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"could not decode {len(msg.data)} bytes of compressed image "
                         f"(format '{fmt}')")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def message_to_rgb(msg) -> np.ndarray:
    """Either image message type -> RGB uint8. Raises ImageError."""
    return compressed_to_rgb(msg) if hasattr(msg, 'format') else image_to_rgb(msg)


def _check_rgb(rgb: np.ndarray) -> None:
    if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3
            and rgb.shape[2] == 3):
        shape = getattr(rgb, 'shape', None)
        raise ImageError(f'expected an (H, W, 3) uint8 RGB array, got {type(rgb).__name__} '
                         f'{shape} {getattr(rgb, "dtype", "")}')


def rgb_to_image(rgb: np.ndarray, header=None, encoding: str = 'rgb8') -> Image:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image in `encoding` ('rgb8' or 'bgr8'), unpadded."""
    _check_rgb(rgb)
    if encoding not in ('rgb8', 'bgr8'):
        raise ValueError(f"encoding must be 'rgb8' or 'bgr8', got {encoding!r}")
    h, w = rgb.shape[:2]
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=0, step=w * 3)
    if header is not None:
        msg.header = header
    pixels = rgb if encoding == 'rgb8' else rgb[:, :, ::-1]
    # array.array, not bytes: the generated setter checks every element of anything else
    msg.data = array.array('B', np.ascontiguousarray(pixels).tobytes())
    return msg


def rgb_to_compressed(rgb: np.ndarray, header=None, fmt: str = 'jpeg',
                      quality: int = 90) -> CompressedImage:
    """(H, W, 3) uint8 RGB -> sensor_msgs/CompressedImage ('jpeg' or 'png')."""
    _check_rgb(rgb)
    if fmt not in ('jpeg', 'png'):
        raise ValueError(f"format must be 'jpeg' or 'png', got {fmt!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == 'jpeg' else []
    ok, encoded = cv2.imencode('.jpg' if fmt == 'jpeg' else '.png', rgb[:, :, ::-1], params)
    if not ok:
        raise ImageError(f'OpenCV could not encode a {rgb.shape} image as {fmt}')
    msg = CompressedImage(format=fmt)
    if header is not None:
        msg.header = header
    msg.data = array.array('B', encoded.tobytes())
    return msg
