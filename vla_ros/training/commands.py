"""`vla-ros train` (one config, or a whole recipe) and `vla-ros eval` (easy-VQA, a
directory in its layout, or 3D-arena frames)."""
import json
import sys
import time

import numpy as np

from ..errors import CheckpointError


def _torch_engine(args):
    """The torch engine for --checkpoint / --threads: evaluation scores the model itself."""
    from ..engine import make_engine
    from ..errors import CheckpointError
    try:
        return make_engine(args.checkpoint, threads=args.threads, backend='torch')
    except CheckpointError as e:
        raise SystemExit(f'error: {e}')


def cmd_train(args):
    if args.recipe:
        return cmd_train_recipe(args)
    from ..train import TrainConfig, train
    cfg = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    for key in ('steps', 'seed', 'out', 'threads', 'max_minutes'):
        if getattr(args, key) is not None:
            setattr(cfg, key, getattr(args, key))
    if args.vision_encoder:
        if cfg.init_from:
            raise SystemExit('error: --vision-encoder starts a model from scratch; the config '
                             f'continues {cfg.init_from}')
        cfg.model = {**cfg.model, 'vision_encoder': args.vision_encoder}
    try:
        metrics = train(cfg)
    except CheckpointError as e:
        raise SystemExit(f'error: {e}')
    keys = ('steps_done', 'train_seconds', 'parameters', 'val_accuracy')
    print(json.dumps({k: metrics[k] for k in keys}))
    print(f'checkpoint written to {cfg.out}', file=sys.stderr)


def cmd_train_recipe(args):
    from ..training.recipe import Recipe, run_recipe
    if args.config:
        raise SystemExit('error: --recipe and --config exclude each other')
    try:
        recipe = Recipe.load(args.recipe)
    except (FileNotFoundError, TypeError) as e:
        raise SystemExit(f'error: {e}')
    overrides = {k: getattr(args, k) for k in ('steps', 'seed', 'threads', 'max_minutes')
                 if getattr(args, k) is not None}
    if args.out:
        recipe = recipe.elsewhere(args.out)
    results = run_recipe(recipe, overrides, from_stage=args.from_stage)
    print(json.dumps({k: results[k] for k in ('recipe', 'evaluation_seconds')}))


def cmd_eval_scenes3d(args):
    from ..evaluate_scenes3d import eval_frames, evaluate_scenes3d
    engine = _torch_engine(args)      # scores the torch model itself (batched)
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


def cmd_eval_grounding(args):
    from ..evaluate_grounding import evaluate_grounding
    report = evaluate_grounding(_torch_engine(args), args.grounding, seed=args.seed)
    if args.json:
        print(json.dumps(report, indent=1))
        return
    seen = report['in_view']
    print(f"grounding on {report['arenas']} held-out arenas: in view {seen['grounded']:.3f} "
          f"grounded (n={seen['n']}), point error median {seen['point_error_px_median']} px, "
          f"{seen['within_one_cell']:.3f} within one {seen['cell_px']:g}-px cell; wrongly "
          f"grounded: out of view {report['out_of_view']['wrongly_grounded']:.3f}, absent "
          f"{report['absent']['wrongly_grounded']:.3f}")


def cmd_eval_grounding3d(args):
    from ..evaluate_grounding3d import evaluate_grounding3d
    report = evaluate_grounding3d(_torch_engine(args), args.grounding3d,
                                  held_out_style=args.held_out_style, seed=args.seed)
    if args.json:
        print(json.dumps(report, indent=1))
        return
    seen = report['in_view']
    print(f"grounding in {report['frames']} held-out 3D frames, {seen['n']} objects in view: "
          + ', '.join(f"{k} {seen[k]:.3f}" for k in seen if k != 'n')
          + f"; absent objects wrongly grounded {report['absent']['wrongly_grounded']:.3f}")


def cmd_eval(args):
    if args.grounding3d:
        return cmd_eval_grounding3d(args)
    if args.scenes3d:
        return cmd_eval_scenes3d(args)
    if args.grounding:
        return cmd_eval_grounding(args)
    from ..data.easy_vqa import load_dir, package_split_dir
    from ..evaluate import camera_images, evaluate_captions, evaluate_split, paraphrased
    engine = _torch_engine(args)      # scores the torch model itself (batched)
    path = args.data or package_split_dir(args.split)
    split = load_dir(path, with_labels=args.paraphrases or args.captions)
    if args.limit:   # the first N images and their questions
        split.images, split.objects = split.images[:args.limit], split.objects[:args.limit]
        split.questions = [q for q in split.questions if q[2] < args.limit]
    rng = np.random.default_rng(args.seed)
    images = None
    if args.camera:
        images = camera_images(split.images, rng, engine.model.cfg.image_size)
    if args.paraphrases:   # held-out wordings about the same images
        split = paraphrased(split, rng)
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


def add_train(sub):
    """Register `train` on the CLI's subparsers."""
    t = sub.add_parser('train', help='train the model from scratch on CPU')
    t.add_argument('--config', help='YAML training config (default: built-in defaults)')
    t.add_argument('--steps', type=int)
    t.add_argument('--seed', type=int)
    t.add_argument('--threads', type=int)
    t.add_argument('--max-minutes', dest='max_minutes', type=float)
    t.add_argument('--out', help='checkpoint directory to write')
    t.add_argument('--vision-encoder', dest='vision_encoder', metavar='DIR',
                   help='train the Q-Former, decoder and action head on a frozen pretrained '
                        'SigLIP or CLIP vision tower from this local directory (BLIP-2 style)')
    t.add_argument('--recipe', help='run every stage of config/recipe_<RECIPE>.yaml (or a '
                   'recipe file), ship the last, export ONNX, evaluate, write the model card '
                   "(e.g. 'shipped'); --steps etc. then apply to every stage")
    t.add_argument('--from-stage', dest='from_stage',
                   help='with --recipe: keep the stages before this one from an earlier run')
    t.set_defaults(func=cmd_train)


def add_eval(e):
    """Add `eval`'s arguments to its parser (which already has --checkpoint, --threads and
    --json)."""
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
    e.add_argument('--grounding', type=int, metavar='N',
                   help='instead: `ground` every shape of N held-out 2D arenas, plus one '
                        'absent shape each (vla_ros/evaluate_grounding.py)')
    e.add_argument('--grounding3d', type=int, metavar='N',
                   help='instead: `ground` every object the robot camera sees in N held-out '
                        '3D frames, plus one absent object each '
                        '(vla_ros/evaluate_grounding3d.py)')
    e.add_argument('--held-out-style', dest='held_out_style', action='store_true',
                   help='with --scenes3d or --grounding3d: textures and lighting training '
                        'never uses')
    e.set_defaults(func=cmd_eval)
