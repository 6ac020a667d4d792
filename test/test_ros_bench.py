"""`vla-ros bench-ros` runs end to end and reports sane numbers (never how fast they are)."""
import json
import math
import shutil
import subprocess
import sys

import pytest

pytest.importorskip('rclpy')

TIMEOUT_S = 180   # an upper bound against hangs on a loaded machine, not a timing check


# Differences of two measurements: below 0 when noise wins (on a busy machine the empty
# service's round trip can be the slower one, and RSS can shrink between two stages).
DIFFERENCES = {'over_floor_p50_ms', 'paired_difference_p50_ms', 'engine_process_step_mb'}


def numbers(tree, skip=frozenset()):
    """Every number in a nested dict/list (bools excluded), less the keys in `skip`."""
    if isinstance(tree, dict):
        tree = [v for k, v in tree.items() if k not in skip]
    if isinstance(tree, list):
        return [x for item in tree for x in numbers(item, skip)]
    return [tree] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


def test_bench_ros_reports_every_measurement():
    exe = shutil.which('vla-ros')
    cmd = ([exe] if exe else [sys.executable, '-m', 'vla_ros.cli'])
    # The children inherit this run's ROS_DOMAIN_ID (conftest), so they are isolated too.
    run = subprocess.run(cmd + ['bench-ros', '--json', '--calls', '20', '--duration', '1'],
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert run.returncode == 0, run.stderr[-3000:]
    r = json.loads(run.stdout)

    assert all(math.isfinite(x) for x in numbers(r)), r
    measured = numbers(r, DIFFERENCES)
    assert measured and all(x >= 0 for x in measured), r

    for series in ('cached_frame', 'request_image_64'):
        s = r['vqa'][series]
        assert s['requests'] == s['responses'] == s['succeeded'] == 20, s
        for key in ('round_trip_ms', 'floor_ms', 'server_ms'):
            assert s[key]['p50'] is not None and s[key]['p99'] >= s[key]['p50'], s
        assert s['ratio_p50'] > 0

    for key in ('captions', 'captions_reliable'):
        c = r[key]
        assert c['frames_published'] > 0 and c['camera_hz'] > 0, c
        assert c['frames_captioned'] + c['frames_skipped'] == c['frames_published'], c
        assert c['captions_of_unknown_frames'] == 0, c
    # With a reliable camera subscription frames do arrive, so some are captioned.
    assert r['captions_reliable']['frames_captioned'] > 0, r['captions_reliable']

    memory = r['memory']
    for process in ('vqa_service', 'vla_node', 'empty_service'):
        assert memory[process]['rss_mb'] > 0 and memory[process]['hwm_mb'] > 0
    for probe in ('python', 'import_rclpy', 'import_torch'):
        assert memory['reference'][probe]['rss_mb'] > 0
    assert '+model_loaded' in memory['reference']['engine_process_stages']
    assert r['machine']['cores'] >= 1 and r['machine']['torch']
