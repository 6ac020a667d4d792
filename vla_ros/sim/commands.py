"""`vla-ros sim-eval` and `vla-ros sim-record`: the simulator's command-line side.

    vla-ros sim-eval --episodes 200 --json                 # the model, held-out arenas
    vla-ros sim-eval --episodes 200 --policy expert --json
    vla-ros sim-record --out episode.gif --instruction "go to the red circle" --seed 1000003
"""
import json
import os

import cv2
import numpy as np

from ..control.instructions import InstructionRefused, KINDS
from .evaluate import EVAL_SEED_START, evaluate, ExpertPolicy, ModelPolicy, run_episode
from .render import render_overview


def _policy(args):
    """(policy, checkpoint path or None, backend or None) for --policy."""
    if args.policy == 'expert':
        return ExpertPolicy(), None, None
    from ..engine import make_engine
    from ..errors import CheckpointError
    try:
        engine = make_engine(args.checkpoint, threads=args.threads, backend=args.backend)
    except CheckpointError as e:
        raise SystemExit(f'error: {e}')
    return ModelPolicy(engine), engine.checkpoint, engine.backend


def _common(p):
    p.add_argument('--policy', choices=('model', 'expert'), default='model',
                   help='model: the checkpoint through InferenceEngine.act; expert: the '
                        'privileged controller the demonstrations come from (default model)')
    p.add_argument('--checkpoint', help='checkpoint directory (default: bundled model)')
    p.add_argument('--threads', type=int, default=1, help='inference threads (default 1)')
    p.add_argument('--backend', choices=('auto', 'torch', 'onnxruntime'), default='auto',
                   help="the model's inference backend (default auto: the ONNX export when "
                        'it is fresh, else torch)')
    p.add_argument('--time-limit', dest='time_limit', type=float, default=30.0,
                   help='seconds of simulated time per episode (default 30)')


def cmd_sim_eval(args):
    kinds = tuple(args.kinds)
    if 'stop' in kinds:
        raise SystemExit('error: --kinds: stop episodes have nothing to evaluate')
    policy, checkpoint, backend = _policy(args)
    report = evaluate(policy, args.episodes, args.seed_start, kinds, args.held_out_wordings,
                      args.time_limit)
    report.update(policy=args.policy, checkpoint=checkpoint, backend=backend)
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{args.policy}: success {report['success_rate']:.3f} over {report['episodes']} "
          f"episodes (seeds from {args.seed_start}), median time to goal "
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
    p.add_argument('--json', action='store_true', help='print JSON')
    p.set_defaults(func=cmd_sim_eval)


def side_by_side(world, frame, instruction, action, height: int = 320) -> np.ndarray:
    """Egocentric frame (scaled up) beside the overview, with the action, RGB uint8."""
    linear, angular, done = action
    status = f'linear {linear:+.2f}  angular {angular:+.2f}  done {done:.2f}'
    overview = render_overview(world, height, instruction, status)
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
    policy = _policy(args)[0]
    frames = []
    try:
        result = run_episode(policy, args.seed, args.kind, time_limit=args.time_limit,
                             instruction=args.instruction,
                             on_step=lambda *a: frames.append(side_by_side(*a)))
    except InstructionRefused as e:
        from .world import World
        shapes = ', '.join(s.name for s in World.random(args.seed).shapes)
        raise SystemExit(f'error: {e} (arena {args.seed} has: {shapes})')
    frames += [frames[-1]] * 10   # hold the last frame for a second
    write_video(args.out, frames, fps=10)
    print(json.dumps({'out': args.out, 'frames': len(frames), 'seed': args.seed,
                      'instruction': result.instruction, 'success': result.success,
                      'time_s': result.time_s, 'policy': args.policy}))


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
