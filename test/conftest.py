"""Shared pytest setup: an isolated ROS 2 graph per run, and rclpy fixtures."""

import os
from pathlib import Path
import random
import sys
import threading

import pytest

# Each run gets its own DDS domain, so parallel runs (CI beside a developer, two checkouts)
# never discover each other's nodes. Must happen before any rclpy.init(); a domain set by
# the caller wins. 1..101 stays inside the port range valid on every platform.
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 101)))
# Keep discovery on loopback: with the default (SUBNET), Fast DDS multicasts on eth0.
# Jazzy and later; the older ROS_LOCALHOST_ONLY is deprecated there, so it is not set.
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

# `python -m pytest` from the repo root puts the root first on sys.path, so `import vla_ros`
# would find the bare source tree instead of the colcon-installed copy that also holds the
# generated vla_ros.msg / vla_ros.srv. Keep the root, but last.
_ROOT = Path(__file__).resolve().parents[1]
_root_entries = [p for p in sys.path if Path(p or '.').resolve() == _ROOT]
if _root_entries:
    sys.path[:] = [p for p in sys.path if p not in _root_entries] + [str(_ROOT)]


@pytest.fixture
def rclpy_init():
    """Initialise rclpy's default context for one test; yields it and always shuts it down.

    Nodes made in the test (``rclpy.create_node`` or a ``Node`` subclass) use this context
    without being told. Skips the test where rclpy is not installed (pip-only installs).
    """
    rclpy = pytest.importorskip('rclpy')
    rclpy.init()
    try:
        yield rclpy.get_default_context()
    finally:
        # The module-level call also drops the default context, so the next init() makes a
        # fresh one (a Context can be initialised only once).
        rclpy.try_shutdown()


SPIN_EXIT_S = 60.0


def _join_spin_thread(thread):
    """Wait for a fixture's spin thread to leave spin_until_future_complete. Destroying
    nodes under an executor that is still spinning them is what rclpy does not support
    (ros2/rclpy#663), so a thread still in a callback after a minute fails the test
    rather than being raced."""
    thread.join(timeout=SPIN_EXIT_S)
    assert not thread.is_alive(), f'{thread.name} still spinning {SPIN_EXIT_S} s after done'


@pytest.fixture
def ros_executor(rclpy_init):
    """The nodes' executor (runner.make_executor) spinning in a background thread.

    Add nodes with ``ros_executor.add_node(node)``; at teardown the executor stops and every
    node still attached is destroyed.
    """
    from rclpy.task import Future

    from vla_ros.ros.runner import make_executor

    executor = make_executor(context=rclpy_init)
    # Spin until `done` rather than spin(): the thread ends before the executor shuts down.
    done = Future()
    thread = threading.Thread(target=executor.spin_until_future_complete, args=(done,),
                              name='ros_executor', daemon=True)
    thread.start()
    try:
        yield executor
    finally:
        nodes = executor.get_nodes()
        done.set_result(None)
        _join_spin_thread(thread)
        executor.shutdown()
        for node in nodes:
            node.destroy_node()


@pytest.fixture
def executor_pair(rclpy_init):
    """Two executors (runner.make_executor) spinning in their own threads: one for the nodes
    under test, one for the test's probe, so the probe hears messages when they arrive even
    while the nodes are busy. At teardown both stop and every node on them is destroyed."""
    from rclpy.task import Future

    from vla_ros.ros.runner import make_executor

    executors = [make_executor(context=rclpy_init), make_executor(context=rclpy_init)]
    done = Future()   # spin until done, then drain (as ros_executor does)
    threads = [threading.Thread(target=e.spin_until_future_complete, args=(done,),
                                daemon=True) for e in executors]
    for t in threads:
        t.start()
    try:
        yield executors
    finally:
        nodes = [n for e in executors for n in e.get_nodes()]
        done.set_result(None)
        for e, t in zip(executors, threads):
            _join_spin_thread(t)
            e.shutdown()
        for node in nodes:
            node.destroy_node()


@pytest.fixture(scope='session')
def model_dirs(tmp_path_factory):
    """Tiny random Hugging Face models of every supported family (tiny_hf_models.py), in
    their real on-disk formats: {family: directory}. Built once per run, offline."""
    pytest.importorskip('transformers')
    import tiny_hf_models
    root = tmp_path_factory.mktemp('hf_models')
    return {name: build(root / name) for name, build in tiny_hf_models.BUILDERS.items()}
