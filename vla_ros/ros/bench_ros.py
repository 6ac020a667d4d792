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
"""
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import rclpy
from rclpy.executors import (
    ExternalShutdownException, SingleThreadedExecutor)
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future

from ..msg import Caption
from ..srv import VQA
from .params import CLIENT_QOS

QUESTION = 'what color is the shape?'
WARMUP_CALLS = 30           # per series, before measuring: first calls pay one-off setup
CAMERA_HZ, CAMERA_SIZE = 30.0, (640, 480)
CAPTION_RATE = 30.0         # the camera's rate: the node captions as fast as it can
CAPTION_WARMUP_S = 1.0      # streaming before the caption window opens
CAPTION_GRACE_S = 0.5       # listening after it closes, for the last frames' captions
NODE_THREADS = 1            # torch threads in the nodes (their default)
START_TIMEOUT_S = 90.0      # node start-up (imports torch) on a loaded 2-core machine
CALL_TIMEOUT_S = 10.0       # a call that takes longer counts as unanswered
TARGET_P50_MS = 10.0        # the package's target for /vqa p50, end to end


class BenchError(RuntimeError):
    """The benchmark could not run (a node did not start, a service never answered)."""


# -- the empty service (the floor), run as its own process --------------------------------
class EmptyVQANode(Node):
    """`empty_vqa`: the VQA service type answering at once, on the same kind of executor
    as the real service (runner.py's single-threaded one), so the difference between the
    two round trips is the work the real node does."""

    def __init__(self):
        super().__init__('bench_empty_vqa')
        self.create_service(VQA, 'empty_vqa', self._on_request)

    def _on_request(self, request, response):
        response.success, response.answer = True, 'yes'
        return response


def empty_service_main(args=None) -> int:
    rclpy.init(args=args)
    node = EmptyVQANode()
    executor = SingleThreadedExecutor()   # = runner.make_executor (runner imports torch)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown(timeout_sec=5.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


# -- processes and /proc ------------------------------------------------------------------
# /proc/<pid>/status fields: resident now, peak, and what the resident pages are. Anonymous
# pages are the process's own; file pages (shared libraries) can be shared between
# processes; shmem is Fast DDS's shared-memory transport.
STATUS_FIELDS = {'VmRSS': 'rss_mb', 'VmHWM': 'hwm_mb', 'RssAnon': 'anon_mb',
                 'RssFile': 'file_mb', 'RssShmem': 'shmem_mb'}


def _status_mb(pid='self') -> dict:
    """STATUS_FIELDS of a process, in MB."""
    out = {}
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            key = line.split(':')[0]
            if key in STATUS_FIELDS:
                out[STATUS_FIELDS[key]] = round(int(line.split()[1]) / 1024, 1)
    return out


def _cpu_seconds(pid) -> float:
    """User + system CPU time a process has used so far."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _node_executable(name: str) -> str:
    from ament_index_python.packages import get_package_prefix, PackageNotFoundError
    try:
        return os.path.join(get_package_prefix('vla_ros'), 'lib', 'vla_ros', name)
    except PackageNotFoundError:
        raise BenchError('vla_ros is not in AMENT_PREFIX_PATH (source scripts/env.sh)')


class Child:
    """A node process; its output goes to a temporary file, shown if it fails."""

    def __init__(self, name: str, cmd: list):
        self.name = name
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def pid(self):
        return self.proc.pid

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors='replace')[-2000:]

    def check(self):
        if self.proc.poll() is not None:
            raise BenchError(f'{self.name} exited with {self.proc.returncode}:\n{self.output()}')

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_node(name: str, params: dict, remap=()) -> Child:
    cmd = [_node_executable(name), '--ros-args']
    for key, value in params.items():
        cmd += ['-p', f'{key}:={value}']
    for r in remap:
        cmd += ['-r', r]
    return Child(name, cmd)


# -- statistics ---------------------------------------------------------------------------
def percentiles_ms(samples, *percentiles) -> dict:
    a = np.asarray(samples, dtype=float)
    if a.size == 0:
        return {f'p{p}': None for p in percentiles}
    return {f'p{p}': round(float(np.percentile(a, p)), 3) for p in percentiles}


def _wait(executor, seconds: float):
    """Spin `executor` in this thread for `seconds` (a future that never completes)."""
    executor.spin_until_future_complete(Future(), timeout_sec=seconds)


