"""Every figure the model card reports, for one checkpoint, and the card's table.

    results = evaluate_checkpoint('models/vla_tiny')      # a dict, JSON-ready
    write_model_card('models/MODEL_CARD.md', results_markdown(results))

Language: easy-VQA's official test split (also as camera-like frames, and with held-out
paraphrases), 3D-arena VQA and captions on held-out seeds (training styles, then
held-out styles). Closed loop: sim-eval in the 3D world (goto, goto in held-out styles,
face) and the privileged expert's row as the reference. Speed: ONNX Runtime, batch 1,
1 thread. A size of 0 skips that evaluation.
"""
import time

import numpy as np

MARK_BEGIN, MARK_END = '<!-- recipe results -->', '<!-- /recipe results -->'


def _easy_vqa(model, tokenizer) -> dict:
    """The official test split as it is, as camera frames, and with held-out paraphrases:
    the same figures as `vla-ros eval --split test [--camera | --paraphrases]` (seed 0)."""
    from ..data.easy_vqa import load_dir, package_split_dir
    from ..evaluate import camera_images, evaluate_split, paraphrased
    split = load_dir(package_split_dir('test'), with_labels=True)
    frames = camera_images(split.images, np.random.default_rng(0), model.cfg.image_size)
    return {'test': _brief(evaluate_split(model, tokenizer, split)),
            'camera': _brief(evaluate_split(model, tokenizer, split, images=frames)),
            'paraphrases': _brief(evaluate_split(
                model, tokenizer, paraphrased(split, np.random.default_rng(0))))}


def _brief(report: dict) -> dict:
    return {k: report[k] for k in ('accuracy', 'n', 'correct', 'per_type') if k in report}


def _scenes3d(model, tokenizer, frames: int, held_out_style_frames: int) -> dict:
    from ..evaluate_scenes3d import eval_frames, evaluate_scenes3d
    size = model.cfg.image_size
    out = {}
    if frames:
        out['train_styles'] = evaluate_scenes3d(model, tokenizer, eval_frames(frames,
                                                                              image_size=size))
    if held_out_style_frames:
        out['held_out_styles'] = evaluate_scenes3d(
            model, tokenizer, eval_frames(held_out_style_frames, held_out_style=True,
                                          held_out_wordings=True, image_size=size))
    for r in out.values():       # three examples per question type in the results file
        r['vqa']['errors'] = {t: e[:3] for t, e in r['vqa']['errors'].items()}
    return out


def _closed_loop(checkpoint: str, episodes: int, face_episodes: int,
                 expert_episodes: int, held_out_style_episodes: int, threads: int) -> dict:
    from ..engine import make_engine
    from ..sim.evaluate import evaluate, ExpertPolicy, ModelPolicy
    engine = make_engine(checkpoint, threads=threads, backend='auto')
    model = ModelPolicy(engine)
    size = engine.image_size
    runs = {'goto': (model, episodes, ('goto',), False),
            'goto_held_out_styles': (model, held_out_style_episodes, ('goto',), True),
            'face': (model, face_episodes, ('face',), False),
            'expert_goto': (ExpertPolicy(), expert_episodes, ('goto',), False)}
    out = {'backend': engine.backend}
    for name, (policy, n, kinds, held_out_style) in runs.items():
        if n:
            r = evaluate(policy, n, kinds=kinds, image_size=size, world='3d',
                         held_out_style=held_out_style)
            r['failures'] = r['failures'][:5]
            out[name] = r
    return out


def _speed(checkpoint: str, runs: int) -> dict:
    from ..bench import benchmark_engine
    from ..engine.onnxruntime_backend import OnnxEngine
    r = benchmark_engine(OnnxEngine(checkpoint, threads=1), runs=runs)
    return {k: r[k] for k in ('answer_ms', 'caption_ms', 'act_ms', 'machine', 'threads')}


