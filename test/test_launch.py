"""`ros2 launch vla_ros demo.launch.py` as a user runs it, on a real ROS 2 install.

Needs the `ros2` command line and the `launch`/`launch_ros` packages, which the PyPI
wheels this project's own setup uses do not provide: skipped there, with the reason.
With the simulated robot: /vqa answers, captions come, a one-shot `ros2 topic pub --once`
instruction is followed, and Ctrl-C (SIGINT to the whole process group, as a terminal
sends it) ends every process cleanly.
"""
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('launch', reason='launch is not installed (needs a ROS 2 install)')
pytest.importorskip('launch_ros', reason='launch_ros is not installed (needs a ROS 2 install)')
if shutil.which('ros2') is None:
    pytest.skip('the ros2 command line is not installed (needs a ROS 2 install)',
                allow_module_level=True)

from vla_ros.msg import ActionStatus, Caption  # noqa: E402
from vla_ros.srv import VQA  # noqa: E402

TIMEOUT_S = 60.0
INSTRUCTION = 'go to the green circle'     # the first arena of the default sim seed has one


def wait_for(condition, what, timeout=TIMEOUT_S):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f'timed out after {timeout} s waiting for {what}'
        time.sleep(0.05)


@pytest.fixture
def launched():
    """The demo with the sim and without the web page (no fixed port), in its own process
    group; yields the Popen; stops it with SIGINT to the group, as Ctrl-C does."""
    proc = subprocess.Popen(['ros2', 'launch', 'vla_ros', 'demo.launch.py', 'use_sim:=true',
                             'use_web:=false'], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = []
    proc.reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)
    proc.reader.start()
    proc.output = output
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=TIMEOUT_S)


def test_demo_launch_answers_follows_a_one_shot_instruction_and_stops_cleanly(
        launched, rclpy_init):
    node = rclpy.create_node('launch_probe')
    captions, statuses = [], []
    node.create_subscription(Caption, 'caption', captions.append, 10)
    node.create_subscription(ActionStatus, 'action_status', statuses.append, 10)
    client = node.create_client(VQA, 'vqa')
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            rclpy.spin_once(node, timeout_sec=0.1)
    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        assert client.wait_for_service(timeout_sec=TIMEOUT_S), ''.join(launched.output)
        wait_for(lambda: captions, 'a caption of the sim camera')
        done = threading.Event()
        future = client.call_async(VQA.Request(question='what shapes do you see?'))
        future.add_done_callback(lambda _: done.set())
        assert done.wait(TIMEOUT_S) and future.result().success, future.result()
        subprocess.run(['ros2', 'topic', 'pub', '--once', '/instruction', 'std_msgs/String',
                        f"{{data: '{INSTRUCTION}'}}"], check=True, timeout=TIMEOUT_S,
                       capture_output=True)
        wait_for(lambda: any(s.instruction == INSTRUCTION for s in statuses),
                 'the one-shot instruction to be followed')
    finally:
        stop.set()
        spinner.join(timeout=5.0)
        node.destroy_node()
    os.killpg(launched.pid, signal.SIGINT)
    launched.wait(timeout=TIMEOUT_S)
    launched.reader.join(timeout=TIMEOUT_S)     # the last lines, e.g. "process has died"
    text = ''.join(launched.output)
    assert launched.returncode == 0, text[-3000:]
    assert 'process has died' not in text and 'Traceback' not in text, text[-3000:]
