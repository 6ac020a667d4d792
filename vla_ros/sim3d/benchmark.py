"""Speed of the 3D arena: camera frames/s, physics steps/s, episode set-up time.

    python -m vla_ros.sim3d.benchmark                 # 1 render thread, 96 and 128 px
    python -m vla_ros.sim3d.benchmark --threads 0     # llvmpipe's default thread count

Prints one JSON object. Without a GPU, Mesa's llvmpipe rasterises on `--threads` CPU
threads (LP_NUM_THREADS; it must be set before the first GL context, which this script
makes). The goal is >= 100 camera frames/s on one core at the training
resolution. Frames include the style's sensor noise, as `World3D.render()` gives them.
"""
import argparse
import json
import math
import os
import platform
import time


def _facing_centre(world):
    """Turn the robot towards the arena's centre, so objects are in the picture."""
    from ..sim.world import Pose
    p = world.pose
    c = world.arena / 2
    world.pose = Pose(p.x, p.y, math.atan2(c - p.y, c - p.x))


def _frames_per_second(world, size: int, frames: int) -> float:
    world.render(size, size)   # first render makes the render context: not timed
    spent = 0.0
    for _ in range(frames):
        world.step(0.2, 0.3)   # move between frames, as in an episode (not timed)
        t = time.perf_counter()
        world.render(size, size)
        spent += time.perf_counter() - t
    return frames / spent


def run(sizes=(96, 128), frames: int = 200, steps: int = 500, seed: int = 3,
        msaa: int = 0) -> dict:
    """The figures as a dict (renders happen on the calling thread)."""
    from dataclasses import replace

    from .scene import TIMESTEP
    from .world3d import World3D

    base = World3D.random(seed)
    out = {'frames_per_s': {}}
    for shadows in (False, True):
        style = replace(base.style, shadows=shadows, noise_std=2.0)
        world = World3D(base.shapes, base.pose, style, seed=seed)
        world.model.vis.quality.offsamples = msaa
        _facing_centre(world)
        for size in sizes:
            key = f'{size}x{size} shadows={"on" if shadows else "off"}'
            out['frames_per_s'][key] = round(_frames_per_second(world, size, frames), 1)
        world.close()
    world = World3D(base.shapes, base.pose, base.style, seed=seed)
    t = time.perf_counter()
    for k in range(steps):
        world.step(0.3, 0.5 if k % 40 < 20 else -0.5)
    control = steps / (time.perf_counter() - t)
    out['control_steps_per_s'] = round(control, 1)   # one step = dt of simulated time
    out['physics_steps_per_s'] = round(control * round(world.dt / TIMESTEP), 1)
    out['realtime_factor'] = round(control * world.dt, 1)
    t = time.perf_counter()
    for k in range(10):
        w = World3D.random(seed + 1 + k)
        w.render(sizes[0], sizes[0])
        w.close()
    out['episode_setup_s'] = round((time.perf_counter() - t) / 10, 4)   # build + first frame
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, default=1,
                        help="llvmpipe render threads (LP_NUM_THREADS); 0: Mesa's default")
    parser.add_argument('--sizes', type=int, nargs='+', default=[96, 128])
    parser.add_argument('--frames', type=int, default=200)
    parser.add_argument('--steps', type=int, default=500)
    parser.add_argument('--msaa', type=int, default=0, help='multisamples (0: none)')
    args = parser.parse_args(argv)
    if args.threads > 0:
        os.environ['LP_NUM_THREADS'] = str(args.threads)
    figures = run(tuple(args.sizes), args.frames, args.steps, msaa=args.msaa)
    import mujoco
    print(json.dumps({'render_threads': args.threads or 'default', 'msaa': args.msaa,
                      'mujoco': mujoco.__version__, 'machine': platform.machine(),
                      'cpus': os.cpu_count(), **figures}, indent=1))


if __name__ == '__main__':
    main()
