"""Camera frames of any size -> the model's square uint8 RGB input.

Frames are letterboxed (padded by repeating their border, which reads as more
background) rather than cropped or stretched: nothing in view is cut off and shapes
keep their proportions.
"""
import cv2
import numpy as np


class ImageError(ValueError):
    """An image the model cannot use; the message says why."""


def to_rgb(image: np.ndarray, bgr: bool = False) -> np.ndarray:
    """(H, W), (H, W, 1|3|4) uint8 -> (H, W, 3) uint8 RGB. Raises ImageError."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f'expected a numpy array, got {type(image).__name__}')
    if image.dtype != np.uint8:
        raise ImageError(f'expected uint8 pixels, got {image.dtype}')
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ImageError(f'expected HxW, HxWx1, HxWx3 or HxWx4, got shape {image.shape}')
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ImageError(f'empty image ({w}x{h})')
    channels = image.shape[2]
    if channels == 1:
        image = np.repeat(image, 3, axis=2)
    elif channels == 4:
        image = image[:, :, :3]
    if bgr:
        image = image[:, :, ::-1]
    return image


def fit_within(image: np.ndarray, max_side: int) -> np.ndarray:
    """`image` scaled down (area interpolation, aspect kept) so that its longest side is at
    most `max_side` pixels; unchanged when it already fits or `max_side` is 0."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return np.ascontiguousarray(image)
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)


def to_model_input(image: np.ndarray, size: int = 64, bgr: bool = False) -> np.ndarray:
    """(H, W), (H, W, 1|3|4) uint8 -> (size, size, 3) uint8 RGB."""
    image = to_rgb(image, bgr)
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return np.ascontiguousarray(image)
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(np.ascontiguousarray(image), (nw, nh), interpolation=interp)
    top, left = (size - nh) // 2, (size - nw) // 2
    return cv2.copyMakeBorder(small, top, size - nh - top, left, size - nw - left,
                              cv2.BORDER_REPLICATE)
