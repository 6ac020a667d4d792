"""`vla-ros load-test`: many concurrent `/vqa` clients against the real node processes.

Starts `vqa_service` and `vla_node` as their own processes (as `ros2 run` does), streams
a 640x480 camera at `camera_hz` into both, and lets `clients` service clients each make
`calls` calls back to back (all clients at once), after one answered call each (see
_first_call). Counts requests, responses (success or error) and calls that got nothing
within `call_timeout`; reports round-trip percentiles, and the frames and captions that
flowed meanwhile. Nothing is asserted here: the test
(test/test_ros_load.py) and the README read the report.

`floor=True` (`--floor`) puts the empty VQA service (bench_empty_service.py: answers at
once, no model) on `vqa` instead of `vqa_service`, with everything else the same: the
calls per second rclpy and the DDS middleware reach on this machine without any model
work, the ceiling for the real service.
"""
import json
import os
import threading
import time

import rclpy
from rclpy.node import Node
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from ..msg import Caption
from ..srv import VQA
from ..ros.params import CLIENT_QOS, qos_profile
from ..ros.runner import call_and_wait, make_executor
from .bench_harness import (BenchError, Camera, camera_frames, isolate_dds, percentiles_ms,
                            START_TIMEOUT_S, start_empty_vqa, start_node)

QUESTION = 'what color is the shape?'
BATCHES_KEY = 'vqa batches (by size)'      # in the vqa_service node's diagnostics


class LoadClient(Node):
    """The test's side: `clients` VQA clients, a camera publisher, a caption counter."""

    def __init__(self, clients: int):
        super().__init__('vla_load_test')
        self.vqa_clients = [self.create_client(VQA, 'vqa', qos_profile=CLIENT_QOS)
                            for _ in range(clients)]
        self.camera_pub = self.create_publisher(Image, 'image', qos_profile('reliable', 1))
        self.captions = []
        self.create_subscription(Caption, 'caption',
                                 lambda m: self.captions.append(time.monotonic()), 100)
        self.batches = (0.0, None)   # (when, the vqa node's batch sizes) from /diagnostics
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name.endswith('/vqa_service'):
                for kv in status.values:
                    if kv.key == BATCHES_KEY:
                        self.batches = (time.monotonic(), kv.value)


def _first_call(client, timeout: float = 5.0, attempts: int = 5) -> int:
    """One answered call, retried on timeout; returns the number of retries it took.

    A client's first request can go unanswered with Fast DDS: the server sends a reply only
    once it has matched the client's reply reader, and waits for that only as long as the
    reply writer's max_blocking_time (ros2/rmw_fastrtps#390, #467). The package's Fast DDS
    profile makes that 5 s; without it (100 ms) a busy 2-core machine can take longer. The
    burst measures clients that have been answered once; the report counts the retries.
    """
    for attempt in range(attempts):
        if call_and_wait(client, VQA.Request(question=QUESTION), timeout) is not None:
            return attempt
    raise BenchError(f'no answer to {attempts} first calls')


def _client_worker(client, calls, timeout, results, lock):
    """`calls` calls one after the other; each result is (round trip s or None, success)."""
    for _ in range(calls):
        start = time.perf_counter()
        response = call_and_wait(client, VQA.Request(question=QUESTION), timeout)
        if response is not None:
            entry = (time.perf_counter() - start, bool(response.success), response.error)
        else:
            entry = (None, False, 'no response')
        with lock:
            results.append(entry)


