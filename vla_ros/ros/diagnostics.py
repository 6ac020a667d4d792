"""`/diagnostics` (diagnostic_msgs/DiagnosticArray) from every vla_ros node, once a second.

Each node owns a `NodeDiagnostics` and feeds it events (a frame used, a request served,
an error); a `report` callback of the node adds its own key/values and may raise the
level. The numbers are what an operator asks first: is the camera arriving, how fast
and how late are the results, are requests failing. Levels: WARN when frames are
missing or stale, ERROR when most recent requests fail. `rqt_runtime_monitor` and
Foxglove's diagnostics panel show them; `ros2 topic echo /diagnostics` works too.
"""
import threading
import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
PERIOD_S = 1.0
WINDOW_S = 10.0              # rates and error ratios over this many recent seconds
LATENCY_SAMPLES = 200        # percentiles over this many recent results
ERROR_RATIO = 0.5            # ERROR when more than this share of recent requests failed
MIN_REQUESTS = 5             # ... and at least this many came in


class RecentEvents:
    """Timestamps of recent events: a rate over WINDOW_S and a total."""

    def __init__(self):
        self._times = deque()
        self.total = 0

    def add(self, now: float):
        self._times.append(now)
        self.total += 1

    def count(self, now: float) -> int:
        while self._times and self._times[0] < now - WINDOW_S:
            self._times.popleft()
        return len(self._times)

    def rate(self, now: float) -> float:
        return self.count(now) / WINDOW_S


class NodeDiagnostics:
    """Counters, latencies and the periodic DiagnosticArray of one node.

    `report(values: dict) -> (level, message)` is called at publish time: the node adds
    its key/values to `values` and returns its own level and message (OK, '' if fine).
    """

    def __init__(self, node, report):
        self.node, self.report = node, report
        self._lock = threading.Lock()
        self.events = {}                                 # name -> RecentEvents
        self.latencies = {}                              # name -> deque of ms
        self.pub = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.timer = node.create_timer(PERIOD_S, self.publish)

    def count(self, name: str):
        with self._lock:
            self.events.setdefault(name, RecentEvents()).add(time.monotonic())

    def latency(self, name: str, ms: float):
        with self._lock:
            self.latencies.setdefault(name, deque(maxlen=LATENCY_SAMPLES)).append(ms)

    def request(self, served: str, failed: str, latency: str, ms: float, ok: bool):
        """A request answered: counted under `served`, and under `failed` if it failed,
        else its latency under `latency` (request_status reads the first two)."""
        self.count(served)
        if ok:
            self.latency(latency, ms)
        else:
            self.count(failed)

    def recent(self, name: str) -> int:
        with self._lock:
            events = self.events.get(name)
            return events.count(time.monotonic()) if events else 0

    def status(self) -> DiagnosticStatus:
        now = time.monotonic()
        values = {}
        with self._lock:
            for name, events in sorted(self.events.items()):
                values[f'{name} (total)'] = events.total
                values[f'{name} per s'] = f'{events.rate(now):.2f}'
            for name, samples in sorted(self.latencies.items()):
                if samples:
                    p50, p95 = np.percentile(np.asarray(samples), (50, 95))
                    values[f'{name} p50 ms'] = f'{p50:.1f}'
                    values[f'{name} p95 ms'] = f'{p95:.1f}'
        level, message = self.report(values)
        return DiagnosticStatus(
            level=level, name=f'vla_ros: {self.node.get_fully_qualified_name()}',
            message=message or 'OK', hardware_id='vla_ros',
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])

    def publish(self):
        try:
            array = DiagnosticArray(status=[self.status()])
            array.header.stamp = self.node.get_clock().now().to_msg()
            self.pub.publish(array)
        except Exception as e:  # noqa: BLE001 - diagnostics must never take a node down
            self.node.get_logger().error(f'diagnostics: {type(e).__name__}: {e}',
                                         throttle_duration_sec=10.0)


def frame_status(camera, values: dict):
    """(level, message) about a CameraInput's frames, and its counters into `values`."""
    stats = camera.cache.stats()
    values.update({f'frames {k}': v for k, v in stats.items()})
    frame, reason = camera.usable_frame()
    latest = camera.cache.latest()
    if latest is not None:
        values['latest frame age s'] = f'{latest.age():.2f}'
        values['latest frame_id'] = latest.header.frame_id
    if frame is None:
        return WARN, reason
    return OK, ''


def request_status(diagnostics: NodeDiagnostics, served: str, failed: str):
    """ERROR when most recent requests failed (at least MIN_REQUESTS of them)."""
    n, bad = diagnostics.recent(served), diagnostics.recent(failed)
    if n >= MIN_REQUESTS and bad > ERROR_RATIO * n:
        return ERROR, f'{bad} of the last {n} requests failed'
    return OK, ''


def worst(*statuses):
    """The highest level of several (level, message) pairs, with their messages joined."""
    level = max(s[0] for s in statuses)
    return level, '; '.join(m for lvl, m in statuses if m and lvl == level)
