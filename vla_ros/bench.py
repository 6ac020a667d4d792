"""Latency / memory / size benchmark of the inference engine at batch 1."""
import os
import platform
import resource
import time

import numpy as np
import torch

from .data.scenes import random_scene, render


def _percentiles(samples_ms):
    a = np.array(samples_ms)
    return {'p50': round(float(np.percentile(a, 50)), 3),
            'p95': round(float(np.percentile(a, 95)), 3)}


def parameter_table(model) -> dict:
    return {name: sum(p.numel() for p in module.parameters())
            for name, module in model.named_children()}


def cache_bytes_per_token(model) -> int:
    """Decode-time KV-cache bytes per generated token (float32, all decoder layers)."""
    return sum(layer.attn.text.cache_width * 4 for layer in model.decoder.layers)


def benchmark_engines(engines, runs: int = 300, warmup: int = 30) -> list:
    """Latency / size report per engine. Engines are timed in alternation, so a noisy
    shared machine slows all of them alike and their ratios stay meaningful."""
    rng = np.random.default_rng(0)
    frames = [render(random_scene(rng)) for _ in range(16)]
    question = 'what color is the shape?'
    samples = [{'answer': [], 'caption': [], 'tokens': []} for _ in engines]
    for i in range(warmup + runs):
        for engine, s in zip(engines, samples):
            frame = frames[i % 16]
            t = time.perf_counter()
            engine.answer(frame, question)
            answer_ms = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            text = engine.caption(frame).text
            caption_ms = (time.perf_counter() - t) * 1000
            if i >= warmup:
                s['answer'].append(answer_ms)
                s['caption'].append(caption_ms)
                s['tokens'].append(len(engine.tokenizer.encode(text)) + 1)
    reports = []
    for engine, s in zip(engines, samples):
        model = engine.model
        reports.append({
            'checkpoint': engine.checkpoint,
            'answer_ms': _percentiles(s['answer']),
            'caption_ms': _percentiles(s['caption']),
            'caption_tokens_mean': round(float(np.mean(s['tokens'])), 1),
            'parameters': sum(p.numel() for p in model.parameters()),
            'parameters_per_component': parameter_table(model),
            'kv_cache_bytes_per_token': cache_bytes_per_token(model),
        })
    return reports


def benchmark_engine(engine, runs: int = 300, warmup: int = 30) -> dict:
    """One engine's report plus the process's memory and the machine."""
    report = benchmark_engines([engine], runs, warmup)[0]
    report.update(runs=runs, threads=torch.get_num_threads(), **machine_info())
    return report


def machine_info() -> dict:
    return {'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            'machine': f'{_cpu_name()}, {os.cpu_count()} cores', 'torch': torch.__version__}


def _cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.machine()
