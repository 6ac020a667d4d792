"""The programs a user runs: `vla-ros demo` and the `ros2 run vla_ros <node>` executables."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip('rclpy')

TIMEOUT_S = 60


def node_executable(name):
    from ament_index_python.packages import get_package_prefix, PackageNotFoundError
    try:
        return os.path.join(get_package_prefix('vla_ros'), 'lib', 'vla_ros', name)
    except PackageNotFoundError:
        pytest.skip('vla_ros is not in AMENT_PREFIX_PATH (source scripts/env.sh)')


def vla_ros_command():
    exe = shutil.which('vla-ros')
    return [exe] if exe else [sys.executable, '-m', 'vla_ros.cli']


def test_demo_prints_captions_and_answers_then_exits_cleanly():
    # The child inherits this run's ROS_DOMAIN_ID (conftest), so it is isolated too.
    run = subprocess.run(vla_ros_command() + ['demo', '--duration', '5'], capture_output=True,
                         text=True, timeout=TIMEOUT_S)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert any(line.startswith('[caption]') for line in lines), run.stdout
    assert any(line.startswith(('[answer]', '[vqa]')) for line in lines), run.stdout
    assert 'vla_ros demo:' in lines[-1] and 'captions' in lines[-1]
    assert 'Traceback' not in run.stderr and 'never retrieved' not in run.stderr, run.stderr


def test_executables_refuse_bad_setup_with_one_clear_line(tmp_path):
    bad_model = tmp_path / 'model'
    bad_model.mkdir()
    cases = [
        (['vla_node', '-p', f'checkpoint:={bad_model}'], f'{bad_model}/config.json'),
        (['vqa_service', '-p', 'qos_depth:=0'], 'qos_depth out of range'),
        (['image_source', '-p', 'source:=video', '-p', 'path:=/nonexistent.mp4'],
         "video '/nonexistent.mp4': no such file"),
    ]
    procs = [(subprocess.Popen([node_executable(args[0]), '--ros-args'] + args[1:],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), words)
             for args, words in cases]
    for proc, words in procs:
        out, err = proc.communicate(timeout=TIMEOUT_S)
        assert proc.returncode == 1, err
        assert words in err and 'cannot start' in err, err
        assert 'Traceback' not in err and len(err.strip().splitlines()) == 1, err


def test_node_stops_cleanly_on_ctrl_c():
    proc = subprocess.Popen([node_executable('vqa_service')], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + TIMEOUT_S
        line = ''
        while 'serving' not in line:   # the node logs this once it is ready
            assert time.monotonic() < end and proc.poll() is None, 'node did not start'
            line = proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert 'Traceback' not in err, err
