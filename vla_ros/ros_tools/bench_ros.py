"""`vla-ros bench-ros`: the ROS-level benchmark (README, "Performance"), in one run.

The nodes run as separate processes started the way `ros2 run` starts them
(lib/vla_ros/<node> --ros-args ...); this process is only the client that measures.

1. `/vqa` round trip (call -> response) over N calls, with the cached camera frame and
   with a 64x64 request image, interleaved call by call with the same requests to an
   empty VQA service (same message type, same executor, answers at once): the DDS floor.
2. Captions: a 640x480 rgb8 camera streams at 30 Hz into `vla_node` (caption_rate 30);
   captions/s, frame-publish -> caption-received latency, frames published vs captioned;
   once with the node's default (best-effort) camera subscription, once with a reliable one.
3. Memory: VmRSS / VmHWM of every node process while serving, and of reference
   processes (bare python, `import rclpy`, `import torch`, the loaded engine) that say
   what the node's memory is made of.
4. With `--backend torch|onnxruntime|both` (instead of 1-3): per inference backend, cold
   start (process start -> first successful /vqa answer, median of 3), /vqa round trips,
   captions/s, node RSS while serving each, and whether libtorch is mapped in the node.

Durations are time.perf_counter differences taken in this process; results are medians
and percentiles over many samples. Nothing here asserts a time.

Modules: bench_harness (settings, node processes, /proc, the camera), bench_latency (1, 2),
bench_memory (3), bench_backends (4), bench_report (the printed summaries),
bench_empty_service (the floor's service process). This one runs 1-3 and is the command.
"""
import json
import os
import sys

import rclpy
from rclpy.executors import SingleThreadedExecutor

from .bench_backends import run_backend_benchmark
from .bench_harness import (BenchError, CAMERA_HZ, camera_frames, CAPTION_RATE, isolate_dds,
                            machine_info, NODE_THREADS, start_empty_vqa, start_node,
                            status_mb, TARGET_P50_MS, wait_for, WARMUP_CALLS)
from .bench_latency import bench_captions, bench_vqa
from .bench_memory import bench_memory
from .bench_report import backend_summary, summary


def run_benchmark(calls: int = 300, duration: float = 10.0) -> dict:
    """Parts 1-3: both services, then two vla_nodes, then the memory probes."""
    if calls < 1 or duration <= 0:
        raise BenchError('--calls must be >= 1 and --duration > 0')
    isolate_dds()
    cached = camera_frames(1)[0]
    request_image = camera_frames(1, size=None)[0]
    report = {'machine': machine_info(),
              'settings': {'calls': calls, 'warmup_calls': WARMUP_CALLS,
                           'duration_s': duration, 'camera': '640x480 rgb8',
                           'camera_rate_hz': CAMERA_HZ, 'caption_rate': CAPTION_RATE,
                           'ros_domain_id': int(os.environ['ROS_DOMAIN_ID']),
                           'target_p50_ms': TARGET_P50_MS}}
    children = []
    rclpy.init()
    node = rclpy.create_node('bench_ros_client')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        # Both services start together (start-up is mostly `import torch`); the cached
        # frame may be as old as the run, hence max_frame_age 0 (no limit).
        vqa = start_node('vqa_service', {'threads': NODE_THREADS, 'max_frame_age': 0.0})
        empty = start_empty_vqa()
        children += [vqa, empty]
        report['vqa'] = bench_vqa(executor, node, vqa, empty, calls, cached, request_image)
        report['memory'] = {'vqa_service': status_mb(vqa.pid),
                            'empty_service': status_mb(empty.pid)}
        # Stopped before streaming: vqa_service would otherwise receive the 30 Hz camera too.
        for child in (vqa, empty):
            child.stop()
        # Two vla_nodes, started together (start-up is mostly `import torch`), measured one
        # after the other: with the default camera QoS (best_effort) and with reliable. A
        # 640x480 rgb8 frame (900 KB) is larger than Fast DDS's default shared-memory
        # segment, and best-effort readers then lose most frames; reliable ones repair them.
        params = {'threads': NODE_THREADS, 'caption_rate': CAPTION_RATE}
        vla = start_node('vla_node', params)
        vla_reliable = start_node('vla_node', {**params, 'qos_reliability': 'reliable'},
                                  remap=['__ns:=/reliable'])
        children += [vla, vla_reliable]
        # Both loaded (they subscribe after loading the model) before either is measured.
        wait_for(executor, vla_reliable, lambda: node.count_subscribers('/reliable/image') > 0,
                 'no camera subscription')
        report['captions'] = bench_captions(executor, node, vla, duration)
        vla.stop()
        report['captions_reliable'] = bench_captions(executor, node, vla_reliable, duration,
                                                     '/reliable')
        report['memory']['vla_node'] = report['captions_reliable'].pop('node_memory')
        report['memory']['vla_node_best_effort'] = report['captions'].pop('node_memory')
        vla_reliable.stop()
    finally:
        for child in children:
            child.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    # After the nodes are gone, so the probes' CPU use does not disturb the timings.
    reference, engine = bench_memory(max(calls, 20))
    report['memory']['reference'] = reference
    report['machine'].update(torch=engine['torch'], torch_threads=engine['torch_threads'])
    report['engine_in_process_p50_ms'] = engine['timing_p50']
    report['parameters'] = engine['parameters']
    return report


def main(calls: int = 300, duration: float = 10.0, as_json: bool = False,
         backend: str = None) -> int:
    """The full benchmark, or with `backend` (torch, onnxruntime, both) the backend one."""
    backends = {None: None, 'both': ('torch', 'onnxruntime')}.get(backend, (backend,))
    try:
        report = (run_benchmark(calls, duration) if backends is None else
                  run_backend_benchmark(backends, calls, duration))
    except BenchError as e:
        print(f'bench-ros: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    text = summary if backends is None else backend_summary
    print(json.dumps(report, indent=1) if as_json else text(report))
    return 0


if __name__ == '__main__':
    sys.exit(main())
