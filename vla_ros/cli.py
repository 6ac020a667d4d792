"""`vla-ros`: train, evaluate, ask, caption and benchmark the model (and run the demo).

Each command imports what it needs when it runs; the training, simulator and bag
commands live beside their code (training/commands.py, sim/commands.py, bag/cli_bag.py)."""
import argparse
import json
import os
import sys

import numpy as np


def _load_image(path: str) -> np.ndarray:
    import cv2
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f'error: {path}: missing or not an image')
    return img[:, :, ::-1].copy()   # RGB


def _engine(args, backend: str = None):
    """The engine for --model (or --checkpoint) / --threads / --backend (auto where no
    --backend), with the options of that backend (engine.BACKEND_OPTIONS) that were given."""
    from .engine import BACKEND_OPTIONS, make_engine, resolve_backend
    from .errors import CheckpointError
    model = getattr(args, 'model', None) or args.checkpoint
    if getattr(args, 'model', None) and args.checkpoint:
        raise SystemExit('error: --model and --checkpoint name the same thing: give one')
    try:
        backend = resolve_backend(backend or getattr(args, 'backend', None) or 'auto', model)
        options = {key: getattr(args, name)
                   for name, key in BACKEND_OPTIONS.get(backend, {}).items()
                   if getattr(args, name, None) is not None}
        return make_engine(model, threads=args.threads, backend=backend, **options)
    except CheckpointError as e:
        raise SystemExit(f'error: {e}')


def _print_result(args, result, **extra):
    if args.json:
        print(json.dumps({**extra, 'text': result.text, 'confidence': round(result.confidence, 4),
                          'latency_ms': round(result.latency_ms, 2)}))
    else:
        print(f'{result.text}   (confidence {result.confidence:.2f}, '
              f'{result.latency_ms:.1f} ms)')


def _engine_call(args, method: str, *text):
    """engine.<method>(the --image, *text); a refusal ends the command with its reason."""
    from .engine import GenerationTimeout, QuestionError, ServerError
    from .preprocess import ImageError
    engine = _engine(args)
    try:
        return getattr(engine, method)(_load_image(args.image), *text)
    except (QuestionError, ImageError, GenerationTimeout, ServerError) as e:
        raise SystemExit(f'error: {e}')


def cmd_ask(args):
    _print_result(args, _engine_call(args, 'answer', args.question), question=args.question)


def cmd_caption(args):
    _print_result(args, _engine_call(args, 'caption'))


def cmd_ground(args):
    result = _engine_call(args, 'ground', args.phrase)
    boxes = [{'box': [round(v, 1) for v in b], 'point': [round(v, 1) for v in p],
              'score': round(s, 4)} for b, p, s in zip(result.boxes, result.points,
                                                       result.scores)]
    if args.json:
        print(json.dumps({'phrase': result.phrase, 'visible': result.visible, 'boxes': boxes,
                          'frame_size': list(result.frame_size),
                          'latency_ms': round(result.latency_ms, 2)}))
    elif not boxes:
        print(f'{result.phrase!r}: not visible   ({result.latency_ms:.1f} ms)')
    else:
        for b in boxes:
            print(f"{result.phrase!r}: box {b['box']} point {b['point']} score "
                  f"{b['score']:.2f}   ({result.latency_ms:.1f} ms)")