def evaluate_checkpoint(checkpoint: str, easy_vqa: bool = True, scene3d_frames: int = 2000,
                        scene3d_held_out_style_frames: int = 500, sim_episodes: int = 200,
                        face_episodes: int = 100, expert_episodes: int = 200,
                        held_out_style_episodes: int = 200, bench_runs: int = 200,
                        threads: int = 2) -> dict:
    """The model card's figures for `checkpoint` (see the module docstring)."""
    import torch
    from ..model.checkpoint import load_checkpoint
    torch.set_num_threads(threads)
    model, tokenizer = load_checkpoint(checkpoint)
    model.eval()
    results, seconds = {'checkpoint': checkpoint}, {}

    def timed(name, fn, *args):
        start = time.time()
        results[name] = fn(*args)
        seconds[name] = round(time.time() - start, 1)

    if easy_vqa:
        timed('easy_vqa', _easy_vqa, model, tokenizer)
    if scene3d_frames or scene3d_held_out_style_frames:
        timed('scenes3d', _scenes3d, model, tokenizer, scene3d_frames,
              scene3d_held_out_style_frames)
    if sim_episodes or face_episodes or expert_episodes or held_out_style_episodes:
        timed('closed_loop', _closed_loop, checkpoint, sim_episodes, face_episodes,
              expert_episodes, held_out_style_episodes, 1)
    if bench_runs:
        timed('speed', _speed, checkpoint, bench_runs)
    results['evaluation_seconds'] = seconds
    return results


def _pct(x) -> str:
    return '–' if x is None else f'{100 * x:.2f}%'


def results_markdown(r: dict) -> str:
    """The model card's tables for evaluate_checkpoint's results (+ the recipe's timing)."""
    lines = []
    rec = r.get('recipe')
    if rec:
        stages = ', '.join(f'{k} {v / 60:.1f} min' for k, v in rec['stage_seconds'].items())
        lines += [f"Trained by `vla-ros train --recipe {rec['name']}`: training "
                  f"{rec['train_seconds'] / 60:.1f} min ({stages}), "
                  f"{rec['total_seconds'] / 60:.1f} min with export and evaluation.", '']
    e = r.get('easy_vqa')
    if e:
        lines += ['| easy-VQA (official test split) | accuracy | n |', '|---|---|---|']
        for name, label in (('test', 'test questions'), ('camera', 'as 640x480 camera frames'),
                            ('paraphrases', 'held-out paraphrases')):
            lines.append(f"| {label} | {_pct(e[name]['accuracy'])} | {e[name]['n']} |")
        lines.append('')
    s = r.get('scenes3d')
    if s:
        types = sorted({t for v in s.values() for t in v['vqa']['per_type']})
        lines += ['| 3D arena, held-out seeds | frames | VQA | ' + ' | '.join(types)
                  + ' | captions (every seen object) | captions exact |',
                  '|---' * (len(types) + 5) + '|']
        for name, v in s.items():
            per = v['vqa']['per_type']
            lines.append(f"| {name.replace('_', ' ')} | {v['frames']} | "
                         f"{_pct(v['vqa']['accuracy'])} | "
                         + ' | '.join(_pct(per[t]['accuracy']) if t in per else '–'
                                      for t in types)
                         + f" | {_pct(v['captions']['objects'])} | "
                         f"{_pct(v['captions']['exact'])} |")
        lines.append('')
    c = r.get('closed_loop')
    if c:
        lines += ['| sim-eval, 3D world | episodes | success | wrong target | collisions '
                  '| median time |', '|---|---|---|---|---|---|']
        for name, v in c.items():
            if isinstance(v, dict):
                lines.append(f"| {name.replace('_', ' ')} | {v['episodes']} | "
                             f"{v['success_rate']:.3f} | {v['wrong_target_rate']:.3f} | "
                             f"{v['collision_rate']:.3f} | {v['median_time_to_goal_s']} s |")
        lines.append('')
    sp = r.get('speed')
    if sp:
        lines += [f"Speed (ONNX Runtime, batch 1, 1 thread, {sp['machine']}): answer p50 "
                  f"{sp['answer_ms']['p50']} ms, caption p50 {sp['caption_ms']['p50']} ms, "
                  f"act p50 {sp['act_ms']['p50']} ms.", '']
    return '\n'.join(lines)


def write_model_card(path: str, table: str) -> None:
    """Put `table` between the card's result markers (appended if it has none)."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ''
    block = f'{MARK_BEGIN}\n{table}\n{MARK_END}'
    if MARK_BEGIN in text and MARK_END in text:
        head, rest = text.split(MARK_BEGIN, 1)
        text = head + block + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip('\n') + '\n\n' + block + '\n'
    with open(path, 'w') as f:
        f.write(text)
