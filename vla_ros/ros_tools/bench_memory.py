"""`vla-ros bench-ros`, part 3: what a node's memory is made of.

Reference processes (bare python, `import rclpy`, `import torch`) and one process that
builds up a node step by step (messages, torch, the node modules, the loaded engine), each
reading its own /proc/self/status; the engine process also times conversion vs model.
"""
import json
import os
import subprocess
import sys

from .bench_harness import BenchError, NODE_THREADS, QUESTION, START_TIMEOUT_S, STATUS_FIELDS


# -- 3. reference processes for memory attribution ---------------------------------------
# bench_harness.status_mb for the reference processes, which import nothing of ours first
_MEM = f"""def mem():
    fields = {STATUS_FIELDS!r}
    d = dict(line.split(':', 1) for line in open('/proc/self/status'))
    return {{v: round(int(d[k].split()[0]) / 1024, 1) for k, v in fields.items()}}
"""

PROBES = {'python': 'pass', 'import_rclpy': 'import rclpy', 'import_torch': 'import torch'}

# One process, in the order a node builds up: the step sizes attribute the total, and
# the engine's own timings split the server's time into conversion vs model.
ENGINE_PROBE = _MEM + """
import json, time
out = {'python': mem()}
import rclpy, sensor_msgs.msg, vla_ros.srv, vla_ros.msg
out['+rclpy_and_messages'] = mem()
import torch
out['+torch'] = mem()
import vla_ros.ros.vla_node, vla_ros.ros.vqa_service_node
out['+vla_ros_node_modules'] = mem()
import numpy as np
from vla_ros.engine import InferenceEngine
from vla_ros.ros.image_conversion import image_to_rgb, rgb_to_image
e = InferenceEngine(threads=%d)
out['+model_loaded'] = mem()
small = np.full((64, 64, 3), 200, np.uint8)
big = np.full((480, 640, 3), 200, np.uint8)
msg = rgb_to_image(small)
def timed(f, n=%d):
    for _ in range(20):
        f()
    t = []
    for _ in range(n):
        s = time.perf_counter(); f(); t.append((time.perf_counter() - s) * 1000)
    return round(float(np.median(t)), 3)
timing = {'answer_64_ms': timed(lambda: e.answer(small, %r)),
          'answer_640x480_ms': timed(lambda: e.answer(big, %r)),
          'caption_640x480_ms': timed(lambda: e.caption(big)),
          'image_to_rgb_64_ms': timed(lambda: image_to_rgb(msg))}
out['+after_inference'] = mem()
params = sum(p.numel() for p in e.model.parameters())
print(json.dumps({'stages': out, 'timing_p50': timing, 'parameters': params,
                  'torch': torch.__version__, 'torch_threads': torch.get_num_threads()}))
"""


def _run_probe(code: str) -> dict:
    run = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=START_TIMEOUT_S)
    if run.returncode != 0:
        raise BenchError(f'memory probe failed:\n{run.stderr[-2000:]}')
    return json.loads(run.stdout.strip().splitlines()[-1])


def bench_memory(runs: int) -> dict:
    """RSS of the reference processes, and the engine process's stages and timings (p50 of
    `runs` calls each)."""
    report = {name: _run_probe(_MEM + code + '\nimport json; print(json.dumps(mem()))')
              for name, code in PROBES.items()}
    engine = _run_probe(ENGINE_PROBE % (NODE_THREADS, runs, QUESTION, QUESTION))
    stages, step, previous = engine['stages'], {}, 0.0
    for name, mem in stages.items():
        step[name] = round(mem['rss_mb'] - previous, 1)
        previous = mem['rss_mb']
    report['engine_process_stages'] = stages
    report['engine_process_step_mb'] = step
    from ..engine import default_checkpoint
    weights = os.path.join(default_checkpoint(), 'model.safetensors')
    report['weights_file_mb'] = round(os.path.getsize(weights) / 2**20, 2)
    return report, engine
