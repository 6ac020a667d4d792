"""Make a clean dataset image look like a robot camera frame.

Upscale into a wider frame (the scene's background continues to the sides), change
the lighting (exposure, gamma, white balance), add sensor noise and JPEG-compress.
Used for the camera-like evaluation (640x480) and, at a smaller size, as training
augmentation.
"""
import cv2
import numpy as np


def camera_frame(image: np.ndarray, rng: np.random.Generator, width: int = 640,
                 height: int = 480, strength: float = 1.0) -> np.ndarray:
    """RGB uint8 square image -> RGB uint8 (height, width, 3) camera-like frame."""
    side = height
    big = cv2.resize(image, (side, side), interpolation=cv2.INTER_LINEAR)
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
