"""A strip of what the robot sees during one 3D episode, for the README (no ROS).

    python -m vla_ros.sim3d.episode_strip --seed 1000003 --out docs/sim3d_episode.png

The privileged expert (vla_ros/sim/expert.py) follows "go to the <target>" in the arena of
`seed`; six robot-camera frames spread over the episode (time in the corner) and the
top-down overview at the end (target ringed) go side by side into one PNG.
"""
import argparse

import cv2
import numpy as np

from ..control.instructions import ground, parse_instruction
from ..sim.expert import expert_action
from ..sim.world import MAX_ANGULAR, MAX_LINEAR
from .world3d import World3D

TILE = 160            # px per tile in the strip
CAMERA_SIZE = 128     # px the robot camera renders
FRAMES = 6


def _label(img: np.ndarray, text: str, y: int) -> None:
    cv2.putText(img, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)


def episode_strip(seed: int, max_steps: int = 400) -> np.ndarray:
    """(TILE, TILE * (FRAMES + 1), 3) uint8 RGB: camera frames over the episode, overview."""
    world = World3D.random(seed)
    try:
        target = world.shapes[0]
        text = f'go to the {target.color} {target.word}'
        goal = parse_instruction(text)
        world.target = ground(goal, world)
        frames = [(world.time, world.render(CAMERA_SIZE, CAMERA_SIZE))]
        for _ in range(max_steps):
            linear, angular, done = expert_action(world, goal, world.target)
            if done:
                break
            world.step(linear * MAX_LINEAR, angular * MAX_ANGULAR)
            frames.append((world.time, world.render(CAMERA_SIZE, CAMERA_SIZE)))
        tiles = []
        for i in np.linspace(0, len(frames) - 1, FRAMES).astype(int):
            t, rgb = frames[i]
            tile = cv2.resize(rgb, (TILE, TILE), interpolation=cv2.INTER_NEAREST)
            _label(tile, f'{t:.1f} s', TILE - 6)
            tiles.append(tile)
        tiles.append(cv2.resize(world.overview(2 * TILE, 'top'), (TILE, TILE),
                                interpolation=cv2.INTER_AREA))
    finally:
        world.close()
    strip = np.concatenate(tiles, axis=1)
    _label(strip, f'"{text}" (expert)', 14)
    return strip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m vla_ros.sim3d.episode_strip')
    parser.add_argument('--seed', type=int, default=1_000_003)
    parser.add_argument('--out', default='docs/sim3d_episode.png')
    args = parser.parse_args(argv)
    strip = episode_strip(args.seed)
    cv2.imwrite(args.out, strip[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