def _wait_for(executor, child, condition, what: str):
    """Spin until `condition()`; BenchError when `child` dies or START_TIMEOUT_S passes."""
    end = time.monotonic() + START_TIMEOUT_S
    while not condition():
        child.check()
        if time.monotonic() > end:
            raise BenchError(f'{child.name}: {what} within {START_TIMEOUT_S:g} s:\n'
                             f'{child.output()}')
        _wait(executor, 0.1)


# -- 1. /vqa round trips --------------------------------------------------------------------
def _call(executor, client, request):
    """(round trip ms, response), or (None, None) when no response came in time."""
    start = time.perf_counter()
    future = client.call_async(request)
    executor.spin_until_future_complete(future, timeout_sec=CALL_TIMEOUT_S)
    elapsed = (time.perf_counter() - start) * 1000
    if not future.done():
        client.remove_pending_request(future)
        return None, None
    return elapsed, future.result()


def _series_report(rt, floor, server, requests, responses, succeeded) -> dict:
    rt_p, floor_p = percentiles_ms(rt, 50, 99), percentiles_ms(floor, 50, 99)
    paired = [a - b for a, b in zip(rt, floor)]
    report = {
        'round_trip_ms': rt_p,
        'floor_ms': floor_p,
        # time inside the node's service callback (conversion + model), from the response
        'server_ms': percentiles_ms(server, 50, 99),
        'over_floor_p50_ms': None, 'ratio_p50': None, 'meets_target_p50': None,
        'paired_difference_p50_ms': percentiles_ms(paired, 50)['p50'],
        'requests': requests, 'responses': responses, 'succeeded': succeeded,
    }
    if rt and floor:
        report['over_floor_p50_ms'] = round(rt_p['p50'] - floor_p['p50'], 3)
        report['ratio_p50'] = round(rt_p['p50'] / floor_p['p50'], 2)
        report['meets_target_p50'] = rt_p['p50'] <= TARGET_P50_MS
    return report


def bench_vqa(executor, node, vqa_child, empty_child, calls: int, frame, request_image):
    """Round trips of /vqa and of the empty service; the two are called alternately so
    that load changes on the machine (and DDS warm-up) affect both alike."""
    camera = node.create_publisher(
        type(frame), 'image',
        QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                   reliability=ReliabilityPolicy.RELIABLE))
    vqa = node.create_client(VQA, 'vqa', qos_profile=CLIENT_QOS)
    empty = node.create_client(VQA, 'empty_vqa', qos_profile=CLIENT_QOS)

    def answers_about_the_frame():
        # Its best-effort camera subscription hears only frames sent after discovery and
        # loses most 640x480 ones (see run_benchmark): publish until one gets through.
        if not vqa.service_is_ready():
            return False
        camera.publish(frame)
        _wait(executor, 0.2)
        return getattr(_call(executor, vqa, VQA.Request(question=QUESTION))[1], 'success', False)

    _wait_for(executor, vqa_child, answers_about_the_frame, 'no answer about a camera frame')
    _wait_for(executor, empty_child, empty.service_is_ready, 'no empty_vqa service')
    series = {'cached_frame': VQA.Request(question=QUESTION),
              'request_image_64': VQA.Request(question=QUESTION, image=request_image)}
    report = {}
    for name, request in series.items():
        rt, floor, server = [], [], []
        responses = succeeded = 0
        for i in range(WARMUP_CALLS + calls):
            floor_ms, floor_response = _call(executor, empty, request)
            rt_ms, response = _call(executor, vqa, request)
            if i < WARMUP_CALLS:
                continue
            if floor_response is not None:
                floor.append(floor_ms)
            if response is not None:
                responses += 1
                rt.append(rt_ms)
                server.append(response.latency_ms)
                succeeded += bool(response.success)
        report[name] = _series_report(rt, floor, server, calls, responses, succeeded)
    node.destroy_publisher(camera)
    return report


# -- 2. captions while a camera streams ------------------------------------------------------
def camera_frames(n: int = 8, size=CAMERA_SIZE) -> list:
    """n distinct rgb8 Image messages of scenes: 64x64 when `size` is None, else upscaled
    to `size` as image_source does."""
    import cv2
    from ..data.scenes import random_scene, render
    from .image_conversion import rgb_to_image
    rng = np.random.default_rng(0)
    images = [render(random_scene(rng, 3, varied_background=True)) for _ in range(n)]
    if size is not None:
        images = [cv2.resize(i, size, interpolation=cv2.INTER_LINEAR) for i in images]
    return [rgb_to_image(i) for i in images]


