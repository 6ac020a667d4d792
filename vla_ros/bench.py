"""Latency / memory / size benchmark of the inference engine at batch 1."""
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


def benchmark_engine(engine, runs: int = 300, warmup: int = 30) -> dict:
    rng = np.random.default_rng(0)
    frames = [render(random_scene(rng)) for _ in range(16)]
    question = 'what color is the shape?'
    for i in range(warmup):
        engine.answer(frames[i % 16], question)
        engine.caption(frames[i % 16])
    answer, caption, caption_tokens = [], [], []
    for i in range(runs):
        t = time.perf_counter()
        engine.answer(frames[i % 16], question)
        answer.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        text = engine.caption(frames[i % 16]).text
        caption.append((time.perf_counter() - t) * 1000)
        caption_tokens.append(len(engine.tokenizer.encode(text)) + 1)
    model = engine.model
    return {
        'answer_ms': _percentiles(answer),
        'caption_ms': _percentiles(caption),
        'caption_tokens_mean': round(float(np.mean(caption_tokens)), 1),
        'runs': runs,
        'threads': torch.get_num_threads(),
        'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        'parameters': sum(p.numel() for p in model.parameters()),
        'parameters_per_component': parameter_table(model),
        'kv_cache_bytes_per_token': cache_bytes_per_token(model),
        'checkpoint': engine.checkpoint,
        'machine': f'{platform.processor() or platform.machine()}, {_cpu_name()}',
        'torch': torch.__version__,
    }


def _cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.machine()
