"""Patch labels: what the simulator's segmentation says each image patch shows.

A training-only signal for the vision encoder. The decoder learns from one answer token
per question, which says little about *where* in a frame of several small objects the
answer came from; the simulator knows every pixel's object, so each patch gets a
target too: the share of its pixels showing each palette colour (or none) and each
shape (or none). Two linear probes read the encoder's patch features and are trained
on these soft targets; the probes are thrown away after training (they are not part
of the checkpoint), what stays is an encoder whose patches say which colour and shape
they show.

    classes = pixel_classes(world.segmentation(96, 96), world.shapes)   # sim3d/training_frames
    colour, shape = patch_targets(np.stack([classes]), patch=8)       # (1, 144, 9), (1, 144, 5)
    probe = PatchProbe(dim=96)
    loss = probe.loss(patches, np.stack([classes]), patch=8)          # patches (1, 144, 96)

Imports the simulator (mujoco): train.py imports this module only when the loss is on.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..sim3d.training_frames import N_COLOURS, N_SHAPES


def patch_targets(classes: np.ndarray, patch: int):
    """(B, H, W) pixel classes -> soft targets for every patch of a `patch`-pixel grid,
    row-major like the encoder's patches: colour (B, N, N_COLOURS + 1) and shape
    (B, N, N_SHAPES + 1), each the share of the patch's pixels (index 0: none)."""
    B, H, W = classes.shape
    assert H % patch == 0 and W % patch == 0, 'the image must divide into patches'
    c = classes.astype(np.int64)
    colour = np.where(c > 0, 1 + (c - 1) // N_SHAPES, 0)
    shape = np.where(c > 0, 1 + (c - 1) % N_SHAPES, 0)

    def shares(ids, n):
        onehot = np.eye(n, dtype=np.float32)[ids]                       # (B, H, W, n)
        grid = onehot.reshape(B, H // patch, patch, W // patch, patch, n).mean((2, 4))
        return torch.from_numpy(grid.reshape(B, -1, n))
    return shares(colour, N_COLOURS + 1), shares(shape, N_SHAPES + 1)


class PatchProbe(nn.Module):
    """Linear colour and shape probes on patch features (training only)."""

    def __init__(self, dim: int):
        super().__init__()
        self.colour = nn.Linear(dim, N_COLOURS + 1)
        self.shape = nn.Linear(dim, N_SHAPES + 1)

    def loss(self, patches: torch.Tensor, classes: np.ndarray, patch: int) -> torch.Tensor:
        """Mean cross-entropy of both probes on patches (B, N, dim) against the soft
        targets of the frames' pixel classes (B, H, W) on a `patch`-pixel grid."""
        colour, shape = patch_targets(classes, patch)
        return (F.cross_entropy(self.colour(patches).flatten(0, 1), colour.flatten(0, 1))
                + F.cross_entropy(self.shape(patches).flatten(0, 1), shape.flatten(0, 1)))
