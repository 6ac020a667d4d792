"""Bag replay through the real nodes over DDS: regression, player/recorder, fast replay.

Each fixture bag (raw/compressed camera x mcap/sqlite3) is played into VLANode and
VQAServiceNode; their captions and answers must match easy-VQA's ground truth and the
golden captions (test/golden/bag_captions.json) exactly, carry the header of the frame
they describe, and arrive in frame order. Failures list expected vs got per frame.
The regression replays are synchronised (ReplayRig `sync`: each frame and question
waits for the nodes), so their results do not depend on CPU load; the 5x replay runs
free, as on a robot, and checks that what it loses is counted.

One ReplayRig (the nodes + a probe) serves the whole module, so the model loads once.
Set VLA_ROS_LONG_TESTS=1 for longer fast-replay soak runs.
"""
import json
import os
import subprocess
import sys
import time

import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.serialization import deserialize_message  # noqa: E402

from vla_ros.bag import fixtures  # noqa: E402
from vla_ros.bag.bag_io import bag_topics, read_messages  # noqa: E402
from vla_ros.bag.scoring import problems, summary_text  # noqa: E402
from vla_ros.ros_tools.bag_eval import ReplayRig  # noqa: E402
from vla_ros.ros_tools.bag_player import BagPlayer, message_class  # noqa: E402
from vla_ros.ros_tools.bag_recorder import BagRecorder  # noqa: E402

SOAK = os.environ.get('VLA_ROS_LONG_TESTS') == '1'


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    return fixtures.write_all(tmp_path_factory.mktemp('bags'))


