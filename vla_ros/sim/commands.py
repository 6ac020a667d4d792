"""`vla-ros sim-eval` and `vla-ros sim-record`: the simulator's command-line side.

    vla-ros sim-eval --episodes 200 --json                 # the model, held-out arenas
    vla-ros sim-eval --episodes 200 --policy expert --json
    vla-ros sim-eval --world 3d --held-out-style --policy expert --json   # MuJoCo arena
    vla-ros sim-record --out episode.gif --instruction "go to the red circle" --seed 1000003
    vla-ros sim-record --world 3d --out episode3d.gif --policy expert

--world 2d (the default, what the shipped model is trained on) or 3d (the MuJoCo arena,
sim3d/world3d.py); --held-out-style (3d only) renders it in looks no demonstration uses.
"""
import json
import os

import cv2
import numpy as np

from ..control.instructions import InstructionRefused, KINDS
from .evaluate import (EVAL_SEED_START, evaluate, ExpertPolicy, make_world, ModelPolicy,
                       run_episode, WORLDS)
from .render import render_overview


def _policy(args):
    """(policy, checkpoint path or None, backend or None) for --policy."""
    if args.policy == 'expert':
        return ExpertPolicy(), None, None
    if args.policy == 'servo':
        if args.world != '3d':
            raise SystemExit('error: --policy servo needs --world 3d (it grounds with the 3D '
                             "camera's segmentation)")
        from ..sim3d.servo_policy import SegmentationServoPolicy
        return SegmentationServoPolicy(), None, None
    from ..engine import make_engine
    from ..errors import CheckpointError
    try:
        engine = make_engine(args.checkpoint, threads=args.threads, backend=args.backend)
    except CheckpointError as e:
        raise SystemExit(f'error: {e}')
    return ModelPolicy(engine), engine.checkpoint, engine.backend


def _common(p):
    p.add_argument('--policy', choices=('model', 'expert', 'servo'), default='model',
                   help='model: the checkpoint through InferenceEngine.act; expert: the '
                        'privileged controller the demonstrations come from; servo (3d): the '
                        "visual servo pretrained models act with, on the simulator's own "
                        'segmentation as a perfect grounder (default model)')
    p.add_argument('--checkpoint', help='checkpoint directory (default: bundled model)')
    p.add_argument('--threads', type=int, default=1, help='inference threads (default 1)')
    p.add_argument('--backend', choices=('auto', 'torch', 'onnxruntime'), default='auto',
                   help="the model's inference backend (default auto: the ONNX export when "
                        'it is fresh, else torch)')
    p.add_argument('--time-limit', dest='time_limit', type=float, default=30.0,
                   help='seconds of simulated time per episode (default 30)')
    p.add_argument('--world', choices=WORLDS, default='2d',
                   help='2d: the flat arena and its top-down camera (default); 3d: the MuJoCo '
                        "arena and the robot's perspective camera")
    p.add_argument('--held-out-style', dest='held_out_style', action='store_true',
                   help='with --world 3d: textures and lighting no demonstration uses')


def _check_world(args):
    if args.held_out_style and args.world != '3d':
        raise SystemExit('error: --held-out-style needs --world 3d (styles are 3D looks)')


def cmd_sim_eval(args):
    kinds = tuple(args.kinds)
    if 'stop' in kinds:
        raise SystemExit('error: --kinds: stop episodes have nothing to evaluate')
    _check_world(args)
    if args.relations and args.world != '3d':
        raise SystemExit('error: --relations needs --world 3d (left and right of an object '
                         "are the robot camera's)")
    policy, checkpoint, backend = _policy(args)
    if args.relations and args.policy == 'model':   # refused as the action loop refuses it
        from ..control.instructions import InstructionRefused
        try:
            policy.engine.parse_instruction('go to the cube left of the green ball')
        except InstructionRefused as e:
            raise SystemExit(f'error: --relations: {e}')
    report = evaluate(policy, args.episodes, args.seed_start, kinds, args.held_out_wordings,
                      args.time_limit, world=args.world, held_out_style=args.held_out_style,
                      relations=args.relations)
    report.update(policy=args.policy, checkpoint=checkpoint, backend=backend)
    if args.json:
        print(json.dumps(report, indent=1))
        return
    style = ', held-out style' if args.held_out_style else ''
    print(f"{args.policy}: success {report['success_rate']:.3f} over {report['episodes']} "
          f"{args.world} episodes{style} (seeds from {args.seed_start}), median time to goal "
          f"{report['median_time_to_goal_s']} s, wrong target {report['wrong_target_rate']:.3f},"
          f" collisions {report['collision_rate']:.3f}")


