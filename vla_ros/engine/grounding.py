"""Grounding: where in a frame a phrase's object is, from whatever a model gives. No torch.

Every backend answers `ground(image, phrase)` with a GroundingResult in the pixels of the
frame it was asked about: one box, centre point and score per instance found, or none
("not visible"). Models say where things are in different ways:

- the bundled model's pointer head: a distribution over its patch grid plus one "not in
  view" slot (model/action_head.py). The box is the patch cell under its peak, the point
  the pointer's mean over that cell and its neighbours, the score the mass on the
  patches; below MIN_POINTER_MASS the target counts as not visible.
- PaliGemma's `detect <phrase>`: four `<locNNNN>` tokens per box (y0 x0 y1 x1 in 1024ths
  of the image), then the label; boxes separated by ';'.
- Qwen2.5-VL: JSON with "bbox_2d": [x0, y0, x1, y1] in pixels of the image the model saw
  (the frame after its processor's resize).
- Qwen2-VL: "(x0,y0),(x1,y1)" between <|box_start|> and <|box_end|>, in 1000ths.

The image the model saw is the frame scaled (and for the bundled model letterboxed into
a square), so each parser maps back to frame pixels through the same transform.
"""
import json
import re

import numpy as np

from ..control.visual_servo import parse_open_instruction, servo_command, ServoGains

MIN_POINTER_MASS = 0.5      # below this the pointer says "not in view"
LOC = re.compile(r'((?:<loc\d{4}>){4})\s*([^;<]*)')
QWEN2_BOX = re.compile(r'\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*,\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)')


def letterbox(frame_hw, size: int):
    """(scale, left, top) of preprocess.to_model_input: model pixel = frame pixel * scale
    + offset."""
    h, w = frame_hw
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return scale, (size - nw) // 2, (size - nh) // 2


def _clip_box(box, frame_hw):
    """The box ordered and clipped to the frame; None when a coordinate is not finite."""
    h, w = frame_hw
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(np.isfinite((x0, y0, x1, y1))):
        return None
    x0, x1 = sorted((min(max(x0, 0.0), w), min(max(x1, 0.0), w)))
    y0, y1 = sorted((min(max(y0, 0.0), h), min(max(y1, 0.0), h)))
    return x0, y0, x1, y1


def _boxes(candidates, frame_hw) -> list:
    return [b for b in (_clip_box(c, frame_hw) for c in candidates) if b is not None]


def centre(box) -> tuple:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def pointer_boxes(probs: np.ndarray, side: int, size: int, frame_hw):
    """Pointer probabilities (side*side + 1,), last = not in view -> ([box], [point],
    [score]) in frame pixels; empty lists when the mass on the patches is too small."""
    probs = np.asarray(probs, dtype=np.float64)
    on = probs[:-1]
    mass = float(on.sum())
    if not (mass >= MIN_POINTER_MASS) or not np.isfinite(probs).all():   # NaN: not seen
        return [], [], []
    scale, left, top = letterbox(frame_hw, size)
    cell = size / side
    grid = on.reshape(side, side)
    row, col = divmod(int(on.argmax()), side)
    # the point: the pointer's mean over the peak's 3x3 cells (over the whole grid a
    # distractor's share would pull it off the target)
    r0, c0 = max(row - 1, 0), max(col - 1, 0)
    near = grid[r0:row + 2, c0:col + 2]
    rows, cols = np.mgrid[r0:r0 + near.shape[0], c0:c0 + near.shape[1]]
    u = float(((cols + 0.5) * near).sum() / near.sum() * cell)      # model pixels
    v = float(((rows + 0.5) * near).sum() / near.sum() * cell)
    box = [(col * cell - left) / scale, (row * cell - top) / scale,
           ((col + 1) * cell - left) / scale, ((row + 1) * cell - top) / scale]
    point = ((u - left) / scale, (v - top) / scale)
    h, w = frame_hw
    point = (min(max(point[0], 0.0), w), min(max(point[1], 0.0), h))
    return _boxes([box], frame_hw), [point], [mass]


def paligemma_boxes(text: str, frame_hw, phrase: str = '') -> list:
    """Boxes of a PaliGemma `detect` reply, in frame pixels (the processor resizes the
    whole frame to its square, so 1024ths of the frame). Every labelled box counts."""
    h, w = frame_hw
    boxes = []
    for locs, _label in LOC.findall(text):
        y0, x0, y1, x1 = (int(n) / 1024 for n in re.findall(r'\d{4}', locs))
        boxes.append((x0 * w, y0 * h, x1 * w, y1 * h))
    return _boxes(boxes, frame_hw)


def qwen25_boxes(text: str, frame_hw, seen_hw) -> list:
    """Boxes of a Qwen2.5-VL reply ("bbox_2d": [x0, y0, x1, y1] in pixels of the `seen_hw`
    image), in frame pixels."""
    sy, sx = frame_hw[0] / seen_hw[0], frame_hw[1] / seen_hw[1]
    boxes = []
    for entry in _json_objects(text):
        box = entry.get('bbox_2d') if isinstance(entry, dict) else None
        if isinstance(box, list) and len(box) == 4 and \
                all(isinstance(v, (int, float)) for v in box):
            boxes.append((box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy))
    return _boxes(boxes, frame_hw)


def qwen2_boxes(text: str, frame_hw) -> list:
    """Boxes of a Qwen2-VL reply ("(x0,y0),(x1,y1)" in 1000ths), in frame pixels."""
    h, w = frame_hw
    return _boxes([(int(a) / 1000 * w, int(b) / 1000 * h, int(c) / 1000 * w, int(d) / 1000 * h)
                   for a, b, c, d in QWEN2_BOX.findall(text)], frame_hw)


def _json_objects(text: str) -> list:
    """The JSON objects in a reply: a fenced or bare list/object, else each {...} alone."""
    body = re.sub(r'^```(?:json)?|```$', '', text.strip(), flags=re.M).strip()
    try:
        data = json.loads(body)
        return data if isinstance(data, list) else [data]
    except ValueError:
        found = []
        for chunk in re.findall(r'\{[^{}]*\}', body):
            try:
                found.append(json.loads(chunk))
            except ValueError:
                pass
        return found


def boxes_from_reply(style: str, text: str, frame_hw, seen_hw=None) -> list:
    """A grounding reply of a family's `style` (hf_families.Family.grounding) -> boxes in
    frame pixels. `seen_hw`: the size of the image the model saw (Qwen2.5-VL)."""
    if style == 'paligemma':
        return paligemma_boxes(text, frame_hw)
    if style == 'qwen25':
        return qwen25_boxes(text, frame_hw, seen_hw or frame_hw)
    if style == 'qwen2':
        return qwen2_boxes(text, frame_hw)
    raise ValueError(f'unknown grounding style {style!r}')


def act_by_grounding(engine, image, instruction: str, bgr: bool = False,
                     gains: ServoGains = ServoGains()):
    """`act` for a model that grounds but gives no velocities: parse the instruction
    (free-text target), ground its target, servo towards it (control/visual_servo.py).
    Raises InstructionRefused / ImageError / QuestionError as act does."""
    from .api import ActionResult
    goal = parse_open_instruction(instruction)
    if goal.kind == 'stop':
        return ActionResult(0.0, 0.0, 1.0, 0.0)
    grounding = engine.ground(image, goal.phrase, bgr)
    linear, angular, done = servo_command(goal.kind, grounding, gains)
    return ActionResult(linear, angular, done, grounding.latency_ms, grounding)
