"""The harness of `vla-ros bench-ros` and `load-test`: settings, node processes, /proc.

Nodes run as separate processes started the way `ros2 run` starts them
(lib/vla_ros/<node> --ros-args ...); the measuring process spins one client node. Here:
the shared settings, starting and stopping node processes (Child), their memory and CPU
time from /proc, spinning until a condition holds, timed service calls, percentiles, and
the synthetic 640x480 camera that streams scenes into the nodes.
"""
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
from rclpy.task import Future

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


# -- processes and /proc ------------------------------------------------------------------
# /proc/<pid>/status fields: resident now, peak, and what the resident pages are. Anonymous
# pages are the process's own; file pages (shared libraries) can be shared between
# processes; shmem is Fast DDS's shared-memory transport.
STATUS_FIELDS = {'VmRSS': 'rss_mb', 'VmHWM': 'hwm_mb', 'RssAnon': 'anon_mb',
                 'RssFile': 'file_mb', 'RssShmem': 'shmem_mb'}


def status_mb(pid='self') -> dict:
    """STATUS_FIELDS of a process, in MB."""
    out = {}
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            key = line.split(':')[0]
            if key in STATUS_FIELDS:
                out[STATUS_FIELDS[key]] = round(int(line.split()[1]) / 1024, 1)
    return out


def cpu_seconds(pid) -> float:
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


def start_empty_vqa(service: str = 'empty_vqa') -> Child:
    """The VQA service that answers at once (bench_empty_service.py, no model) as its own
    process, serving `service`."""
    cmd = [sys.executable, '-m', f'{__package__}.bench_empty_service']
    if service != 'empty_vqa':
        cmd += ['--ros-args', '-r', f'empty_vqa:={service}']
    return Child('empty_vqa', cmd)


# -- spinning, calls and statistics ---------------------------------------------------------
def percentiles_ms(samples, *percentiles) -> dict:
    a = np.asarray(samples, dtype=float)
    if a.size == 0:
        return {f'p{p}': None for p in percentiles}
    return {f'p{p}': round(float(np.percentile(a, p)), 3) for p in percentiles}


def spin_for(executor, seconds: float):
    """Spin `executor` in this thread for `seconds` (a future that never completes)."""
    executor.spin_until_future_complete(Future(), timeout_sec=seconds)


def wait_for(executor, child, condition, what: str):
    """Spin until `condition()`; BenchError when `child` dies or START_TIMEOUT_S passes."""
    end = time.monotonic() + START_TIMEOUT_S
    while not condition():
        child.check()
        if time.monotonic() > end:
            raise BenchError(f'{child.name}: {what} within {START_TIMEOUT_S:g} s:\n'
                             f'{child.output()}')
        spin_for(executor, 0.1)


def timed_call(executor, client, request):
    """(round trip ms, response), or (None, None) when no response came in time."""
    start = time.perf_counter()
    future = client.call_async(request)
    executor.spin_until_future_complete(future, timeout_sec=CALL_TIMEOUT_S)
    elapsed = (time.perf_counter() - start) * 1000
    if not future.done():
        client.remove_pending_request(future)
        return None, None
    return elapsed, future.result()


# -- the camera ------------------------------------------------------------------------------
def camera_frames(n: int = 8, size=CAMERA_SIZE) -> list:
    """n distinct rgb8 Image messages of scenes: 64x64 when `size` is None, else upscaled
    to `size` as image_source does."""
    import cv2
    from ..data.scenes import random_scene, render
    from ..ros.image_conversion import rgb_to_image
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


# -- the machine and the DDS domain ----------------------------------------------------------
def machine_info() -> dict:
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
