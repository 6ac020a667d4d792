"""Load: 50 concurrent /vqa clients x 20 calls against the real node processes.

Every request gets a response (none lost), and camera frames and captions keep flowing
meanwhile. Latency is reported (printed), not asserted: figures come from the command
`vla-ros load-test`, which this test runs.
"""
import json
import subprocess
import sys

import pytest

pytest.importorskip('rclpy')


def test_fifty_clients_every_request_answered_while_captions_keep_coming():
    # The child inherits this run's ROS_DOMAIN_ID (conftest), so it is isolated too.
    run = subprocess.run([sys.executable, '-m', 'vla_ros.cli', 'load-test', '--json',
                          '--clients', '50', '--calls', '20'],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(run.stdout)
    print(f'\nload: {report}')
    assert report['requests'] == 1000
    assert report['responses'] == report['requests'] and report['unanswered'] == 0
    assert report['succeeded'] == report['requests'], report['errors']
    assert report['camera_frames_published_per_s'] > 10
    assert report['captions_per_s'] > 1


def test_the_floor_runs_the_same_load_against_a_service_without_a_model():
    run = subprocess.run([sys.executable, '-m', 'vla_ros.cli', 'load-test', '--json', '--floor',
                          '--clients', '4', '--calls', '3'],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert report['service'] == 'empty (floor)' and report['max_batch'] is None
    assert report['responses'] == report['requests'] == 12
    assert report['succeeded'] == 12 and report['vqa_batches_by_size'] is None
