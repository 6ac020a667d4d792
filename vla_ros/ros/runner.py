"""The body of every node's `main()`: init, spin on a multi-threaded executor, clean exit."""
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

from ..errors import CheckpointError
from .frame_sources import SourceError

# Errors a user can fix (a file, a config value): one log line and exit code 1, no traceback.
STARTUP_ERRORS = (CheckpointError, ParameterException, SourceError)

# Camera callbacks, inference and services run side by side; inference holds one thread.
EXECUTOR_THREADS = 4


def stop_executor(executor, timeout_sec: float = 5.0) -> None:
    """Shut `executor` down once the callbacks it has already dispatched have run.

    Call it after spin has returned. Works around rclpy 9.1 (Kilted): shutdown() destroys
    the executor's guard condition while handlers are still queued in the worker pool;
    they then fail with InvalidHandle and print "The following exception was never
    retrieved" at exit. Draining the pool first (a private attribute, hence getattr)
    avoids that; the SingleThreadedExecutor has no pool and needs nothing.
    """
    pool = getattr(executor, '_executor', None)
    if pool is not None:
        pool.shutdown(wait=True)
    executor.shutdown(timeout_sec=timeout_sec)


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
        executor = MultiThreadedExecutor(num_threads=EXECUTOR_THREADS)
        node = node_class()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except STARTUP_ERRORS as e:
        rclpy.logging.get_logger(name).fatal(f'cannot start: {e}')
        return 1
    finally:
        if executor is not None:
            stop_executor(executor)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
