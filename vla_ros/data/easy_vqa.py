"""easy-VQA (PyPI package `easy-vqa`) and any directory in its layout.

Layout: `questions.json` holds `[question, answer, image_id]` rows; images are
`images/<image_id>.png`. Besides the questions, each image gets ground-truth labels
(shape, colour, position, size) so the package can write captions for it: the colour
is read from the pixels (easy-VQA draws with an exact palette), the shape from the
image's own answers where they name it, else from how much of its bounding box the
shape fills. `derive_labels` checks every label against every yes/no answer.
"""
import json
import os
from dataclasses import dataclass

import cv2
import numpy as np

from .scenes import SceneObject
from .vocabulary import COLORS, COLOR_NAMES, SHAPES


@dataclass
class VQASplit:
    images: np.ndarray          # (N, H, W, 3) uint8 RGB
    image_ids: list             # image id of each row of `images`
    questions: list             # [(question, answer, row index into images)]
    objects: list               # per image: [SceneObject] derived from pixels + answers


def package_split_dir(split: str) -> str:
    """Directory of the official split ('train' or 'test') inside the installed package."""
    if split not in ('train', 'test'):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    try:
        import easy_vqa
    except ImportError as e:
        raise RuntimeError('easy-VQA is not installed: pip install easy-vqa') from e
    return os.path.join(os.path.dirname(easy_vqa.__file__), 'data', split)


def load_dir(path: str, with_labels: bool = True) -> VQASplit:
    """Load a directory in easy-VQA's layout; errors name the missing or bad file."""
    qfile = os.path.join(path, 'questions.json')
    if not os.path.isfile(qfile):
        raise FileNotFoundError(f'{qfile}: no questions.json (expected easy-VQA layout)')
    with open(qfile) as f:
        try:
            rows = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{qfile}: not valid JSON ({e})') from e
    ids = sorted({int(r[2]) for r in rows})
    index = {image_id: i for i, image_id in enumerate(ids)}
    images = []
    for image_id in ids:
        ipath = os.path.join(path, 'images', f'{image_id}.png')
        bgr = cv2.imread(ipath, cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f'{ipath}: missing or unreadable image')
        images.append(cv2.resize(bgr, (64, 64))[:, :, ::-1] if bgr.shape[:2] != (64, 64)
                      else bgr[:, :, ::-1])
    questions = [(str(q), str(a), index[int(i)]) for q, a, i in rows]
    split = VQASplit(np.ascontiguousarray(np.stack(images)), ids, questions, [])
    if with_labels:
        split.objects = derive_labels(split)
    return split


def load_split(split: str) -> VQASplit:
    return load_dir(package_split_dir(split))


_PALETTE = np.array([COLORS[c] for c in COLOR_NAMES], np.int32)


def label_from_pixels(img: np.ndarray) -> SceneObject:
    """Colour, rough shape, centre and size of the single shape in an easy-VQA image."""
    flat = img.reshape(-1, 3).astype(np.int32)
    # background = most common colour; shape pixels = exact palette colours
    dist = np.abs(flat[:, None, :] - _PALETTE[None]).sum(-1)          # (HW, 8)
    exact = dist.min(1) == 0
    colors, counts = np.unique(dist.argmin(1)[exact], return_counts=True)
    if len(colors) == 0:
        raise ValueError('no palette-coloured pixels')
    color = COLOR_NAMES[colors[counts.argmax()]]
    mask = (dist[:, COLOR_NAMES.index(color)] < 60).reshape(img.shape[:2])
    ys, xs = np.nonzero(mask)
    h, w = img.shape[:2]
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    fill = mask.sum() / ((x1 - x0) * (y1 - y0))
    shape = 'rectangle' if fill > 0.9 else 'circle' if fill > 0.66 else 'triangle'
    return SceneObject(shape, color, (x0 + x1) / 2 / w, (y0 + y1) / 2 / h,
                       max(x1 - x0, y1 - y0) / max(h, w))


def derive_labels(split: VQASplit) -> list:
    """One [SceneObject] per image; the shape is the one most consistent with the answers."""
    votes = np.zeros((len(split.images), len(SHAPES)), np.int32)
    for q, a, i in split.questions:
        if a in SHAPES:
            votes[i, SHAPES.index(a)] += 100
        elif a in ('yes', 'no') and not any(c in q for c in COLOR_NAMES):
            # a yes/no shape question: the answer says whether each shape fits
            for k, shape in enumerate(SHAPES):
                votes[i, k] += _consistent(q, a, shape, None)
    out = []
    for i, img in enumerate(split.images):
        obj = label_from_pixels(img)
        best = votes[i].max()
        if best > 0 and votes[i, SHAPES.index(obj.shape)] < best:
            obj = SceneObject(SHAPES[votes[i].argmax()], obj.color, obj.cx, obj.cy, obj.size)
        out.append([obj])
    return out


def _consistent(question: str, answer: str, shape: str, color) -> bool:
    """Whether an easy-VQA yes/no answer fits an image holding `color` `shape`."""
    from .questions import question_type
    words = question.lower().replace('?', ' ').split()
    mentioned = [w for w in words if w in COLOR_NAMES or w in SHAPES]
    present = all(w in (color, shape) for w in mentioned)
    negated = 'negated' in question_type(question)
    return (present != negated) == (answer == 'yes')


def label_disagreements(split: VQASplit) -> int:
    """Count yes/no questions whose answer contradicts the derived labels."""
    return sum(not _consistent(q, a, split.objects[i][0].shape, split.objects[i][0].color)
               for q, a, i in split.questions if a in ('yes', 'no'))