def run_load_test(clients: int = 50, calls: int = 20, camera_hz: float = 30.0,
                  call_timeout: float = 30.0, caption_rate: float = 30.0,
                  max_batch: int = 64, floor: bool = False) -> dict:
    """The report (see the module doc); `max_batch` is the vqa node's (1 = no batching);
    `floor`: the empty service instead of vqa_service."""
    if clients < 1 or calls < 1:
        raise BenchError('--clients and --calls must be >= 1')
    isolate_dds()
    rclpy.init()
    children = []
    executor = node = camera = None
    try:
        service = start_empty_vqa('vqa') if floor \
            else start_node('vqa_service', {'max_batch': max_batch})
        children = [service, start_node('vla_node', {'caption_rate': caption_rate})]
        node = LoadClient(clients)
        executor = make_executor()
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        camera = Camera(node.camera_pub, camera_frames(), camera_hz)
        camera.start()
        end = time.monotonic() + START_TIMEOUT_S
        while not (node.vqa_clients[0].service_is_ready() and node.captions):
            for child in children:
                child.check()
            if time.monotonic() > end:
                raise BenchError('the nodes did not start serving:\n'
                                 + '\n'.join(c.output() for c in children))
            time.sleep(0.1)
        for client in node.vqa_clients:   # every client discovered before the burst
            if not client.wait_for_service(timeout_sec=START_TIMEOUT_S):
                raise BenchError('a client never discovered the vqa service')
        first_call_retries = sum(_first_call(c) for c in node.vqa_clients)
        results, lock = [], threading.Lock()
        workers = [threading.Thread(target=_client_worker,
                                    args=(c, calls, call_timeout, results, lock), daemon=True)
                   for c in node.vqa_clients]
        frames_before, captions_before = len(camera.sent), len(node.captions)
        start = time.monotonic()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        window = time.monotonic() - start
        frames = len(camera.sent) - frames_before
        captions = len(node.captions) - captions_before
        for child in children:
            child.check()                      # and both processes are still alive
        batches = _batches_after(node, time.monotonic())
    finally:
        if camera is not None:
            camera.halt.set()
        if executor is not None:
            executor.shutdown(timeout_sec=5.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for child in children:
            child.stop()
    round_trips = [r[0] * 1000 for r in results if r[0] is not None]
    errors = sorted({r[2] for r in results if r[0] is not None and not r[1]})
    return {
        'service': 'empty (floor)' if floor else 'vqa_service',
        'clients': clients, 'calls_per_client': calls, 'requests': clients * calls,
        'responses': len(round_trips),
        'succeeded': sum(1 for r in results if r[1]),
        'unanswered': sum(1 for r in results if r[0] is None),
        'errors': errors,
        'first_call_retries': first_call_retries,
        'round_trip_ms': {**percentiles_ms(round_trips, 50, 95, 99),
                          'max': round(max(round_trips), 3) if round_trips else None},
        'window_s': round(window, 3),
        'calls_per_s': round(len(round_trips) / window, 1),
        'camera_frames_published_per_s': round(frames / window, 1),
        'captions_per_s': round(captions / window, 1),
        'max_batch': None if floor else max_batch,
        'vqa_batches_by_size': batches,
        'machine': {'cores': os.cpu_count()},
    }


def _batches_after(node, t: float, timeout: float = 3.0):
    """The vqa node's batch sizes from its first diagnostics after `t` (1 Hz), or None."""
    end = time.monotonic() + timeout
    while node.batches[0] < t and time.monotonic() < end:
        time.sleep(0.05)      # the spinner thread receives it
    return node.batches[1] if node.batches[0] >= t else None


def main(clients: int = 50, calls: int = 20, as_json: bool = False, max_batch: int = 64,
         floor: bool = False) -> int:
    try:
        report = run_load_test(clients, calls, max_batch=max_batch, floor=floor)
    except BenchError as e:
        print(f'vla-ros load-test: {e}')
        return 1
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        rt = report['round_trip_ms']
        print(f"{report['service']}: {report['clients']} clients x "
              f"{report['calls_per_client']} calls: "
              f"{report['requests']} requests, {report['responses']} responses "
              f"({report['succeeded']} succeeded, {report['unanswered']} unanswered) "
              f"in {report['window_s']} s; round trip p50 {rt['p50']} ms, p95 {rt['p95']} ms, "
              f"p99 {rt['p99']} ms, max {rt['max']} ms; meanwhile camera "
              f"{report['camera_frames_published_per_s']} frames/s, "
              f"{report['captions_per_s']} captions/s; vqa batches by size "
              f"{report['vqa_batches_by_size']}")
    return 0 if report['responses'] == report['requests'] else 1


if __name__ == '__main__':
    import argparse
    parser = argparse.ArgumentParser(prog='python -m vla_ros.ros_tools.load_test')
    parser.add_argument('--clients', type=int, default=50)
    parser.add_argument('--calls', type=int, default=20)
    parser.add_argument('--json', action='store_true')
    parser.add_argument('--max-batch', type=int, default=64)
    parser.add_argument('--floor', action='store_true')
    arguments = parser.parse_args()
    raise SystemExit(main(arguments.clients, arguments.calls, arguments.json,
                          arguments.max_batch, arguments.floor))