class Camera(threading.Thread):
    """Publishes `frames` at `rate` Hz, each with a unique wall-clock stamp, and remembers
    when (perf_counter) each stamp was published. Falls behind rather than bursts."""

    def __init__(self, publisher, frames, rate: float):
        super().__init__(name='bench_camera', daemon=True)
        self.publisher, self.frames, self.period = publisher, frames, 1.0 / rate
        self.sent = {}                  # (sec, nanosec) -> perf_counter at publish
        self.halt = threading.Event()

    def run(self):
        deadline = time.perf_counter()
        i = 0
        while not self.halt.is_set():
            msg = self.frames[i % len(self.frames)]
            i += 1
            now_ns = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 10**9)
            msg.header.frame_id = 'bench_camera'
            self.sent[divmod(now_ns, 10**9)] = time.perf_counter()
            self.publisher.publish(msg)
            deadline += self.period
            delay = deadline - time.perf_counter()
            if delay > 0:
                self.halt.wait(delay)
            else:
                deadline = time.perf_counter()


def bench_captions(executor, node, vla_child, duration: float, ns: str = '') -> dict:
    """Stream the camera into the vla_node whose topics are under namespace `ns`."""
    received = []                       # (perf_counter, stamp key, node's latency_ms)

    def on_caption(msg):
        s = msg.header.stamp
        received.append((time.perf_counter(), (s.sec, s.nanosec), msg.latency_ms))

    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                     reliability=ReliabilityPolicy.RELIABLE)   # params.OUTPUT_QOS
    sub = node.create_subscription(Caption, f'{ns}/caption', on_caption, qos)
    frames = camera_frames()
    # RELIABLE, depth 1, like image_source: heard by reliable and best-effort subscribers.
    pub = node.create_publisher(type(frames[0]), f'{ns}/image', QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE))
    # The node subscribes only after loading the model, so discovery means it is ready;
    # a first caption is not waited for (best-effort subscribers may never get a frame).
    _wait_for(executor, vla_child, lambda: node.count_subscribers(f'{ns}/image') > 0
              and node.count_publishers(f'{ns}/caption') > 0, 'no camera subscription')
    camera = Camera(pub, frames, CAMERA_HZ)
    camera.start()
    try:
        _wait(executor, CAPTION_WARMUP_S)
        cpu0, own0 = _cpu_seconds(vla_child.pid), time.process_time()
        t0 = time.perf_counter()
        _wait(executor, duration)
        t1 = time.perf_counter()
        cpu1, own1 = _cpu_seconds(vla_child.pid), time.process_time()
        memory = _status_mb(vla_child.pid)
        _wait(executor, CAPTION_GRACE_S)   # captions of the window's last frames
    finally:
        camera.halt.set()
        camera.join()
    node.destroy_subscription(sub)
    node.destroy_publisher(pub)
    window = t1 - t0
    # Frames are counted by when they were published, captions by when they arrived.
    in_window = {key for key, t in camera.sent.items() if t0 <= t <= t1}
    captioned = {key: (t, ms) for t, key, ms in received if key in in_window}
    latency = [(t - camera.sent[key]) * 1000 for key, (t, _) in captioned.items()]
    return {
        'window_s': round(window, 3),
        'camera_hz': round(len(in_window) / window, 2),
        'captions_per_s': round(sum(1 for t, _, _ in received if t0 <= t <= t1) / window, 2),
        'frames_published': len(in_window),
        'frames_captioned': len(captioned),
        'frames_skipped': len(in_window) - len(captioned),
        'latency_ms': percentiles_ms(latency, 50, 95),
        'node_inference_ms': percentiles_ms([ms for _, ms in captioned.values()], 50, 95),
        'captions_of_unknown_frames': sum(1 for _, key, _ in received
                                          if key not in camera.sent),
        'node_cpu_percent': round(100 * (cpu1 - cpu0) / window, 1),
        'bench_process_cpu_percent': round(100 * (own1 - own0) / window, 1),
        'node_memory': memory,
    }


# -- 3. reference processes for memory attribution ---------------------------------------
# _status_mb for the reference processes, which import nothing of ours before measuring
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


# -- the whole run --------------------------------------------------------------------------
def _machine() -> dict:
    cpu = platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f
                       if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return {'cpu': cpu, 'cores': os.cpu_count(), 'python': platform.python_version(),
            'rmw': os.environ.get('RMW_IMPLEMENTATION', '(default)'),
            'omp_num_threads': os.environ.get('OMP_NUM_THREADS', '(unset)'),
            'node_torch_threads': NODE_THREADS, 'node_executor': 'single-threaded',
            'dds_profile': os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE', '(none)')}


def isolate_dds():
    """Own DDS domain unless one is set (so a parallel run never answers our calls), and
    loopback-only discovery; node processes inherit both. Before rclpy.init()."""
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 101)))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')