@pytest.fixture(scope='module')
def golden():
    with open(fixtures.GOLDEN_PATH) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def rig():
    """The nodes under test, shared by this module (its own rclpy context lifetime)."""
    rclpy.init()
    try:
        with ReplayRig() as rig:
            yield rig
    finally:
        rclpy.try_shutdown()


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc)."""
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith('VmRSS:'))


def wait_for(condition, what, timeout=20.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f'timed out after {timeout} s waiting for {what}'
        time.sleep(0.02)


def assert_matches_expectations(report, golden):
    lines = problems(report)
    hint = ''
    if report['captions'].get('golden_mismatch'):
        digest = fixtures.checkpoint_digest(report['checkpoint'])
        hint = (f"\n(golden captions are for checkpoint {golden['checkpoint_sha256']}, the nodes "
                f"ran {digest}; if the model change is deliberate: {golden['refresh']})")
    assert not lines, (f"replaying {report['bag']} at {report['rate']}x: {len(lines)} "
                       'difference(s) from the expected results:\n  ' + '\n  '.join(lines)
                       + hint + '\n' + summary_text(report))


# -- regression ------------------------------------------------------------------------------

@pytest.mark.parametrize('name', fixtures.FIXTURES)
def test_replay_gives_the_expected_answers_and_captions(rig, bags, golden, name, tmp_path):
    transport = name.split('_')[2]
    report = rig.replay(bags[name], rate=2.0, sync=True, record=tmp_path / 'out',
                        golden=golden[transport])
    print(f'\n{name}:\n{summary_text(report)}')
    assert_matches_expectations(report, golden)
    n_questions = len(fixtures.IMAGE_IDS) * fixtures.QUESTIONS_PER_IMAGE
    assert report['accuracy'] == report['vqa_accuracy'] == 1.0
    assert report['answer_topic']['answered'] == report['vqa_service']['answered'] == n_questions
    frames = report['frames']
    assert frames['published'] == len(fixtures.IMAGE_IDS) * fixtures.FRAMES_PER_IMAGE
    # synchronised replay: every frame reached the nodes and was described once
    assert frames['captioned'] == frames['reached_node'] == frames['published']
    assert frames['invalid'] == 0
    # the recorded output bag holds the same captions and answers
    recorded = {t.topic: t.count for t in bag_topics(tmp_path / 'out')}
    assert recorded == {'/caption': report['captions']['n'],
                        '/answer': report['answer_topic']['answered']}


def test_a_changed_model_fails_with_a_readable_diff(rig, bags, golden, monkeypatch):
    """What a regression looks like: the model now answers yes for no and vice versa."""
    engine = rig.vla.engine            # shared with the vqa node
    real_answer_batch = engine.answer_batch   # how both nodes answer questions

    def flipped(requests):
        results = real_answer_batch(requests)
        for result in results:
            if hasattr(result, 'text'):
                result.text = {'yes': 'no', 'no': 'yes'}.get(result.text, result.text)
        return results
    monkeypatch.setattr(engine, 'answer_batch', flipped)
    report = rig.replay(bags['easy_vqa_compressed_mcap'], rate=4.0, sync=True,
                        golden=golden['compressed'])
    with pytest.raises(AssertionError) as failure:
        assert_matches_expectations(report, golden)
    message = str(failure.value)
    assert "(image 1): expected 'yes', got 'no' [frame #" in message, message
    assert '[vqa service] q#4' in message and '[answer topic] q#4' in message, message


# -- fast replay -----------------------------------------------------------------------------

def test_fast_replay_counts_dropped_frames_and_does_not_leak(rig, bags):
    """5x real time: 50 frames/s into nodes captioning at most 20/s. Nothing crashes,
    every frame is accounted for, every question is answered, memory stays flat."""
    bag = bags['easy_vqa_raw_mcap']    # the large frames: a per-frame leak would show
    rig.replay(bag, rate=5.0)          # warm-up: allocator pools, torch caches
    before = rss_mb()
    runs = 20 if SOAK else 3
    for _ in range(runs):
        report = rig.replay(bag, rate=5.0)
        f = report['frames']
        print(f"\n5x: {f['published']} frames published, {f['reached_node']} reached "
              f"vla_node, {f['captioned']} captioned, {f['not_captioned']} not captioned "
              f"({f['dropped']} replaced unused in its cache); answers "
              f"{report['answer_topic']['correct']}/{report['answer_topic']['questions']} "
              f"correct, {report['answer_topic']['missing']} + "
              f"{report['vqa_service']['missing']} unanswered (topic + vqa); "
              f"rss {rss_mb():.1f} MB")
        assert f['captioned'] + f['not_captioned'] == f['published']
        assert f['captioned'] <= f['reached_node'] <= f['published']
        assert f['reached_node'] + f['lost_before_node'] == f['published']
        for path in ('answer_topic', 'vqa_service'):   # unanswered ones counted, not lost
            assert report[path]['answered'] + report[path]['missing'] == 24
        assert report['captions']['header_mismatch'] == report['captions']['out_of_order'] == 0
        assert report['answer_topic']['header_mismatch'] == 0
    growth = rss_mb() - before
    print(f'rss growth over {runs} fast replays: {growth:+.1f} MB')
    assert growth < 15, f'resident memory grew {growth:.1f} MB over {runs} replays'
    # and the nodes still work at normal speed afterwards
    report = rig.replay(bags['easy_vqa_compressed_sqlite3'], rate=4.0, sync=True)
    assert report['accuracy'] == 1.0, '\n'.join(problems(report))


# -- player and recorder ---------------------------------------------------------------------

def test_player_and_recorder_round_trip_every_message(rig, bags, tmp_path):
    """Bag -> BagPlayer -> DDS -> BagRecorder -> bag: same messages, same order, paced."""
    bag = bags['easy_vqa_compressed_mcap']
    ns = rig.namespace + '_copy'
    player = BagPlayer(bag, namespace=ns, remap={'/question': 'question'})
    recorder = BagRecorder(tmp_path / 'copy', topics=['/camera/image_raw/compressed',
                                                      'question'],
                           storage='sqlite3', namespace=ns)
    rig.executor.add_node(recorder)
    try:
        assert player.wait_for_subscribers({t: 1 for t in player.pubs}, timeout=20.0)
        wait_for(recorder.matched, 'the recorder to match the player')
        stats = player.play(rate=4.0)
        wait_for(lambda: sum(recorder.counts.values()) >= 64, 'every message recorded')
    finally:
        rig.executor.remove_node(recorder)
        recorder.destroy_node()
        player.destroy_node()
    assert stats['published'] == {'/camera/image_raw/compressed': 40, '/question': 24}
    original = list(read_messages(bag))
    copy = list(read_messages(tmp_path / 'copy'))
    for topic, copied in (('/camera/image_raw/compressed', '/camera/image_raw/compressed'),
                          ('/question', f'{ns}/question')):
        sent = [m for m in original if m.topic == topic]
        got = [m for m in copy if m.topic == copied]
        cls = message_class(sent[0].msgtype)
        assert [deserialize_message(m.data, cls) for m in got] == \
            [deserialize_message(m.data, cls) for m in sent], topic
    # recorded at 4x: 3.9 s of bag in about 1 s
    span = (copy[-1].timestamp - copy[0].timestamp) / 1e9
    assert 0.9 < span < 2.0, span


def test_cli_play_into_record(bags, tmp_path):
    """`vla-ros bag record` hears `vla-ros bag play`, as a user runs them."""
    cli = [sys.executable, '-m', 'vla_ros.cli', 'bag']
    record = subprocess.Popen(cli + ['record', str(tmp_path / 'rec'), '--topics', '/question',
                                     '--duration', '40'],
                              stderr=subprocess.PIPE, text=True)
    try:
        play = subprocess.run(cli + ['play', str(bags['easy_vqa_raw_sqlite3']), '--rate', '4',
                                     '--topics', '/question', '--wait-for-subscribers', '30',
                                     '--delay', '1'],
                              capture_output=True, text=True, timeout=60)
        assert play.returncode == 0, play.stderr
        assert 'played 24 messages' in play.stderr
        time.sleep(1.0)   # let the recorder write what it received
    finally:
        record.send_signal(2)   # Ctrl-C: the recorder must still finish the bag
        _, err = record.communicate(timeout=30)
    assert record.returncode == 0, err
    assert 'wrote 24 messages' in err, err
    assert [t.count for t in bag_topics(tmp_path / 'rec')] == [24]


def test_cli_eval_bag_prints_accuracy_json(bags):
    run = subprocess.run([sys.executable, '-m', 'vla_ros.cli', 'eval-bag',
                          str(bags['easy_vqa_compressed_sqlite3']), '--json', '--sync',
                          '--rate', '2', '--min-accuracy', '1.0'],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert report['accuracy'] == report['vqa_accuracy'] == 1.0
    assert report['answer_topic']['questions'] == 24
    assert report['questions'][0]['expected'] == report['questions'][0]['topic']['answer']
    assert 'caption_rows' not in report   # only with --details
