"""`vla-ros`: train, evaluate, ask, caption and benchmark the model (and run the demo)."""
import argparse
import json
import os
import sys
import time

import numpy as np


def _load_image(path: str) -> np.ndarray:
    import cv2
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f'error: {path}: missing or not an image')
    return img[:, :, ::-1].copy()   # RGB


def _engine(args, backend: str = None):
    """The engine for --checkpoint / --threads / --backend (auto where no --backend)."""
    from .engine import make_engine
    from .errors import CheckpointError
    try:
        return make_engine(args.checkpoint, threads=args.threads,
                           backend=backend or getattr(args, 'backend', None) or 'auto')
    except CheckpointError as e:
        raise SystemExit(f'error: {e}')


def cmd_train(args):
    if args.recipe:
        return cmd_train_recipe(args)
    from .train import TrainConfig, train
    cfg = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    for key in ('steps', 'seed', 'out', 'threads', 'max_minutes'):
        if getattr(args, key) is not None:
            setattr(cfg, key, getattr(args, key))
    metrics = train(cfg)
    keys = ('steps_done', 'train_seconds', 'parameters', 'val_accuracy')
    print(json.dumps({k: metrics[k] for k in keys}))
    print(f'checkpoint written to {cfg.out}', file=sys.stderr)


def cmd_train_recipe(args):
    from .training.recipe import Recipe, run_recipe
    if args.config:
        raise SystemExit('error: --recipe and --config exclude each other')
    try:
        recipe = Recipe.load(args.recipe)
    except (FileNotFoundError, TypeError) as e:
        raise SystemExit(f'error: {e}')
    overrides = {k: getattr(args, k) for k in ('steps', 'seed', 'threads', 'max_minutes')
                 if getattr(args, k) is not None}
    if args.out:
        recipe.out = args.out
    results = run_recipe(recipe, overrides, from_stage=args.from_stage)
    print(json.dumps({k: results[k] for k in ('recipe', 'evaluation_seconds')}))


def cmd_eval_scenes3d(args):
    from .evaluate_scenes3d import eval_frames, evaluate_scenes3d
    engine = _engine(args, 'torch')      # scores the torch model itself (batched)
    start = time.time()
    frames = eval_frames(args.scenes3d, held_out_style=args.held_out_style,
                         held_out_wordings=args.paraphrases, image_size=engine.image_size,
                         seed=args.seed)
    report = evaluate_scenes3d(engine.model, engine.tokenizer, frames)
    report.update(checkpoint=engine.checkpoint, held_out_style=args.held_out_style,
                  held_out_wordings=args.paraphrases, seconds=round(time.time() - start, 1))
    if args.json:
        print(json.dumps(report, indent=1))
        return
    vqa, cap = report['vqa'], report['captions']
    print(f"3D arena: VQA {vqa['accuracy']:.4f} on {vqa['n']} questions about "
          f"{report['frames']} frames; captions naming every seen object {cap['objects']:.4f}")
    for t, r in vqa['per_type'].items():
        print(f"  {t:24s} {r['accuracy']:.4f}  n={r['n']}")


def cmd_eval(args):
    if args.scenes3d:
        return cmd_eval_scenes3d(args)
    from .data.camera import camera_frame
    from .data.easy_vqa import load_dir, package_split_dir
    from .data.questions import generate_qa
    from .evaluate import evaluate_captions, evaluate_split
    from .preprocess import to_model_input
    engine = _engine(args, 'torch')      # scores the torch model itself (batched)
    path = args.data or package_split_dir(args.split)
    split = load_dir(path, with_labels=args.paraphrases or args.captions)
    if args.limit:   # the first N images and their questions
        split.images, split.objects = split.images[:args.limit], split.objects[:args.limit]
        split.questions = [q for q in split.questions if q[2] < args.limit]
    rng = np.random.default_rng(args.seed)
    images = None
    if args.camera:
        images = np.stack([to_model_input(camera_frame(img, rng)) for img in split.images])
    if args.paraphrases:   # held-out wordings about the same images
        split.questions = [(q, a, i) for i in sorted({x[2] for x in split.questions})
                           for q, a, _f in generate_qa(split.objects[i], rng, 3, held_out=True)]
    start = time.time()
    if args.captions:
        report = evaluate_captions(engine.model, engine.tokenizer, split, images=images)
        report.update(data=path, camera=args.camera, seconds=round(time.time() - start, 1))
        print(json.dumps(report, indent=1) if args.json else
              f"captions: exact {report['exact']:.4f}, every object named {report['objects']:.4f}"
              f" (n={report['n']})")
        return
    report = evaluate_split(engine.model, engine.tokenizer, split, images=images)
    report.update(data=path, checkpoint=engine.checkpoint, camera=args.camera,
                  paraphrases=args.paraphrases, seconds=round(time.time() - start, 1))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"accuracy {report['accuracy']:.4f} on {report['n']} questions ({path})")
        for t, r in report['per_type'].items():
            print(f"  {t:24s} {r['accuracy']:.4f}  n={r['n']}")


