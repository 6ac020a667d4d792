"""The body of every node's `main()`: init, spin, clean exit.

Every vla_ros process spins a SingleThreadedExecutor. rclpy's MultiThreadedExecutor was
tried first and dropped: on these machines its timers intermittently stopped firing (a
50 Hz timer stepped twice a second) while it burned a core re-polling the wait set, the
behaviour reported in ros2/rclpy#1223. Callbacks here are short (a model call is a few
ms), and what must not wait for them, the velocity watchdog, runs on its own thread
(action_control.py).
"""
import signal
import threading
import time

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from ..errors import CheckpointError
from .frame_sources import SourceError

# Errors a user can fix (a file, a config value): one log line and exit code 1, no traceback.
STARTUP_ERRORS = (CheckpointError, ParameterException, SourceError)


def make_executor(context=None) -> SingleThreadedExecutor:
    """The executor every vla_ros process (and test rig) spins; see the module doc."""
    return SingleThreadedExecutor(context=context)


def call_and_wait(client, request, timeout: float):
    """`client`'s response to `request`, or None when none came within `timeout` seconds
    (the pending request is then dropped). Blocks this thread: the client's node must be
    spun by an executor in another one (an HTTP handler, a load-test worker)."""
    done = threading.Event()
    future = client.call_async(request)
    future.add_done_callback(lambda _: done.set())
    if done.wait(timeout):
        return future.result()
    client.remove_pending_request(future)
    return None


def shutting_down(error: Exception) -> bool:
    """True for the errors rclpy raises from spin() when Ctrl-C shut the context down
    between two waits (e.g. RCLError "failed to initialize wait set: the given context
    is not valid"): an orderly exit, not a failure."""
    return isinstance(error, (KeyboardInterrupt, ExternalShutdownException)) or not rclpy.ok()


class StopSignals:
    """SIGINT and SIGTERM as a request to stop, not an exception.

    The first signal sets `requested`; the process then leaves its spin loop, destroys its
    nodes and only then shuts the context down. Later signals are ignored: a launch without
    a terminal forwards SIGINT on top of the process group's, and a second KeyboardInterrupt
    raised inside a destroy_node() or an HTTP server's shutdown() printed a traceback and
    ended the process with -2. rclpy's own handler is off (see init_or_explain): it shuts
    the context down from the signal, while publishers may still be in use, and raises
    KeyboardInterrupt wherever the main thread happens to be.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = threading.Event()
        for s in self.SIGNALS:
            signal.signal(s, self._on_signal)

    def _on_signal(self, signum, frame):
        self.requested.set()

    def ignore_from_now_on(self) -> None:
        """Teardown: ignore the signals for the rest of the process. (Not the default
        action: Python restores that while the interpreter finalises, and one more SIGINT
        then would end the process with -2 after a clean shutdown.)"""
        self.requested.set()
        for s in self.SIGNALS:
            signal.signal(s, signal.SIG_IGN)


# How often an idle spin loop looks at StopSignals: the signal's Python handler runs only
# when the main thread leaves rcl's wait, so this bounds how long Ctrl-C takes to act.
STOP_POLL_S = 0.1


def spin_until_stopped(executor, stop: StopSignals, duration: float = 0.0) -> None:
    """Spin `executor` until a stop signal, the context's shutdown or `duration` s (0 = no
    limit)."""
    end = time.monotonic() + duration if duration else None
    while not stop.requested.is_set() and executor.context.ok():
        if end is not None and time.monotonic() >= end:
            return
        executor.spin_once(timeout_sec=STOP_POLL_S)


def init_or_explain(args, name: str) -> bool:
    """rclpy.init(args) without rclpy's signal handlers (StopSignals takes their place);
    on failure (e.g. an unreadable --params-file) log one line and return False."""
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        return True
    except Exception as e:  # noqa: BLE001 - rcl raises RCLError, a private type
        rclpy.logging.get_logger(name).fatal(f'cannot start: {e}')
        return False


def tear_down(stop: StopSignals, executor, nodes) -> None:
    """The one teardown order: ignore further signals, stop the executor, destroy the
    nodes (publishers, threads, servers), then shut the context down."""
    stop.ignore_from_now_on()
    if executor is not None:
        executor.shutdown()
    for node in nodes:
        node.destroy_node()
    rclpy.try_shutdown()


def run_node(node_class, args=None) -> int:
    """Create `node_class()` and spin it until Ctrl-C, SIGTERM or shutdown; exit code.

    Teardown runs in this order whatever stopped the node: executor, node (its publishers,
    threads and servers), then the context. A constructor that raised half-way leaves no
    node to destroy here; rclpy.try_shutdown() then frees what it had made.
    """
    name = getattr(node_class, 'NODE_NAME', node_class.__name__)
    stop = StopSignals()
    if not init_or_explain(args, name):
        return 1
    node = executor = None
    try:
        executor = make_executor()
        node = node_class()
        executor.add_node(node)
        spin_until_stopped(executor, stop)
    except STARTUP_ERRORS as e:
        rclpy.logging.get_logger(name).fatal(f'cannot start: {e}')
        return 1
    except Exception as e:  # noqa: BLE001 - only shutdown is expected
        if not shutting_down(e):
            raise
    finally:
        tear_down(stop, executor, [node] if node is not None else [])
    return 0
