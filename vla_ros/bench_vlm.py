"""`vla-ros bench-vlm`: how fast and how big pretrained vision-language models are on this
machine through the transformers backend (and, for `gguf-*` weights, the llamacpp one), at
their real architectures' sizes.

No weights can be downloaded here, so each architecture (engine/hf_random.py: SmolVLM-256M,
SmolVLM-500M, PaliGemma-3B) is built once with random weights in its real on-disk format
and cached under `--work`. Speed and memory depend on the shapes, not on the values; the
answers of random weights mean nothing and are not reported. End-of-sequence is switched
off in transformers so every reply is exactly `--new-tokens` long (llama.cpp's replies
report their token counts in `reply_tokens`).

Every configuration (architecture x image budget x threads x weights) runs in a fresh
Python process, so its memory is its own: the TransformersEngine is loaded, asked once to
warm up, then `--runs` times about one 640x480 frame. Reported per configuration: the
medians of time to first token (frame in -> first token out, preprocessing included) and
of the time per further token, the process's peak RSS (loading included) and its RSS after
the runs, and the load time.
"""
import gc
import json
import os
import statistics
import subprocess
import sys
import time

ARCHITECTURES = ('smolvlm-256m', 'smolvlm-500m', 'paligemma-3b')
# image budgets (image_max_side): SmolVLM one 512-px tile (64 image tokens) and a 256-px
# tile (16); PaliGemma-3B-224 resizes every frame to 224 px (256 tokens) whatever the budget.
BUDGETS = {'smolvlm-256m': (512, 256), 'smolvlm-500m': (512, 256), 'paligemma-3b': (224,)}
QUESTION = 'What is on the floor in front of the robot?'
WEIGHTS = ('float32', 'bfloat16', 'float16', 'int8', 'gguf-f16', 'gguf-q8_0')
DEFAULT_WORK = os.path.join(os.path.expanduser('~'), '.cache', 'vla_ros', 'bench-vlm')


def _memory_mb() -> tuple:
    """(RSS now, peak RSS) of this process in MiB, from /proc/self/status (VmHWM is the
    kernel's high-water mark; getrusage's ru_maxrss can lag behind the current RSS)."""
    values = {}
    with open('/proc/self/status') as f:
        for line in f:
            key, _, rest = line.partition(':')
            if key in ('VmRSS', 'VmHWM'):
                values[key] = int(rest.split()[0]) / 1024
    return values['VmRSS'], values['VmHWM']


def _frame():
    import numpy as np
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)


def _load(model_dir: str, threads: int, weights: str, image_max_side: int, new_tokens: int):
    """(engine, prompt tokens of QUESTION about the frame) on the backend `weights` names."""
    options = dict(threads=threads, max_new_tokens=new_tokens, image_max_side=image_max_side,
                   timeout_s=3600.0)
    frame = _frame()
    if weights.startswith('gguf-'):
        from .engine.llamacpp_backend import LlamaCppEngine
        engine = LlamaCppEngine(model_dir, **options)
        engine.llm.reset()
        result = engine.answer(frame, QUESTION)      # also the warm-up
        return engine, engine.llm.n_tokens - result.tokens
    from .engine.transformers_backend import TransformersEngine
    engine = TransformersEngine(model_dir, dtype=weights, **options)
    engine.model.generation_config.eos_token_id = None     # every reply new_tokens long
    inputs = engine.model_inputs(engine.prepare_image(frame), engine.question_prompt(QUESTION))
    engine.answer(frame, QUESTION)                         # warm-up
    return engine, int(inputs['input_ids'].shape[1])


def measure(model_dir: str, threads: int, weights: str, image_max_side: int,
            new_tokens: int, runs: int) -> dict:
    """One configuration, in this process (run it in a fresh one: see module doc)."""
    start = time.perf_counter()
    engine, prompt_tokens = _load(model_dir, threads, weights, image_max_side, new_tokens)
    load_s = time.perf_counter() - start        # load + the warm-up reply
    gc.collect()
    frame = _frame()
    first, per_token, tokens = [], [], []
    for _ in range(runs):
        r = engine.answer(frame, QUESTION)
        first.append(r.first_token_ms)
        tokens.append(r.tokens)
        if r.tokens > 1:
            per_token.append((r.latency_ms - r.first_token_ms) / (r.tokens - 1))
    ms_per_token = statistics.median(per_token) if per_token else None
    rss, peak = _memory_mb()
    return {
        'threads': threads, 'weights': weights, 'image_max_side': image_max_side,
        'prompt_tokens': prompt_tokens, 'reply_tokens': tokens,
        'first_token_ms': round(statistics.median(first), 1),
        'first_token_ms_runs': [round(x, 1) for x in first],
        'ms_per_token': None if ms_per_token is None else round(ms_per_token, 2),
        'tokens_per_s': None if not ms_per_token else round(1000.0 / ms_per_token, 1),
        'peak_rss_mb': round(peak, 1),
        'rss_mb': round(rss, 1),
        'load_and_warm_up_s': round(load_s, 2),
    }