def run_benchmark(calls: int = 300, duration: float = 10.0) -> dict:
    if calls < 1 or duration <= 0:
        raise BenchError('--calls must be >= 1 and --duration > 0')
    isolate_dds()
    cached = camera_frames(1)[0]
    request_image = camera_frames(1, size=None)[0]
    report = {'machine': _machine(),
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
        empty = Child('empty_vqa', [sys.executable, '-m', __name__, 'empty-service'])
        children += [vqa, empty]
        report['vqa'] = bench_vqa(executor, node, vqa, empty, calls, cached, request_image)
        report['memory'] = {'vqa_service': _status_mb(vqa.pid),
                            'empty_service': _status_mb(empty.pid)}
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
        _wait_for(executor, vla_reliable, lambda: node.count_subscribers('/reliable/image') > 0,
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


# -- 4. backends: torch vs ONNX Runtime in the real nodes ------------------------------------
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
                response = _call(executor, client, request)[1]
                if response is not None and response.success:
                    return time.perf_counter() - start, child
            _wait(executor, 0.01)
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
            ms, response = _call(executor, client, request)
            if i >= WARMUP_CALLS and response is not None and response.success:
                rt.append(ms)
                server.append(response.latency_ms)
        vqa_memory = _status_mb(child.pid)
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
    report = {'machine': _machine(),
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


def _backend_summary(r: dict) -> str:
    lines = [f"{r['machine']['cpu']} ({r['machine']['cores']} cores), "
             f"{r['machine']['node_torch_threads']} inference thread(s) per node",
             'backend        cold start s  /vqa p50  p99 ms   vqa_service RSS MB  '
             'captions/s  vla_node RSS MB  libtorch mapped']
    for name, b in r['backends'].items():
        rt = b['vqa']['round_trip_ms']
        lines.append(f"{name:14s}{b['cold_start_s']['median']:12.2f}{rt['p50']:10.2f}"
                     f"{rt['p99']:8.2f}{b['vqa_service_memory']['rss_mb']:18.1f}"
                     f"{b['captions_per_s']:14.2f}{b['vla_node_memory']['rss_mb']:16.1f}   "
                     f"{b['libtorch_mapped']}")
    return '\n'.join(lines)


def _summary(r: dict) -> str:
    lines = [f"{r['machine']['cpu']} ({r['machine']['cores']} cores), torch "
             f"{r['machine']['torch']}, {r['machine']['node_torch_threads']} torch thread(s)",
             f"/vqa round trip, {r['settings']['calls']} calls each (ms):"
             "            p50      p99   floor p50  floor p99  server p50"]
    for name, s in r['vqa'].items():
        rt = s['round_trip_ms']
        fl = s['floor_ms']
        lines.append(f"  {name:28s}{rt['p50']:9.2f}{rt['p99']:9.2f}{fl['p50']:11.2f}"
                     f"{fl['p99']:11.2f}{s['server_ms']['p50']:11.2f}   ({s['responses']}/"
                     f"{s['requests']} answered, x{s['ratio_p50']} floor)")
    for key, qos in (('captions', 'default best_effort'), ('captions_reliable', 'reliable')):
        c = r[key]
        lines.append(f"captions, camera QoS {qos}: {c['captions_per_s']}/s with the camera at "
                     f"{c['camera_hz']} Hz; latency p50 {c['latency_ms']['p50']} ms, p95 "
                     f"{c['latency_ms']['p95']} ms; {c['frames_captioned']} of "
                     f"{c['frames_published']} frames captioned")
    m = r['memory']
    ref = m['reference']
    lines.append(f"RSS MB: vqa_service {m['vqa_service']['rss_mb']}, vla_node "
                 f"{m['vla_node']['rss_mb']}, empty service {m['empty_service']['rss_mb']}; "
                 f"python {ref['python']['rss_mb']}, import rclpy "
                 f"{ref['import_rclpy']['rss_mb']}, import torch {ref['import_torch']['rss_mb']}"
                 f", weights file {ref['weights_file_mb']}")
    lines.append('steps of one process building up a node (MB): ' + ', '.join(
        f'{k} {v}' for k, v in ref['engine_process_step_mb'].items()))
    return '\n'.join(lines)


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
    summary = _summary if backends is None else _backend_summary
    print(json.dumps(report, indent=1) if as_json else summary(report))
    return 0


if __name__ == '__main__':
    if sys.argv[1:2] == ['empty-service']:
        sys.exit(empty_service_main(sys.argv[2:]))
    sys.exit(main())