def add_sim_eval(sub):
    """Register `sim-eval` on the CLI's subparsers."""
    p = sub.add_parser('sim-eval', help='closed-loop success rate in the simulated arena')
    _common(p)
    p.add_argument('--episodes', type=int, default=200)
    p.add_argument('--seed-start', dest='seed_start', type=int, default=EVAL_SEED_START,
                   help=f'first arena seed (default {EVAL_SEED_START}: never trained on)')
    p.add_argument('--kinds', nargs='+', default=['goto'], choices=KINDS[:2],
                   help='instruction kinds, in turn (default goto)')
    p.add_argument('--held-out-wordings', dest='held_out_wordings', action='store_true',
                   help='word instructions with the held-out templates')
    p.add_argument('--relations', action='store_true',
                   help="with --world 3d: name each target through a neighbour in the "
                        "robot's first view ('go to the cube left of the green ball'); "
                        'arenas without such a pair are passed over')
    p.add_argument('--json', action='store_true', help='print JSON')
    p.set_defaults(func=cmd_sim_eval)


def _overview_3d(world, size: int, instruction: str, status: str) -> np.ndarray:
    """World3D's top-down view (target ringed) with render_overview's captions."""
    img = world.overview(size, 'top')
    for text, y in ((f't={world.time:5.1f}s  {instruction}', 16), (status, size - 7)):
        band = img[y - 13:y + 5]
        band[:] = band // 3   # a dark band under white text: readable on any floor
        cv2.putText(img, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return img


def side_by_side(world, frame, instruction, action, height: int = 320) -> np.ndarray:
    """Egocentric frame (scaled up) beside the overview, with the action, RGB uint8."""
    linear, angular, done = action
    status = f'linear {linear:+.2f}  angular {angular:+.2f}  done {done:.2f}'
    draw = _overview_3d if hasattr(world, 'overview') else render_overview
    overview = draw(world, height, instruction, status)
    camera = cv2.resize(frame, (height, height), interpolation=cv2.INTER_NEAREST)
    return np.hstack([camera, overview])


def write_video(path: str, frames, fps: float) -> None:
    """RGB frames -> GIF (Pillow) or MP4 (OpenCV, mp4v)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == '.gif':
        try:   # Pillow comes with matplotlib (requirements.txt); not a runtime dependency
            from PIL import Image
        except ImportError:
            raise SystemExit('error: writing a GIF needs Pillow (pip install pillow); '
                             'or write an .mp4')
        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], loop=0,
                       duration=round(1000 / fps))
    elif ext == '.mp4':
        h, w = frames[0].shape[:2]
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps, (w, h))
        if not writer.isOpened():
            raise SystemExit(f'error: OpenCV cannot write {path}')
        for f in frames:
            writer.write(np.ascontiguousarray(f[:, :, ::-1]))
        writer.release()
    else:
        raise SystemExit(f'error: {path}: use a .gif or .mp4 file name')


def cmd_sim_record(args):
    if os.path.splitext(args.out)[1].lower() not in ('.gif', '.mp4'):
        raise SystemExit(f'error: {args.out}: use a .gif or .mp4 file name')
    _check_world(args)
    policy = _policy(args)[0]
    frames = []
    try:
        result = run_episode(policy, args.seed, args.kind, time_limit=args.time_limit,
                             instruction=args.instruction,
                             on_step=lambda *a: frames.append(side_by_side(*a)),
                             world=args.world, held_out_style=args.held_out_style)
    except InstructionRefused as e:
        arena = make_world(args.seed, args.world, args.held_out_style)
        shapes = ', '.join(arena.shapes[i].name for i in arena.objects)
        arena.close()
        raise SystemExit(f'error: {e} (arena {args.seed} has: {shapes})')
    frames += [frames[-1]] * 10   # hold the last frame for a second
    write_video(args.out, frames, fps=10)
    print(json.dumps({'out': args.out, 'frames': len(frames), 'seed': args.seed,
                      'instruction': result.instruction, 'success': result.success,
                      'time_s': result.time_s, 'policy': args.policy, 'world': args.world,
                      'held_out_style': args.held_out_style}))


def add_sim_record(sub):
    """Register `sim-record` on the CLI's subparsers."""
    p = sub.add_parser('sim-record', help='write one simulated episode to a GIF or MP4')
    _common(p)
    p.add_argument('--out', required=True, help='output file, .gif or .mp4')
    p.add_argument('--seed', type=int, default=EVAL_SEED_START, help='arena seed')
    p.add_argument('--instruction', help="default: a wording about the arena's target")
    p.add_argument('--kind', choices=KINDS[:2], default='goto',
                   help='kind of the default instruction (default goto)')
    p.set_defaults(func=cmd_sim_record)
