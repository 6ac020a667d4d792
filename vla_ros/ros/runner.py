"""The body of every node's `main()`: init, spin, clean exit.

Every vla_ros process spins a SingleThreadedExecutor. rclpy's MultiThreadedExecutor was
tried first and dropped: on these machines its timers intermittently stopped firing (a
50 Hz timer stepped twice a second) while it burned a core re-polling the wait set, the
behaviour reported in ros2/rclpy#1223. Callbacks here are short (a model call is a few
ms), and what must not wait for them, the velocity watchdog, runs on its own thread
(action_control.py).
"""
import threading

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

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


def init_or_explain(args, name: str) -> bool:
    """rclpy.init(args); on failure (e.g. an unreadable --params-file) log one line, False."""
    try:
        rclpy.init(args=args)
        return True
    except Exception as e:  # noqa: BLE001 - rcl raises RCLError, a private type
        rclpy.logging.get_logger(name).fatal(f'cannot start: {e}')
        return False


def run_node(node_class, args=None) -> int:
    """Create `node_class()` and spin it until Ctrl-C or shutdown; returns an exit code."""
    name = getattr(node_class, 'NODE_NAME', node_class.__name__)
    if not init_or_explain(args, name):
        return 1
    node = executor = None
    try:
        # Executor first: a Ctrl-C while it is being built escapes rclpy 9.1's half-made
        # Executor (no `_sigint_gc` yet); nodes log "ready" only after this point.
        executor = make_executor()
        node = node_class()
        executor.add_node(node)
        executor.spin()
    except STARTUP_ERRORS as e:
        rclpy.logging.get_logger(name).fatal(f'cannot start: {e}')
        return 1
    except (KeyboardInterrupt, Exception) as e:  # noqa: BLE001 - only shutdown is expected
        if not shutting_down(e):
            raise
    finally:
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
