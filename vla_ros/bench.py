"""Latency / memory / size benchmark of the inference engine at batch 1.

Works with every backend, and without torch installed (the ONNX Runtime backend alone);
backends without an action policy (transformers) time answers and captions only, and
those that report it (transformers) add the caption's first-token latency.
Engines compared in one run are timed in alternation, call by call, so load changes on a
shared machine slow all of them alike and their ratios stay meaningful.
"""
import os
import platform
import resource
import time
from importlib import metadata

import numpy as np

from .data.scenes import random_scene, render

QUESTION = 'what color is the shape?'
INSTRUCTION = 'go to the red circle'


def _percentiles(samples_ms):
    a = np.array(samples_ms)
    return {'p50': round(float(np.percentile(a, 50)), 3),
            'p95': round(float(np.percentile(a, 95)), 3),
            'p99': round(float(np.percentile(a, 99)), 3)}


def parameter_table(model) -> dict:
    return {name: sum(p.numel() for p in module.parameters())
            for name, module in model.named_children()}


def cache_bytes_per_token(model) -> int:
    """Decode-time KV-cache bytes per generated token (float32, all decoder layers)."""
    return sum(layer.attn.text.cache_width * 4 for layer in model.decoder.layers)


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def _sample_engines(engines, runs: int, warmup: int) -> list:
    """Per engine: answer / caption / act latencies (ms) and caption lengths."""
    rng = np.random.default_rng(0)
    frames = [render(random_scene(rng)) for _ in range(16)]
    samples = [{'answer': [], 'caption': [], 'act': [], 'tokens': [], 'first_token': []}
               for _ in engines]
    for i in range(warmup + runs):
        frame = frames[i % 16]
        for engine, s in zip(engines, samples):
            answer_ms = _timed(lambda: engine.answer(frame, QUESTION))
            result = []
            caption_ms = _timed(lambda: result.append(engine.caption(frame)))
            # (backends without an action policy, e.g. transformers, time no act)
            act_ms = (_timed(lambda: engine.act(frame, INSTRUCTION))
                      if 'act' in engine.capabilities else None)
            if i >= warmup:
                s['answer'].append(answer_ms)
                s['caption'].append(caption_ms)
                if act_ms is not None:
                    s['act'].append(act_ms)
                s['tokens'].append(result[0].tokens
                                   or len(engine.tokenizer.encode(result[0].text)) + 1)
                if result[0].first_token_ms is not None:
                    s['first_token'].append(result[0].first_token_ms)
    return samples


def _engine_report(engine, s) -> dict:
    report = {'backend': engine.backend, 'checkpoint': engine.checkpoint,
              'answer_ms': _percentiles(s['answer']), 'caption_ms': _percentiles(s['caption']),
              'caption_tokens_mean': round(float(np.mean(s['tokens'])), 1)}
    if s['act']:
        report['act_ms'] = _percentiles(s['act'])
    if s['first_token']:   # caption: frame in, first token out (transformers)
        report['caption_first_token_ms'] = _percentiles(s['first_token'])
    model = getattr(engine, 'model', None)
    if engine.backend == 'torch':            # the bundled model's components
        report.update(parameters=sum(p.numel() for p in model.parameters()),
                      parameters_per_component=parameter_table(model),
                      kv_cache_bytes_per_token=cache_bytes_per_token(model))
    elif model is not None:
        report.update(parameters=sum(p.numel() for p in model.parameters()))
    return report


def benchmark_engines(engines, runs: int = 300, warmup: int = 30) -> list:
    """Latency / size report per engine, timed in alternation."""
    samples = _sample_engines(engines, runs, warmup)
    return [_engine_report(engine, s) for engine, s in zip(engines, samples)]


def benchmark_engine(engine, runs: int = 300, warmup: int = 30) -> dict:
    """One engine's report plus the process's memory and the machine."""
    report = benchmark_engines([engine], runs, warmup)[0]
    report.update(runs=runs, threads=engine.threads, **machine_info())
    return report


def benchmark_backends(engines, runs: int = 300, warmup: int = 30, threads: int = 1) -> dict:
    """torch vs ONNX Runtime (engines in that order), in one run: each one's latencies and
    the torch / ORT ratio of every p50 and p99."""
    torch_report, ort_report = benchmark_engines(engines, runs, warmup)
    ratio = {f'{what}_{p}': round(torch_report[f'{what}_ms'][p] / ort_report[f'{what}_ms'][p], 2)
             for what in ('answer', 'caption', 'act') for p in ('p50', 'p99')}
    return {'backends': {'torch': torch_report, 'onnxruntime': ort_report},
            'torch_over_ort': ratio,
            'batch': 1, 'runs': runs, 'threads': threads, **machine_info()}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return '(not installed)'


def machine_info() -> dict:
    return {'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            'machine': f'{_cpu_name()}, {os.cpu_count()} cores', 'torch': _version('torch'),
            'onnxruntime': _version('onnxruntime'), 'transformers': _version('transformers')}


def _cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.machine()
