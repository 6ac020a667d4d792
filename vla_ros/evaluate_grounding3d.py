"""Where the pointer looks for a named object in the robot camera's 3D frames:
`vla-ros eval --grounding3d N`.

N frames of held-out world seeds (training never draws them; `held_out_style`: looks
training never uses), each rendered with the simulator's segmentation. Every palette
object the camera sees is grounded by its colour and shape (`engine.ground`, "red
cube"), and the box of the strongest instance is scored against the segmentation:

- on the target: the box covers pixels of the named object;
- on another object: it covers none of those, but another palette object's;
- background: neither;
- not visible: the engine says the object is not in view although the camera sees it.

Plus one colour + shape per frame that no visible object has: the share wrongly grounded
(a box where there is nothing to find). Results are given by the number of objects in
view as well: telling look-alikes apart is what the 3D world asks. No ROS.
"""
import time
from collections import Counter, defaultdict

import numpy as np

from .evaluate_scenes3d import objects_in_view
from .sim3d.training_frames import (EVAL_SEED_START, labelled_frames, not_visible_pairs,
                                    palette_class)

OUTCOMES = ('on the target', 'on another object', 'background', 'not visible')


def box_outcome(box, classes: np.ndarray, target: int) -> str:
    """One of OUTCOMES for a box (x0, y0, x1, y1) in frame pixels (None: not visible)
    over the frame's (H, W) pixel classes, for the target's class."""
    if box is None:
        return 'not visible'
    h, w = classes.shape
    x0, y0, x1, y1 = box
    region = classes[max(0, int(np.floor(y0))):min(h, int(np.ceil(y1))),
                     max(0, int(np.floor(x0))):min(w, int(np.ceil(x1)))]
    if (region == target).any():
        return 'on the target'
    return 'on another object' if (region > 0).any() else 'background'


def evaluate_grounding3d(engine, frames: int = 500, size: int = 96,
                         held_out_style: bool = False, seed: int = 0) -> dict:
    rng = np.random.default_rng([seed, EVAL_SEED_START])     # the frames (as labelled_frames)
    pick = np.random.default_rng([seed, EVAL_SEED_START, 1])   # the absent objects
    outcomes, by_seen = Counter(), defaultdict(Counter)
    absent, latencies = [], []
    start = time.time()
    for frame in labelled_frames(rng, frames, size, 0, seed_start=EVAL_SEED_START,
                                 held_out_style=held_out_style, pixel_labels=True):
        view = frame.view
        in_view = objects_in_view(view.seen)
        for o in view.seen:
            g = engine.ground(frame.image, f'{o.color} {o.shape}')
            latencies.append(g.latency_ms)
            box = g.boxes[int(np.argmax(g.scores))] if g.visible else None
            outcome = box_outcome(box, frame.pixel_classes, palette_class(o.color, o.shape))
            outcomes[outcome] += 1
            by_seen[in_view][outcome] += 1
        missing = not_visible_pairs(view)
        color, shape = missing[pick.integers(len(missing))]
        absent.append(engine.ground(frame.image, f'{color} {shape}').visible)
    return {
        'frames': frames, 'frame_size': size, 'first_seed': EVAL_SEED_START,
        'held_out_style': held_out_style,
        'in_view': _shares(outcomes),
        'by_objects_in_view': {k: _shares(by_seen[k]) for k in sorted(by_seen)},
        'absent': {'n': len(absent), 'wrongly_grounded': round(float(np.mean(absent)), 4)},
        'latency_ms_p50': round(float(np.median(latencies)), 2) if latencies else None,
        'backend': engine.backend, 'checkpoint': engine.checkpoint,
        'seconds': round(time.time() - start, 1),
    }


def _shares(counts: Counter) -> dict:
    n = sum(counts.values())
    return {'n': n, **{k: round(counts[k] / n, 4) if n else None for k in OUTCOMES}}
