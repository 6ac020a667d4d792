"""`vla-ros bench-ros --backend torch|onnxruntime|both`: the inference backends compared
in the real nodes (cold start, /vqa round trips, captions/s, node memory, libtorch mapped)."""
import os
import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor

from ..ros.params import CLIENT_QOS
from ..srv import VQA
from .bench_harness import (BenchError, CAMERA_HZ, camera_frames, CAPTION_RATE, isolate_dds,
                            machine_info, NODE_THREADS, percentiles_ms, QUESTION, spin_for,
                            start_node, START_TIMEOUT_S, status_mb, timed_call, WARMUP_CALLS)
from .bench_latency import bench_captions

COLD_STARTS = 3             # cold starts per backend; the median is reported


def _mapped(pid, word: str) -> bool:
    """True when a file whose path contains `word` is mapped into process `pid`."""
    with open(f'/proc/{pid}/maps') as f:
        return any(word in line for line in f)


def _cold_start(executor, node, backend: str, request) -> tuple:
    """Start vqa_service with `backend`; seconds from process start to the first successful
    /vqa answer about `request`'s image. Returns (seconds, the running Child)."""
    client = node.create_client(VQA, 'vqa', qos_profile=CLIENT_QOS)
    start = time.perf_counter()
    child = start_node('vqa_service', {'threads': NODE_THREADS, 'backend': backend})
    try:
        end = time.monotonic() + START_TIMEOUT_S
        while True:
            child.check()
            if time.monotonic() > end:
                raise BenchError(f'vqa_service ({backend}): no answer within '
                                 f'{START_TIMEOUT_S:g} s:\n{child.output()}')
            if client.wait_for_service(timeout_sec=0.01):
                response = timed_call(executor, client, request)[1]
                if response is not None and response.success:
                    return time.perf_counter() - start, child
            spin_for(executor, 0.01)
    except BaseException:
        child.stop()
        raise
    finally:
        node.destroy_client(client)


def bench_backend(executor, node, backend: str, calls: int, duration: float, request) -> dict:
    """One backend in the real nodes: cold start (median of COLD_STARTS), /vqa round trips
    and node memory while serving them, then captions from the 30 Hz camera (reliable
    subscription) and node memory while serving those."""
    starts = []
    for _ in range(COLD_STARTS):
        seconds, child = _cold_start(executor, node, backend, request)
        starts.append(seconds)
        if len(starts) < COLD_STARTS:
            child.stop()
    try:
        client = node.create_client(VQA, 'vqa', qos_profile=CLIENT_QOS)
        rt, server = [], []
        for i in range(WARMUP_CALLS + calls):
            ms, response = timed_call(executor, client, request)
            if i >= WARMUP_CALLS and response is not None and response.success:
                rt.append(ms)
                server.append(response.latency_ms)
        vqa_memory = status_mb(child.pid)
        torch_in_vqa = _mapped(child.pid, 'libtorch')
        node.destroy_client(client)
    finally:
        child.stop()
    vla = start_node('vla_node', {'threads': NODE_THREADS, 'caption_rate': CAPTION_RATE,
                                  'backend': backend, 'qos_reliability': 'reliable'},
                     remap=[f'__ns:=/{backend}'])
    try:
        captions = bench_captions(executor, node, vla, duration, f'/{backend}')
        torch_in_vla = _mapped(vla.pid, 'libtorch')
    finally:
        vla.stop()
    return {
        'cold_start_s': {'median': round(float(np.median(starts)), 3),
                         'runs': [round(x, 3) for x in starts]},
        'vqa': {'round_trip_ms': percentiles_ms(rt, 50, 99),
                'server_ms': percentiles_ms(server, 50, 99),
                'answered': len(rt), 'requests': calls},
        'vqa_service_memory': vqa_memory,
        'captions_per_s': captions['captions_per_s'],
        'caption_node_inference_ms': captions['node_inference_ms'],
        'vla_node_memory': captions['node_memory'],
        'libtorch_mapped': {'vqa_service': torch_in_vqa, 'vla_node': torch_in_vla},
    }


def run_backend_benchmark(backends, calls: int = 300, duration: float = 10.0) -> dict:
    """bench_backend for each backend, one after the other, in one run."""
    if calls < 1 or duration <= 0:
        raise BenchError('--calls must be >= 1 and --duration > 0')
    isolate_dds()
    request = VQA.Request(question=QUESTION, image=camera_frames(1, size=None)[0])
    report = {'machine': machine_info(),
              'settings': {'calls': calls, 'warmup_calls': WARMUP_CALLS, 'duration_s': duration,
                           'cold_starts': COLD_STARTS, 'request_image': '64x64 rgb8',
                           'camera': '640x480 rgb8, reliable', 'camera_rate_hz': CAMERA_HZ,
                           'ros_domain_id': int(os.environ['ROS_DOMAIN_ID'])},
              'backends': {}}
    rclpy.init()
    node = rclpy.create_node('bench_ros_client')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        for backend in backends:
            report['backends'][backend] = bench_backend(executor, node, backend, calls,
                                                        duration, request)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return report
