"""How well can the 3D arena's frames tell shapes and colours apart? A check of the
world, not of the model.

A small CNN (four conv blocks, nothing of the VLA model) learns the shape and colour of
the one palette object in training frames that show exactly one, and is scored on the
evaluation seeds' single-object frames, by the object's pixel area. When this CNN cannot
name a shape, neither will the VLA model after its language stage: run it before a
retrain to see whether a change to the world (camera, lighting, resolution) or more
rendered frames makes shapes more legible. Frames are rendered by `workers` processes.

    python -m vla_ros.training.shape_probe --frames 40000 --epochs 8
    # 9,903 single-object frames of 40,000: shape 0.869, colour 0.992, 17 min (model card)
"""
import argparse
import json
import sys
import time
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.vocabulary import COLOR_NAMES
from ..sim3d.scene import SHAPES_3D
from ..sim3d.training_frames import EVAL_SEED_START, FramePool, labelled_frames

SIZE_BINS = ((50, '50-100'), (100, '100-200'), (200, '200-500'), (500, '500+'))


def single_object(frames):
    """(images (N, S, S, 3) uint8, shape ids, colour ids, pixel areas) of the frames that
    show exactly one palette object and glimpse no other."""
    keep = [f for f in frames if len(f.view.seen) == 1 and not f.view.glimpsed]
    if not keep:
        raise ValueError('no single-object frame: render more frames')
    objects = [f.view.seen[0] for f in keep]
    return (torch.from_numpy(np.stack([f.image for f in keep])),
            torch.tensor([SHAPES_3D.index(o.shape) for o in objects]),
            torch.tensor([COLOR_NAMES.index(o.color) for o in objects]),
            np.array([o.pixels for o in objects]))


class ShapeColourCNN(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()

        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, 2, 1, bias=False), nn.BatchNorm2d(o),
                                 nn.GELU(), nn.Conv2d(o, o, 3, 1, 1, bias=False),
                                 nn.BatchNorm2d(o), nn.GELU())
        w = width
        self.body = nn.Sequential(block(3, w), block(w, 2 * w), block(2 * w, 3 * w),
                                  block(3 * w, 4 * w))
        self.shape = nn.Linear(8 * w, len(SHAPES_3D))
        self.colour = nn.Linear(8 * w, len(COLOR_NAMES))

    def forward(self, images: torch.Tensor):
        h = self.body(images.permute(0, 3, 1, 2).float() / 127.5 - 1.0)
        h = torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)
        return self.shape(h), self.colour(h)


def run(frames: int = 40000, epochs: int = 8, test_frames: int = 2500, image_size: int = 96,
        workers: int = 2, seed: int = 0, log=print) -> dict:
    torch.manual_seed(seed)
    start = time.time()
    pool = FramePool(np.random.default_rng(seed), frames, image_size, 0, workers=workers)
    x, s, c, _ = single_object(pool.render())
    xt, st, ct, pt = single_object(labelled_frames(np.random.default_rng(seed + 1), test_frames,
                                                   image_size, 0, seed_start=EVAL_SEED_START))
    log(f'{len(x)} training and {len(xt)} test frames with one object '
        f'({time.time() - start:.0f} s)')
    net = ShapeColourCNN()
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=0.01)
    batch = min(64, len(x))
    steps, k = epochs * (len(x) // batch), 0
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(x))
        for b in range(len(x) // batch):
            i = order[b * batch:(b + 1) * batch]
            flip = torch.rand(len(i)) < 0.5             # mirror images: same shape and colour
            images = torch.where(flip[:, None, None, None], x[i].flip(2), x[i])
            for group in opt.param_groups:
                group['lr'] = 2e-3 * 0.5 * (1 + np.cos(np.pi * k / max(1, steps)))
            k += 1
            shape_logits, colour_logits = net(images)
            loss = F.cross_entropy(shape_logits, s[i]) + F.cross_entropy(colour_logits, c[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            shape_logits, colour_logits = net(xt)
        ps, pc = shape_logits.argmax(1), colour_logits.argmax(1)
        log(f'epoch {epoch + 1}: test shape {(ps == st).float().mean():.3f} '
            f'colour {(pc == ct).float().mean():.3f} ({time.time() - start:.0f} s)')
    by_size = defaultdict(lambda: [0, 0, 0])
    for area, a, b, y, z in zip(pt, ps.tolist(), st.tolist(), pc.tolist(), ct.tolist()):
        name = [n for low, n in SIZE_BINS if area >= low][-1]
        by_size[name][0] += a == b
        by_size[name][1] += y == z
        by_size[name][2] += 1
    confusions = defaultdict(int)
    for a, b in zip(ps.tolist(), st.tolist()):
        if a != b:
            confusions[f'{SHAPES_3D[b]} -> {SHAPES_3D[a]}'] += 1
    return {'training_frames': len(x), 'test_frames': len(xt),
            'shape': round(float((ps == st).float().mean()), 4),
            'colour': round(float((pc == ct).float().mean()), 4),
            'by_pixels': {n: {'shape': round(v[0] / v[2], 4), 'colour': round(v[1] / v[2], 4),
                              'n': v[2]} for n, v in by_size.items()},
            'shape_confusions': dict(sorted(confusions.items(), key=lambda kv: -kv[1])),
            'seconds': round(time.time() - start, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m vla_ros.training.shape_probe',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=40000, help='training frames rendered')
    parser.add_argument('--epochs', type=int, default=8)
    parser.add_argument('--test-frames', type=int, default=2500)
    parser.add_argument('--image-size', type=int, default=96)
    parser.add_argument('--workers', type=int, default=2, help='rendering processes')
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    print(json.dumps(run(args.frames, args.epochs, args.test_frames, args.image_size,
                         args.workers, log=progress), indent=2))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
