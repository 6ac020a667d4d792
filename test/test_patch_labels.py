"""Patch labels from the simulator's segmentation: each patch's targets say which palette
colour and shape its pixels show, clutter and background count as none, and the probe's
loss trains the encoder's patch features."""
import numpy as np
import pytest
import torch

pytest.importorskip('mujoco')

from vla_ros.data.vocabulary import COLOR_NAMES  # noqa: E402
from vla_ros.sim3d.scene import SHAPES_3D  # noqa: E402
from vla_ros.sim3d.training_frames import labelled_frames, NONE, pixel_classes  # noqa: E402
from vla_ros.sim3d.world3d import World3D  # noqa: E402
from vla_ros.training.patch_labels import PatchProbe, patch_targets  # noqa: E402


def frame_with_objects(min_seen: int = 2):
    for f in labelled_frames(np.random.default_rng(3), 40, image_size=96,
                             questions_per_frame=0, pixel_labels=True):
        if len(f.seen) >= min_seen:
            return f
    raise AssertionError('no frame with several objects among 40')


def test_pixel_classes_are_the_segmentation_with_palette_colour_and_shape():
    with World3D.random(5) as world:
        seg = world.segmentation(96, 96)
        classes = pixel_classes(seg, world.shapes)
        assert classes.shape == seg.shape and classes.dtype == np.uint8
        for i, s in enumerate(world.shapes):
            mask = seg == i
            if not mask.any():
                continue
            expected = NONE if s.clutter else \
                1 + COLOR_NAMES.index(s.color) * len(SHAPES_3D) + SHAPES_3D.index(s.shape)
            assert set(np.unique(classes[mask])) == {expected}, s
        assert (classes[seg < 0] == NONE).all()


def test_patch_targets_are_pixel_shares_where_the_seen_objects_are():
    f = frame_with_objects()
    colour, shape = patch_targets(f.pixel_classes[None], patch=8)
    assert colour.shape == (1, 144, len(COLOR_NAMES) + 1)
    assert shape.shape == (1, 144, len(SHAPES_3D) + 1)
    for t in (colour, shape):
        assert torch.allclose(t.sum(-1), torch.ones(1, 144))
    for o in f.view.seen:   # the patch holding the mask's centroid shows the object
        row, col = min(11, int(o.v * 12)), min(11, int(o.u * 12))
        around = [(r, c) for r in range(max(0, row - 1), min(12, row + 2))
                  for c in range(max(0, col - 1), min(12, col + 2))]
        c_share = max(colour[0, r * 12 + c, 1 + COLOR_NAMES.index(o.color)] for r, c in around)
        s_share = max(shape[0, r * 12 + c, 1 + SHAPES_3D.index(o.shape)] for r, c in around)
        assert c_share > 0.2 and s_share > 0.2, o
    # every pixel of a seen or glimpsed object is in its colour's targets, nothing else is
    for name in COLOR_NAMES:
        pixels = sum(o.pixels for o in f.view.visible if o.color == name)
        share = float(colour[0, :, 1 + COLOR_NAMES.index(name)].sum()) * 64
        assert share == pytest.approx(pixels, abs=1e-3), name


def test_the_probe_loss_falls_when_trained_on_patch_features():
    classes = frame_with_objects().pixel_classes[None]
    torch.manual_seed(0)
    features = torch.randn(1, 144, 32, requires_grad=True)
    probe = PatchProbe(32)
    opt = torch.optim.Adam([features, *probe.parameters()], lr=0.05)
    first = probe.loss(features, classes, patch=8).item()
    for _ in range(60):
        opt.zero_grad()
        loss = probe.loss(features, classes, patch=8)
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
