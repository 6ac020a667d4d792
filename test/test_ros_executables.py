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
        (['managed_vla_node', '-p', f'model:={bad_model}'], f'{bad_model}/config.json'),
        (['managed_vqa_service', '-p', 'backend:=tensorflow'], 'tensorflow'),
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


# Each executable and the line it logs once it is ready (web: any free port, so a demo
# already listening on 8080 cannot fail this test).
READY = {
    'vqa_service': ([], 'serving'),
    'vla_node': ([], 'listening on'),
    'managed_vla_node': ([], 'listening on'),
    'managed_vqa_service': ([], 'serving'),
    'image_source': ([], 'publishing'),
    'sim': ([], 'simulating'),
    'web': (['-p', 'port:=0', '-p', 'attention_maps:=false'], 'operator page on'),
}


def start_ready(name):
    """The node `name` as `ros2 run` starts it, once it has logged that it is ready."""
    args, ready = READY[name]
    proc = subprocess.Popen([node_executable(name), '--ros-args'] + args,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + TIMEOUT_S
    line = ''
    while ready not in line:
        if time.monotonic() > end or proc.poll() is not None:
            proc.kill()
            pytest.fail(f'{name} did not start: {line}{proc.stderr.read()}')
        line = proc.stderr.readline()
    return proc


def stop(proc, sig, repeat=False):
    """Send `sig` (with `repeat`, again every 20 ms until the process has exited, so later
    ones land in its shutdown path); returns (stdout, stderr)."""
    try:
        proc.send_signal(sig)
        end = time.monotonic() + TIMEOUT_S
        while repeat and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.02)       # the pace of the signals, not a synchronisation
            if proc.poll() is None:
                proc.send_signal(sig)
        return proc.communicate(timeout=TIMEOUT_S)
    finally:
        proc.kill()


# `ros2 launch` without a terminal forwards SIGINT on top of the process group's; each
# extra one used to raise KeyboardInterrupt in the shutdown path (a traceback, exit -2).
# SIGTERM is launch's next step when SIGINT is not enough.
@pytest.mark.parametrize('sig, repeat', [(signal.SIGINT, False), (signal.SIGINT, True),
                                         (signal.SIGTERM, False)],
                         ids=['sigint', 'sigint-repeated', 'sigterm'])
def test_every_node_stops_cleanly_however_many_signals_arrive(sig, repeat):
    procs = {}
    try:
        for name in READY:
            procs[name] = start_ready(name)
    finally:   # every process is stopped (or killed) before anything is asserted
        results = {name: (proc, stop(proc, sig, repeat)) for name, proc in procs.items()}
    for name, (proc, (out, err)) in results.items():
        assert proc.returncode == 0, f'{name} exited {proc.returncode}: {err[-2000:]}'
        assert 'Traceback' not in err and 'KeyboardInterrupt' not in err, f'{name}: {err}'


def test_the_sim_stopped_by_ctrl_c_exits_cleanly_every_time():
    """`ros2 run vla_ros sim` + Ctrl-C segfaulted now and then in Publisher.destroy: the
    signal handler shut the context down while the sim's timers were still publishing."""
    for _ in range(8):
        proc = start_ready('sim')
        out, err = stop(proc, signal.SIGINT)
        assert proc.returncode == 0, f'exit {proc.returncode}: {err[-2000:]}'
