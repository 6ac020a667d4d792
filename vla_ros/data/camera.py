"""Make a clean dataset image look like a robot camera frame.

Upscale into a wider frame (the scene's background continues to the sides), change
the lighting (exposure, gamma, white balance), add sensor noise and JPEG-compress.
Used for the camera-like evaluation (640x480) and, at a smaller size, as training
augmentation.
"""
from typing import Optional

import cv2
import numpy as np

from .scenes import SceneObject


def camera_frame(image: np.ndarray, rng: np.random.Generator, width: int = 640,
                 height: int = 480, strength: float = 1.0,
                 left: Optional[int] = None) -> np.ndarray:
    """RGB uint8 square image -> RGB uint8 (height, width, 3) camera-like frame.

    The image fills the frame's height, `left` pixels from its left edge (random if None).
    """
    side = height
    big = cv2.resize(image, (side, side), interpolation=cv2.INTER_LINEAR)
    if left is None:
        left = int(rng.integers(0, width - side + 1))
    frame = cv2.copyMakeBorder(big, 0, 0, left, width - side - left, cv2.BORDER_REPLICATE)
    x = frame.astype(np.float32) / 255.0
    gain = rng.uniform(1 - 0.25 * strength, 1 + 0.15 * strength)
    gamma = rng.uniform(1 - 0.2 * strength, 1 + 0.25 * strength)
    balance = 1 + rng.uniform(-0.06, 0.06, size=3).astype(np.float32) * strength
    x = np.clip(x * gain * balance, 0, 1) ** gamma
    x += rng.normal(0, rng.uniform(0.005, 0.03) * strength, size=x.shape).astype(np.float32)
    frame = np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)
    quality = int(rng.integers(50, 91))
    ok, jpeg = cv2.imencode('.jpg', frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[:, :, ::-1]


def objects_after_letterbox(objects, width: int, height: int, left: int):
    """Where a square image's objects land after camera_frame(width, height, left) and
    letterboxing the frame back to a square (preprocess.to_model_input)."""
    k = 1.0 / max(width, height)                    # frame pixels -> fraction of the square
    pad_x, pad_y = (1 - width * k) / 2, (1 - height * k) / 2
    return [SceneObject(o.shape, o.color, pad_x + (left + o.cx * height) * k,
                        pad_y + o.cy * height * k, o.size * height * k) for o in objects]