def _print_result(args, result, **extra):
    if args.json:
        print(json.dumps({**extra, 'text': result.text, 'confidence': round(result.confidence, 4),
                          'latency_ms': round(result.latency_ms, 2)}))
    else:
        print(f'{result.text}   (confidence {result.confidence:.2f}, '
              f'{result.latency_ms:.1f} ms)')


def cmd_ask(args):
    from .engine import QuestionError
    from .preprocess import ImageError
    engine = _engine(args)
    try:
        result = engine.answer(_load_image(args.image), args.question)
    except (QuestionError, ImageError) as e:
        raise SystemExit(f'error: {e}')
    _print_result(args, result, question=args.question)


def cmd_caption(args):
    engine = _engine(args)
    _print_result(args, engine.caption(_load_image(args.image)))


def cmd_bench(args):
    from .bench import benchmark_backends, benchmark_engine, benchmark_engines, machine_info
    if args.backend == 'both':   # torch and ONNX Runtime timed in one run, alternating
        report = benchmark_backends([_engine(args, 'torch'), _engine(args, 'onnxruntime')],
                                    runs=args.runs, threads=args.threads)
        print(json.dumps(report, indent=1) if args.json else
              '\n'.join(f'{k}: {v}' for k, v in report.items()))
        return
    if args.compare and args.backend != 'torch':
        raise SystemExit('error: --compare times torch checkpoints (use --backend torch)')
    engine = _engine(args)
    if args.compare:   # e.g. the attention ablation: both timed in one run, alternating
        from .engine import InferenceEngine
        others = [InferenceEngine(path, threads=args.threads) for path in args.compare]
        reports = benchmark_engines([engine] + others, runs=args.runs)
        report = {'engines': reports, 'runs': args.runs, 'threads': args.threads,
                  **machine_info()}
    else:
        report = benchmark_engine(engine, runs=args.runs)
    print(json.dumps(report, indent=1) if args.json else
          '\n'.join(f'{k}: {v}' for k, v in report.items()))


def cmd_export(args):
    from .errors import CheckpointError
    from .onnx_export import export_onnx
    try:
        manifest = export_onnx(args.checkpoint, args.out)
    except CheckpointError as e:
        raise SystemExit(f'error: {e}')
    graphs = manifest['graphs']
    print('\n'.join(f"{g['path']}: {os.path.getsize(g['path']) / 2**20:.2f} MB"
                    for g in graphs.values()), file=sys.stderr)
    if args.check:
        args.onnx_dir = os.path.dirname(next(iter(graphs.values()))['path'])
        cmd_parity(args)


def cmd_parity(args):
    from .errors import CheckpointError
    from .onnx_export import parity_report
    try:
        report = parity_report(args.checkpoint, args.onnx_dir, args.limit, args.threads)
    except CheckpointError as e:
        raise SystemExit(f'error: {e}')
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"answers identical {report['answers_identical']}/{report['answers_total']}, "
          f"captions identical {report['captions_identical']}/{report['captions_total']}, "
          f"max abs logit difference {report['max_abs_logit_diff']:.2e} "
          f"({report['split']}, {report['seconds']} s)")
    for m in report['mismatches']:
        print(f'  differs: {m}')


