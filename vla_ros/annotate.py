"""Draw what the model says about a frame onto the frame (no ROS): the annotated image.

The frame is scaled to `width` pixels wide (nearest neighbour below 4x, so a 64x64 sim
frame stays crisp), and below it a panel carries the caption, the last question and its
answer, and the action: its state and instruction, and an arrow for the velocity
command (up = forward, tilted by the turn rate; its length is the speed as a fraction
of the limit). The latest grounding (`ground` or the policy's own) is drawn on the frame:
its boxes, a dot on each point, and the phrase.
"""
import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

PANEL_LINES = 4
LINE_PX = 22
TEXT_RGB = (20, 20, 20)
PANEL_RGB = (245, 245, 240)
ARROW_RGB = (220, 40, 40)
BOX_RGB = (255, 200, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class Overlay:
    caption: str = ''
    question: str = ''
    answer: str = ''
    action_state: str = ''               # '' = no instruction yet
    instruction: str = ''
    command: Optional[tuple] = None      # (linear, angular) as fractions of the limits
    # the latest grounding: (phrase, [(x0, y0, x1, y1)], [(x, y)], (height, width) of the
    # frame those pixels are in), or None
    grounding: Optional[tuple] = None


def _fit(text: str, width: int, scale: float) -> str:
    """`text`, or its longest prefix + '...' that fits `width` pixels."""
    def fits(t):
        return cv2.getTextSize(t, FONT, scale, 1)[0][0] <= width
    if fits(text):
        return text
    while text and not fits(text + '...'):
        text = text[:-1]
    return text + '...'


def _arrow(img: np.ndarray, command: tuple, centre: tuple, length: float):
    if not all(math.isfinite(float(c)) for c in command):
        return
    linear, angular = (max(-1.0, min(1.0, float(c))) for c in command)
    heading = angular * math.pi / 3        # full turn rate: 60 degrees to the left
    size = length * max(abs(linear), 0.15 * abs(angular))
    sign = 1 if linear >= 0 else -1
    tip = (int(centre[0] - sign * size * math.sin(heading)),
           int(centre[1] - sign * size * math.cos(heading)))
    if size < 2:
        cv2.circle(img, centre, 6, ARROW_RGB, 2, cv2.LINE_AA)   # standing still
        return
    cv2.arrowedLine(img, centre, tip, ARROW_RGB, 3, cv2.LINE_AA, tipLength=0.3)


def _grounding(frame: np.ndarray, phrase: str, boxes, points, frame_size):
    """Boxes and points given in a (height, width) = frame_size frame, drawn on `frame`."""
    sy, sx = frame.shape[0] / max(frame_size[0], 1), frame.shape[1] / max(frame_size[1], 1)
    for (x0, y0, x1, y1), (x, y) in zip(boxes, points):
        cv2.rectangle(frame, (int(x0 * sx), int(y0 * sy)), (int(x1 * sx) - 1, int(y1 * sy) - 1),
                      BOX_RGB, 2, cv2.LINE_AA)
        cv2.circle(frame, (int(x * sx), int(y * sy)), 4, BOX_RGB, -1, cv2.LINE_AA)
        cv2.putText(frame, _fit(phrase, frame.shape[1] // 2, 0.45),
                    (int(x0 * sx) + 2, max(12, int(y0 * sy) - 4)), FONT, 0.45, BOX_RGB, 1,
                    cv2.LINE_AA)


def annotate(rgb: np.ndarray, overlay: Overlay, width: int = 480) -> np.ndarray:
    """(H, W, 3) uint8 RGB + overlay -> a new RGB image `width` wide with a text panel."""
    h, w = rgb.shape[:2]
    height = max(1, round(h * width / w))
    interpolation = cv2.INTER_NEAREST if width >= 4 * w else cv2.INTER_AREA
    frame = cv2.resize(np.ascontiguousarray(rgb), (width, height), interpolation=interpolation)
    panel = np.full((PANEL_LINES * LINE_PX + 8, width, 3), PANEL_RGB, np.uint8)
    scale = 0.5
    lines = [f'caption: {overlay.caption}' if overlay.caption else 'caption: -',
             f'Q: {overlay.question}' if overlay.question else 'Q: -',
             f'A: {overlay.answer}' if overlay.question else '',
             (f'action: {overlay.action_state} "{overlay.instruction}"'
              if overlay.action_state else 'action: idle')]
    for i, line in enumerate(lines):
        cv2.putText(panel, _fit(line, width - 12, scale), (6, 18 + i * LINE_PX), FONT, scale,
                    TEXT_RGB, 1, cv2.LINE_AA)
    if overlay.grounding is not None:
        _grounding(frame, *overlay.grounding)
    image = np.concatenate([frame, panel], axis=0)
    if overlay.command is not None and overlay.action_state == 'running':
        _arrow(image, overlay.command, (width // 2, height - 12), 0.35 * height)
    return image