def model_dir(architecture: str, work: str, weights: str = 'float32') -> str:
    """The random-weight model directory of `architecture`, built on first use; for
    `gguf-<type>` weights, its GGUF conversion (llama.cpp's converter) beside it."""
    from .engine.hf_random import build_real_size
    directory = os.path.join(work, architecture)
    if not os.path.isfile(os.path.join(directory, 'model.safetensors')) and not \
            os.path.isfile(os.path.join(directory, 'model.safetensors.index.json')):
        print(f'building {architecture} (random weights) in {directory}', file=sys.stderr)
        build_real_size(architecture, directory)
    if not weights.startswith('gguf-'):
        return directory
    from .engine.gguf_convert import convert_to_gguf
    outtype = weights[len('gguf-'):]
    gguf_dir = f'{directory}-gguf-{outtype}'
    if not os.path.isdir(gguf_dir):
        print(f'converting {architecture} to GGUF ({outtype}) in {gguf_dir}', file=sys.stderr)
        convert_to_gguf(directory, gguf_dir + '.partial', outtype, gpt2_pretokenizer=True)
        os.rename(gguf_dir + '.partial', gguf_dir)
    return gguf_dir


def run(architectures, threads=(1, 2), weights=('float32', 'int8'), budgets=None,
        new_tokens: int = 16, runs: int = 3, work: str = DEFAULT_WORK) -> dict:
    """Every configuration in its own process; the report (see the module doc)."""
    from .bench import machine_info
    results = []
    for arch in architectures:
        for side in budgets or BUDGETS[arch]:
            for weight in weights:
                directory = model_dir(arch, work, weight)
                for n in threads:
                    command = [sys.executable, '-m', 'vla_ros.bench_vlm', '--one', directory,
                               '--threads', str(n), '--weights', weight, '--side', str(side),
                               '--new-tokens', str(new_tokens), '--runs', str(runs)]
                    env = dict(os.environ, OMP_NUM_THREADS=str(n))
                    done = subprocess.run(command, capture_output=True, text=True, env=env)
                    if done.returncode != 0:
                        row = {'error': done.stderr.strip().splitlines()[-1:]}
                    else:
                        row = json.loads(done.stdout.strip().splitlines()[-1])
                    results.append({'architecture': arch, **row,
                                    **({} if 'threads' in row else {
                                        'threads': n, 'weights': weight,
                                        'image_max_side': side})})
                    print(json.dumps(results[-1]), file=sys.stderr)
    return {'what': 'random weights at the real architectures\' sizes (answers not '
                    'meaningful); greedy; transformers: end-of-sequence off',
            'new_tokens': new_tokens, 'runs': runs, 'results': results, **machine_info()}


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog='vla-ros bench-vlm', description=__doc__.split('\n')[0])
    p.add_argument('--arch', nargs='+', choices=ARCHITECTURES, default=['smolvlm-256m'])
    p.add_argument('--threads', nargs='+', type=int, default=[1, 2])
    p.add_argument('--weights', nargs='+', default=['float32', 'int8'],
                   choices=WEIGHTS, help='transformers: float32, bfloat16, float16, int8; '
                   'llamacpp (needs scripts/setup.sh --with llamacpp): gguf-f16, gguf-q8_0, '
                   'the same random model converted by llama.cpp\'s converter')
    p.add_argument('--budgets', nargs='+', type=int,
                   help='image_max_side values (default: per architecture, see BUDGETS)')
    p.add_argument('--new-tokens', type=int, default=16)
    p.add_argument('--runs', type=int, default=3)
    p.add_argument('--work', default=DEFAULT_WORK,
                   help=f'where the random-weight models are built and kept ({DEFAULT_WORK})')
    p.add_argument('--json', action='store_true')
    p.add_argument('--node', action='store_true',
                   help='instead: /vqa through the real vqa_service process against the '
                   "engine's own latency, for the first --arch/--weights/--budgets/--threads")
    p.add_argument('--calls', type=int, default=10, help='--node: timed calls of each kind')
    p.add_argument('--one', help=argparse.SUPPRESS)        # a child process: one model dir
    p.add_argument('--side', type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(measure(a.one, a.threads[0], a.weights[0], a.side, a.new_tokens,
                                 a.runs)))
        return 0
    if a.node:
        from .ros_tools.bench_vlm_node import run as run_node
        side = (a.budgets or BUDGETS[a.arch[0]])[0]
        report = run_node(model_dir(a.arch[0], a.work), a.weights[0], side, a.threads[0],
                          a.new_tokens, a.calls)
        print(json.dumps(report, indent=1))
        return 0
    report = run(a.arch, a.threads, a.weights, a.budgets, a.new_tokens, a.runs, a.work)
    if a.json:
        print(json.dumps(report, indent=1))
    else:
        for r in report['results']:
            print(' '.join(f'{k}={v}' for k, v in r.items() if k != 'first_token_ms_runs'))
    return 0 if all('error' not in r for r in report['results']) else 1


if __name__ == '__main__':
    sys.exit(main())