def cmd_serve(args):
    from .openai_server import make_server
    server = make_server(_engine(args), args.host, args.port, args.name)
    host, port = server.server_address[:2]
    print(f'vla-ros serve: {args.name}, OpenAI-compatible, on http://{host}:{port}/v1 '
          '(Ctrl-C to stop)', flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def cmd_bench(args):
    from .bench import benchmark_backends, benchmark_engine, benchmark_engines, machine_info
    if args.backend is None:   # a --model directory: whatever runs it; else the torch model
        args.backend = 'auto' if args.model else 'torch'
    if args.compare and args.backend not in ('torch', 'onnxruntime'):
        raise SystemExit('error: --compare times bundled checkpoints (use --backend torch or '
                         'onnxruntime)')
    if args.backend == 'both':   # torch and ONNX Runtime timed in one run, alternating
        report = benchmark_backends([_engine(args, 'torch'), _engine(args, 'onnxruntime')],
                                    runs=args.runs, threads=args.threads)
        print(json.dumps(report, indent=1) if args.json else
              '\n'.join(f'{k}: {v}' for k, v in report.items()))
        return
    engine = _engine(args)
    if args.compare:   # e.g. the attention ablation: all timed in one run, alternating
        from .engine import make_engine
        from .errors import CheckpointError
        try:
            others = [make_engine(path, threads=args.threads, backend=args.backend)
                      for path in args.compare]
        except CheckpointError as e:
            raise SystemExit(f'error: {e}')
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
    if args.world and not args.sim:
        raise SystemExit("error: --world is the simulated robot's arena: add --sim")
    try:
        from .ros_tools.demo import run_demo
    except ImportError as e:   # pip-only install: no rclpy or no generated vla_ros.msg
        raise SystemExit(f'error: the demo needs ROS 2 ({e}); run scripts/setup.sh, then '
                         'source scripts/env.sh')
    except KeyboardInterrupt:  # Ctrl-C while torch/rclpy import: a clean stop too
        sys.exit(0)
    sys.exit(run_demo(args.duration, args.checkpoint or '', args.source or '',
                      args.params_file or '', sim=args.sim, sim_policy=args.sim_policy,
                      managed=not args.plain_nodes, world=args.world or ''))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='vla-ros', description=__doc__)
    sub = p.add_subparsers(dest='command', required=True)

    def with_model(sp):
        sp.add_argument('--checkpoint', help='checkpoint directory (default: bundled model)')
        sp.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')
        sp.add_argument('--json', action='store_true', help='print JSON')
        return sp

    def with_transformers(sp):   # ask, caption, bench: any model directory and its options
        sp.add_argument('--model', help='model directory: the bundled format or a Hugging Face '
                        'image-text-to-text model (SmolVLM/Idefics3, PaliGemma, LLaVA), run by '
                        '--backend transformers (auto picks it); same as --checkpoint; a GGUF '
                        'model + mmproj*.gguf (--backend llamacpp); or the URL of an '
                        'OpenAI-compatible server (--backend openai)')
        g = sp.add_argument_group('transformers backend')
        g.add_argument('--max-new-tokens', dest='max_new_tokens', type=int,
                       help='longest reply in tokens (default 32)')
        g.add_argument('--image-max-side', dest='image_max_side', type=int,
                       help='scale frames down to this longest side in px (default 512; 0: '
                       'no limit)')
        g.add_argument('--image-splitting', dest='image_splitting', action='store_true',
                       default=None, help='Idefics3/SmolVLM: tiles + a global view (default: '
                       'one tile)')
        g.add_argument('--weights', choices=('float32', 'bfloat16', 'float16', 'int8'),
                       help="the weights' type (default float32; int8: Linear layers "
                       'quantized at load, the fastest on a CPU)')
        g.add_argument('--timeout', dest='generation_timeout', type=float,
                       help='seconds a reply may take (default 30)')
        g.add_argument('--trust-remote-code', dest='trust_remote_code', action='store_true',
                       default=None, help="run Python code shipped in the model directory")
        g.add_argument('--remote-model', dest='remote_model',
                       help="openai backend: the model name to ask the server for")
        return sp

    # `train` and `eval`: handlers in vla_ros/training/commands.py
    from .training.commands import add_eval, add_train
    add_train(sub)
    add_eval(with_model(sub.add_parser(
        'eval', help='VQA accuracy on easy-VQA, a dir in its layout, or 3D-arena frames')))

    def with_backend(sp):
        sp.add_argument('--backend', default='auto',
                        choices=('auto', 'torch', 'onnxruntime', 'transformers', 'openai',
                                 'llamacpp'),
                        help="inference backend (default auto: transformers for a Hugging "
                        'Face --model, llamacpp for a GGUF one; else the ONNX export when it '
                        'is fresh, see `vla-ros export`, else torch)')
        return sp

    a = with_transformers(with_backend(with_model(
        sub.add_parser('ask', help='answer a question about an image'))))
    a.add_argument('--image', required=True)
    a.add_argument('--question', required=True)
    a.set_defaults(func=cmd_ask)

    c = with_transformers(with_backend(with_model(
        sub.add_parser('caption', help='describe an image'))))
    c.add_argument('--image', required=True)
    c.set_defaults(func=cmd_caption)

    g = with_transformers(with_backend(with_model(sub.add_parser(
        'ground', help='where a phrase\'s object is in an image: boxes in its pixels'))))
    g.add_argument('--image', required=True)
    g.add_argument('--phrase', required=True, help="e.g. 'red ball'")
    g.set_defaults(func=cmd_ground)

    b = with_transformers(with_model(sub.add_parser('bench', help='latency, memory and size '
                                                    'at batch 1')))
    b.add_argument('--runs', type=int, default=300)
    b.add_argument('--compare', nargs='+', metavar='CHECKPOINT',
                   help='also time these checkpoints on the same backend (torch or '
                   'onnxruntime), alternating call by call with the first')
    b.add_argument('--backend', choices=('auto', 'torch', 'onnxruntime', 'transformers',
                                         'llamacpp',
                                         'both'),
                   help="engine to time (default torch; with --model: auto); 'both' times "
                   'torch and ONNX Runtime alternately in one run and reports their ratio')
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

    v = with_transformers(with_backend(with_model(sub.add_parser(
        'serve', help='serve the model as an OpenAI-compatible chat-completions API (for '
        'robots on backend openai)'))))
    v.add_argument('--host', default='127.0.0.1', help='address to bind (default 127.0.0.1)')
    v.add_argument('--port', type=int, default=8000, help='port (default 8000; 0: any free)')
    v.add_argument('--name', default='vla_ros', help='the model name /v1/models lists')
    v.set_defaults(func=cmd_serve)

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
    d.add_argument('--world', choices=('2d', '3d'),
                   help="the simulated robot's arena: 2d (the top-down camera the shipped "
                   'model reads) or 3d (MuJoCo, a perspective robot camera); default: the '
                   "parameters file's sim.world")
    d.add_argument('--plain-nodes', dest='plain_nodes', action='store_true',
                   help='plain nodes instead of the lifecycle ones (which the demo brings '
                   'to active, as the launch file does)')
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
            from .ros_tools.bench_ros import main as bench_ros
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
            from .ros_tools.load_test import main as load_test
        except ImportError as e:
            raise SystemExit(f'error: load-test needs ROS 2 ({e}); run scripts/setup.sh, '
                             'then source scripts/env.sh')
        sys.exit(load_test(args.clients, args.calls, args.json, args.max_batch, args.floor))

    t = sub.add_parser('load-test', help='many concurrent /vqa clients against the real node '
                       'processes: requests vs responses, latency, captions meanwhile')
    t.add_argument('--clients', type=int, default=50)
    t.add_argument('--calls', type=int, default=20, help='calls per client, back to back')
    t.add_argument('--json', action='store_true', help='print JSON')
    t.add_argument('--max-batch', dest='max_batch', type=int, default=64,
                   help="the vqa node's max_batch (1 = one call at a time, no batching)")
    t.add_argument('--floor', action='store_true',
                   help='the same load against a VQA service that answers at once (no '
                        'model): what rclpy and DDS alone reach on this machine')
    t.set_defaults(func=cmd_load_test)

    # parsed by bench_vlm.main itself (see main() below); listed here for --help
    sub.add_parser('bench-vlm', add_help=False,
                   help='speed and memory of pretrained VLM architectures at their real '
                   'sizes (random weights), transformers backend; --help for options')

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
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ['bench-vlm']:     # its own parser (argparse.REMAINDER drops --options)
        from .bench_vlm import main as bench_vlm
        sys.exit(bench_vlm(argv[1:]))
    args = build_parser().parse_args(argv)
    os.environ.setdefault('OMP_NUM_THREADS', str(getattr(args, 'threads', None) or 1))
    args.func(args)


if __name__ == '__main__':
    main()
