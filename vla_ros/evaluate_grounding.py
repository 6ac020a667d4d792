"""How well an engine's `ground` finds named shapes: `vla-ros eval --grounding N`.

N arenas of held-out seeds (from HELD_OUT_SEED; training never draws them), each frame
rendered at `size` px. Every shape of the arena is grounded by its colour and shape; the
simulator knows where its centre is drawn (or that it is out of view), so:

- in view: the share grounded (a box), and the distance from the grounding's point to the
  drawn centre (median, and the share within one patch cell of the model's grid);
- out of view (behind the robot): the share wrongly grounded;
- absent: one colour + shape that is not in the arena, per arena: the share wrongly
  grounded (the bundled model was trained only on targets that exist).
No ROS; the 2D arena (the shipped checkpoint's world).
"""
import time

import numpy as np

from .data.vocabulary import COLOR_NAMES, SHAPES
from .sim.demonstrations import target_uv_2d
from .sim.world import World

HELD_OUT_SEED = 1_000_000


def evaluate_grounding(engine, arenas: int = 200, size: int = 256, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    distances, in_view_boxed, behind_boxed, absent_boxed, latencies = [], [], [], [], []
    start = time.time()
    for n in range(arenas):
        world = World.random(HELD_OUT_SEED + n)
        frame = world.render(size, size)
        for i, shape in enumerate(world.shapes):
            g = engine.ground(frame, f'{shape.color} {shape.shape}')
            latencies.append(g.latency_ms)
            uv = target_uv_2d(world, i, size)
            if uv is None:
                behind_boxed.append(g.visible)
                continue
            in_view_boxed.append(g.visible)
            if g.visible:
                best = int(np.argmax(g.scores))
                x, y = g.points[best]
                distances.append(float(np.hypot(x - uv[0] * size, y - uv[1] * size)))
        names = {(s.color, s.shape) for s in world.shapes}
        absent = [(c, s) for c in COLOR_NAMES for s in SHAPES if (c, s) not in names]
        color, shape = absent[rng.integers(len(absent))]
        absent_boxed.append(engine.ground(frame, f'{color} {shape}').visible)
    cell = size / engine.config.grid_side if hasattr(engine, 'config') else None
    d = np.array(distances)
    return {
        'arenas': arenas, 'frame_size': size, 'first_seed': HELD_OUT_SEED,
        'in_view': {'n': len(in_view_boxed), 'grounded': _share(in_view_boxed),
                    'point_error_px_median': round(float(np.median(d)), 2) if len(d) else None,
                    'within_one_cell': _share(d < cell) if cell and len(d) else None,
                    'cell_px': cell},
        'out_of_view': {'n': len(behind_boxed), 'wrongly_grounded': _share(behind_boxed)},
        'absent': {'n': len(absent_boxed), 'wrongly_grounded': _share(absent_boxed)},
        'latency_ms_p50': round(float(np.median(latencies)), 2),
        'backend': engine.backend, 'checkpoint': engine.checkpoint,
        'seconds': round(time.time() - start, 1),
    }


def _share(flags) -> float:
    return round(float(np.mean(flags)), 4) if len(flags) else None
