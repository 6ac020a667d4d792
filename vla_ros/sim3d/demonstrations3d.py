"""The 3D arena's side of the behaviour-cloning samples (sim/demonstrations.py, world='3d').

    batch = sample_batch(np.random.default_rng(0), 256, 96, world='3d')

Arenas are World3D.random layouts of training seeds in *training* styles: a held-out
style (styles.HELD_OUT_STYLES) never appears in a demonstration, so it measures whether
a policy generalises to new looks. Targets are named with their 3D shape words (the
instruction language has them: sphere/ball, cube/box/block, pyramid).

Where the target is (target_uv): the centroid of its segmentation mask in the frame, not
the projection of its centre (World3D.image_point). The pointer head learns to put its
mass on the image patches that show the target; the mask centroid always lies on the
visible part, while the projected centre of a target cut by the image border or half
hidden behind another object can fall outside the image or on the other object. The same
render says whether the target is seen at all (at least captions.min_pixels_for the frame
size: a colour and a hint of a shape), so a target behind a distractor is never pointed at.
"""
from typing import Optional

import numpy as np

from ..sim.demonstrations import TRAIN_SEEDS
from .captions import min_pixels_for
from .world3d import World3D


def training_world(seed: int) -> World3D:
    """The arena of training seed `seed`, in a training style."""
    if not 0 <= seed < TRAIN_SEEDS:
        raise ValueError(f'training seeds are in [0, {TRAIN_SEEDS}), got {seed}')
    world = World3D.random(seed, held_out_style=False)
    assert not world.style.held_out
    return world


def mask_centroid(seg: np.ndarray, i: int, min_pixels: int):
    """(u, v) centroid of object i's pixels in a segmentation image, as fractions of its
    width and height (pixel centres at +0.5, as captions.observe), or None below min_pixels."""
    rows, cols = np.nonzero(seg == i)
    if len(rows) < max(1, min_pixels):
        return None
    height, width = seg.shape
    return (float(cols.mean()) + 0.5) / width, (float(rows.mean()) + 0.5) / height


def target_uv(world: World3D, target: int, size: int) -> Optional[tuple]:
    """Where object `target` is seen in the (size, size) frame (its mask centroid), or None
    when it is not seen: fewer than min_pixels_for(size, size) pixels, or out of the view
    the expert searches by (World3D.in_view), so the pointer's "not in view" and the
    expert's search agree even where a sliver shows in a top corner of the pitched camera
    (and no segmentation is rendered for the samples that cannot show it)."""
    if not world.in_view(target):
        return None
    return mask_centroid(world.segmentation(size, size), target, min_pixels_for(size, size))