def cmd_demo(args):
    try:
        from .ros.demo import run_demo
    except ImportError as e:   # pip-only install: no rclpy or no generated vla_ros.msg
        raise SystemExit(f'error: the demo needs ROS 2 ({e}); run scripts/setup.sh, then '
                         'source scripts/env.sh')
    except KeyboardInterrupt:  # Ctrl-C while torch/rclpy import: a clean stop too
        sys.exit(0)
    sys.exit(run_demo(args.duration, args.checkpoint or '', args.source or '',
                      args.params_file or '', sim=args.sim, sim_policy=args.sim_policy))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='vla-ros', description=__doc__)
    sub = p.add_subparsers(dest='command', required=True)

    def with_model(sp):
        sp.add_argument('--checkpoint', help='checkpoint directory (default: bundled model)')
        sp.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')
        sp.add_argument('--json', action='store_true', help='print JSON')
        return sp

    t = sub.add_parser('train', help='train the model from scratch on CPU')
    t.add_argument('--config', help='YAML training config (default: built-in defaults)')
    t.add_argument('--steps', type=int)
    t.add_argument('--seed', type=int)
    t.add_argument('--threads', type=int)
    t.add_argument('--max-minutes', dest='max_minutes', type=float)
    t.add_argument('--out', help='checkpoint directory to write')
    t.add_argument('--recipe', help='run every stage of config/recipe_<RECIPE>.yaml (or a '
                   'recipe file), ship the last, export ONNX, evaluate, write the model card '
                   "(e.g. 'shipped'); --steps etc. then apply to every stage")
    t.add_argument('--from-stage', dest='from_stage',
                   help='with --recipe: keep the stages before this one from an earlier run')
    t.set_defaults(func=cmd_train)

    e = with_model(sub.add_parser('eval', help='VQA accuracy on easy-VQA or a dir in its layout'))
    e.add_argument('--data', help='directory with questions.json and images/')
    e.add_argument('--split', default='test', choices=('train', 'test'),
                   help='official split from the easy-vqa package (default test)')
    e.add_argument('--camera', action='store_true',
                   help='turn each image into a 640x480 JPEG camera-like frame first')
    e.add_argument('--paraphrases', action='store_true',
                   help='ask held-out paraphrased questions (never seen in training)')
    e.add_argument('--captions', action='store_true',
                   help='score captions (against captions written from derived labels)')
    e.add_argument('--limit', type=int, help='only the first N images')
    e.add_argument('--seed', type=int, default=0)
    e.add_argument('--scenes3d', type=int, metavar='N',
                   help='instead: N robot-camera frames of the 3D arena (held-out seeds), '
                        '8 questions and a caption each (--paraphrases: held-out wordings)')
    e.add_argument('--held-out-style', dest='held_out_style', action='store_true',
                   help='with --scenes3d: textures and lighting training never uses')
    e.set_defaults(func=cmd_eval)

    def with_backend(sp):
        sp.add_argument('--backend', default='auto', choices=('auto', 'torch', 'onnxruntime'),
                        help="inference backend (default auto: the ONNX export when it is "
                        'fresh, see `vla-ros export`, else torch)')
        return sp

    a = with_backend(with_model(sub.add_parser('ask', help='answer a question about an image')))
    a.add_argument('--image', required=True)
    a.add_argument('--question', required=True)
    a.set_defaults(func=cmd_ask)

    c = with_backend(with_model(sub.add_parser('caption', help='describe an image')))
    c.add_argument('--image', required=True)
    c.set_defaults(func=cmd_caption)

    b = with_model(sub.add_parser('bench', help='latency, memory and size at batch 1'))
    b.add_argument('--runs', type=int, default=300)
    b.add_argument('--compare', nargs='+', metavar='CHECKPOINT',
                   help='also time these checkpoints, alternating with the first')
    b.add_argument('--backend', default='torch', choices=('torch', 'onnxruntime', 'both'),
                   help="engine to time; 'both' times torch and ONNX Runtime alternately "
                   'in one run and reports their ratio')
    b.set_defaults(func=cmd_bench)

    def with_parity(sp):
        sp.add_argument('--limit', type=int,
                        help='only the first N test questions (default: all 9673)')
        sp.add_argument('--threads', type=int, default=1, help='threads (default 1)')
        sp.add_argument('--json', action='store_true', help='print JSON')
        return sp

    x = with_parity(sub.add_parser(
        'export', help='export the model to ONNX (image encoder, decoder step with KV cache, '
        'action head) for the onnxruntime backend'))
    x.add_argument('--checkpoint', help='checkpoint directory (default: bundled model)')
    x.add_argument('--out', help='output directory (default: <checkpoint>/onnx)')
    x.add_argument('--check', action='store_true',
                   help='then compare torch and ONNX Runtime on the easy-VQA test split')
    x.set_defaults(func=cmd_export)

    y = with_parity(sub.add_parser(
        'parity', help='torch vs ONNX Runtime on the easy-VQA test split: identical answers '
        'and captions, max logit difference'))
    y.add_argument('--checkpoint', help='checkpoint directory (default: bundled model)')
    y.add_argument('--onnx-dir', dest='onnx_dir', help='export (default: <checkpoint>/onnx)')
    y.set_defaults(func=cmd_parity)

    d = sub.add_parser('demo', help='run the ROS 2 nodes in one process and print results')
    d.add_argument('--duration', type=float, default=0.0,
                   help='stop after this many seconds (default: run until Ctrl-C)')
    d.add_argument('--checkpoint', help='checkpoint directory (default: bundled model)')
    d.add_argument('--source', help='image source: easy_vqa (default), scenes, camera, ...')
    d.add_argument('--params-file', dest='params_file',
                   help='ROS parameters YAML (default: config/vla_ros.yaml)')
    d.add_argument('--sim', action='store_true',
                   help='simulated robot as the camera, driven by instructions')
    d.add_argument('--sim-policy', dest='sim_policy', choices=('model', 'expert'),
                   default='model', help='who drives in --sim: the model (default) or the '
                   'privileged expert (shows the loop before the action head is trained)')
    d.set_defaults(func=cmd_demo)

    # `sim-eval` and `sim-record`: handlers in vla_ros/sim/commands.py
    from .sim.commands import add_sim_eval, add_sim_record
    add_sim_eval(sub)
    add_sim_record(sub)

    # `bag play|record|info|fixtures` and `eval-bag`: handlers in vla_ros/bag/cli_bag.py
    from .bag.cli_bag import add_bag_commands
    add_bag_commands(sub)

    def cmd_bench_ros(args):   # imports rclpy only when run, like `demo`
        try:
            from .ros.bench_ros import main as bench_ros
        except ImportError as e:
            raise SystemExit(f'error: bench-ros needs ROS 2 ({e}); run scripts/setup.sh, '
                             'then source scripts/env.sh')
        sys.exit(bench_ros(args.calls, args.duration, args.json, args.backend))

    r = sub.add_parser('bench-ros', help='ROS benchmark: /vqa round trip vs an empty service, '
                       'captions from a 30 Hz 640x480 camera, node memory')
    r.add_argument('--calls', type=int, default=300, help='/vqa calls per series (default 300)')
    r.add_argument('--duration', type=float, default=10.0,
                   help='seconds of camera stream to count captions over (default 10)')
    r.add_argument('--json', action='store_true', help='print JSON')
    r.add_argument('--backend', choices=('torch', 'onnxruntime', 'both'),
                   help='instead: compare inference backends in the nodes (cold start, '
                   '/vqa latency, captions/s, node RSS while serving)')
    r.set_defaults(func=cmd_bench_ros)

    def cmd_load_test(args):
        try:
            from .ros.load_test import main as load_test
        except ImportError as e:
            raise SystemExit(f'error: load-test needs ROS 2 ({e}); run scripts/setup.sh, '
                             'then source scripts/env.sh')
        sys.exit(load_test(args.clients, args.calls, args.json))

    t = sub.add_parser('load-test', help='many concurrent /vqa clients against the real node '
                       'processes: requests vs responses, latency, captions meanwhile')
    t.add_argument('--clients', type=int, default=50)
    t.add_argument('--calls', type=int, default=20, help='calls per client, back to back')
    t.add_argument('--json', action='store_true', help='print JSON')
    t.set_defaults(func=cmd_load_test)

    def cmd_explain(args):
        from .explain import main as explain
        sys.exit(explain(args))

    e = sub.add_parser('explain', help='draw where the model looks when it answers a question '
                       '(or follows an instruction), next to the answer')
    e.add_argument('--image', required=True)
    what = e.add_mutually_exclusive_group(required=True)
    what.add_argument('--question')
    what.add_argument('--instruction')
    e.add_argument('--out', required=True, help='PNG file to write')
    e.add_argument('--checkpoint', default='', help='checkpoint directory (default: bundled)')
    e.set_defaults(func=cmd_explain)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    os.environ.setdefault('OMP_NUM_THREADS', str(getattr(args, 'threads', None) or 1))
    args.func(args)


if __name__ == '__main__':
    main()
