"""ROS 2 bags without ROS: typestore, writing/reading, fixtures, timing, scoring, golden."""
import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from vla_ros.bag import fixtures
from vla_ros.bag.bag_io import (bag_summary, bag_topics, BagError, BagWriter, choose_topics,
                                ensure_type, header_of, make_typestore, Pacer, read_messages)
from vla_ros.bag.scoring import problems, score_replay
from vla_ros.data.easy_vqa import package_split_dir


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    return fixtures.write_all(tmp_path_factory.mktemp('bags'))


# -- types, writing, reading --------------------------------------------------------------

def test_custom_messages_round_trip_through_both_storages(tmp_path):
    ts = make_typestore()
    Caption, Header = ts.types['vla_ros/msg/Caption'], ts.types['std_msgs/msg/Header']
    Time = ts.types['builtin_interfaces/msg/Time']
    sent = [Caption(header=Header(stamp=Time(sec=5, nanosec=k), frame_id='cam'),
                    caption=f'caption {k}', confidence=0.5, latency_ms=1.0) for k in range(3)]
    for storage in ('mcap', 'sqlite3'):
        with BagWriter(tmp_path / storage, storage) as bag:
            bag.add_topic('/caption', 'vla_ros/msg/Caption')
            for k, msg in enumerate(sent):
                bag.write_message('/caption', 1000 + k, msg)
        got = list(read_messages(tmp_path / storage))
        assert [m.timestamp for m in got] == [1000, 1001, 1002]
        assert [ts.deserialize_cdr(m.data, m.msgtype).caption for m in got] == \
            ['caption 0', 'caption 1', 'caption 2']
        assert header_of(ts, got[2]) == (5, 2, 'cam')
        assert bag_summary(tmp_path / storage)['storage'] == storage
    # the definition travels in the bag, as rosbag2 writes it
    assert 'string caption' in (tmp_path / 'mcap' / 'mcap.mcap').read_bytes().decode('latin-1')


def test_unknown_types_and_bad_paths_are_explained(tmp_path):
    with pytest.raises(BagError, match='no definition of acme_msgs/msg/Widget'):
        ensure_type(make_typestore(), 'acme_msgs/msg/Widget')
    with pytest.raises(BagError, match='no such bag'):
        bag_summary(tmp_path / 'missing')
    (tmp_path / 'junk').mkdir()
    with pytest.raises(BagError, match='not a readable ROS 2 bag'):
        list(read_messages(tmp_path / 'junk'))
    with pytest.raises(BagError, match='never overwritten'):
        BagWriter(tmp_path / 'junk')


def test_choose_topics_finds_the_camera_and_questions_or_says_which_to_pick(bags):
    topics = bag_topics(bags['easy_vqa_raw_mcap'])
    image, question = choose_topics(topics)
    assert (image.topic, question.topic) == ('/camera/image_raw', '/question')
    with pytest.raises(BagError, match='not a std_msgs/msg/String topic'):
        choose_topics(topics, question_topic='/camera/image_raw')
    doubled = topics + [replace(topics[0], topic='/camera2/image_raw')]
    with pytest.raises(BagError, match='several camera topics; choose one with --image-topic'):
        choose_topics(doubled)


# -- fixtures ------------------------------------------------------------------------------

def test_fixtures_are_deterministic_and_alike_in_both_storages(bags, tmp_path):
    again = fixtures.write_bag(tmp_path / 'again', 'compressed', 'sqlite3')
    first = list(read_messages(bags['easy_vqa_compressed_sqlite3']))
    assert list(read_messages(again)) == first
    assert list(read_messages(bags['easy_vqa_compressed_mcap'])) == first
    assert list(read_messages(bags['easy_vqa_raw_sqlite3'])) == \
        list(read_messages(bags['easy_vqa_raw_mcap']))
    # small enough to keep beside the tests if ever wanted; the raw ones are not committed
    size = sum(f.stat().st_size for f in bags['easy_vqa_compressed_mcap'].iterdir())
    assert size < 300_000


def test_fixture_frames_are_a_10hz_camera_and_answers_are_easy_vqa_truth(bags):
    ts = make_typestore()
    bag = bags['easy_vqa_raw_mcap']
    expected = fixtures.load_expected(bag)
    msgs = list(read_messages(bag))
    frames = [m for m in msgs if m.topic == '/camera/image_raw']
    assert len(frames) == len(fixtures.IMAGE_IDS) * fixtures.FRAMES_PER_IMAGE
    stamps = [header_of(ts, m) for m in frames]
    assert {s[2] for s in stamps} == {'camera_optical_frame'}
    times = [s[0] * 10**9 + s[1] for s in stamps]
    assert {b - a for a, b in zip(times, times[1:])} == {100_000_000}
    assert all(m.timestamp - t == 3_000_000 for m, t in zip(frames, times))   # receive delay
    image = ts.deserialize_cdr(frames[0].data, frames[0].msgtype)
    assert (image.width, image.height, image.encoding, image.step) == (256, 256, 'bgr8', 768)
    # questions in the bag = the expected file's, with easy-VQA's own answers
    asked = [ts.deserialize_cdr(m.data, m.msgtype).data for m in msgs if m.topic == '/question']
    assert asked == [q['question'] for q in expected['questions']]
    with open(os.path.join(package_split_dir('test'), 'questions.json')) as f:
        truth = {(q, i): a for q, a, i in json.load(f)}
    for q in expected['questions']:
        assert truth[(q['question'], q['image_id'])] == q['answer']
    # every question is asked while its image is on camera
    for m, q in zip([m for m in msgs if m.topic == '/question'], expected['questions']):
        shown = [f['image_id'] for f, t in zip(expected['frames'], times) if t <= m.timestamp]
        assert shown[-1] == q['image_id']


def test_golden_captions_match_the_bundled_checkpoint():
    """Captions of the fixture images computed without ROS; the replay tests hold the
    nodes to the same file. A new checkpoint changes them: refresh deliberately."""
    with open(fixtures.GOLDEN_PATH) as f:
        golden = json.load(f)
    now = fixtures.golden_captions()
    diffs = [f'{transport} image {i}: golden {golden[transport].get(i)!r}, model says {text!r}'
             for transport in fixtures.TOPICS for i, text in now[transport].items()
             if golden[transport].get(i) != text]
    assert not diffs, (
        f"golden captions were made for checkpoint {golden['checkpoint_sha256']}, the bundled "
        f"one is {now['checkpoint_sha256']}:\n  " + '\n  '.join(diffs)
        + f"\nIf the model change is deliberate, refresh: {golden['refresh']}")


# -- timing ----------------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now, self.waits = 100.0, []

    def __call__(self):
        return self.now

    def wait(self, seconds):
        self.waits.append(round(seconds, 6))
        self.now += seconds
        return False


def test_pacer_keeps_recorded_gaps_scaled_by_rate_and_reports_lateness():
    clock = FakeClock()
    pacer = Pacer(rate=2.0, clock=clock, wait=clock.wait)
    assert pacer.wait_for(5 * 10**9) == 0.0                    # first message: now
    assert pacer.wait_for(6 * 10**9) == 0.0 and clock.waits == [0.5]   # 1 s of bag at 2x
    clock.now += 2.0                                            # the publisher stalled
    assert pacer.wait_for(7 * 10**9) == pytest.approx(1.5)      # late: sent at once
    assert clock.waits == [0.5]
    pacer.restart()                                             # --loop: a new pass
    assert pacer.wait_for(5 * 10**9) == 0.0 and clock.waits == [0.5]
    stopping = Pacer(clock=clock, wait=lambda s: True)
    stopping.wait_for(0)
    assert stopping.wait_for(10**9) is None                     # stop requested
    with pytest.raises(ValueError):
        Pacer(rate=0)


# -- scoring ---------------------------------------------------------------------------------

FRAMES = [{'stamp': [10, k * 100], 'frame_id': 'cam', 'image_id': k // 2} for k in range(4)]
QUESTIONS = [{'question': 'what color?', 'answer': 'red', 'image_id': 0},
             {'question': 'what shape?', 'answer': 'circle', 'image_id': 1},
             {'question': 'what color?', 'answer': 'blue', 'image_id': 1}]


def answer(frame, question, text, frame_id='cam'):
    return {'stamp': [10, frame * 100], 'frame_id': frame_id, 'question': question,
            'answer': text, 'success': True, 'error': ''}


def test_a_clean_replay_scores_perfectly():
    captions = [{'stamp': f['stamp'], 'frame_id': 'cam', 'caption': f"image {f['image_id']}"}
                for f in FRAMES]
    answers = [answer(1, 'what color?', 'red'), answer(2, 'what shape?', 'circle'),
               answer(3, 'what color?', 'blue')]
    vqa = [{**a, 'index': i} for i, a in enumerate(answers)]
    report = score_replay(FRAMES, QUESTIONS, captions, answers, vqa,
                          golden={'0': 'image 0', '1': 'image 1'})
    assert problems(report) == []
    assert report['accuracy'] == report['vqa_accuracy'] == 1.0
    assert report['frames'] == {'published': 4, 'captioned': 4, 'not_captioned': 0,
                                'caption_coverage': 1.0}


def test_every_kind_of_problem_is_counted_and_explained():
    captions = [{'stamp': [10, 200], 'frame_id': 'cam', 'caption': 'image 1'},
                {'stamp': [10, 0], 'frame_id': 'cam', 'caption': 'image 0'},      # late
                {'stamp': [99, 0], 'frame_id': 'cam', 'caption': 'ghost'},        # no frame
                {'stamp': [10, 300], 'frame_id': 'cam', 'caption': 'image nine'}]  # golden
    answers = [answer(1, 'what color?', 'green'),          # wrong answer
               answer(0, 'what shape?', 'circle')]         # right, but about image 0, late
    report = score_replay(FRAMES, QUESTIONS, captions, answers, [],
                          golden={'0': 'image 0', '1': 'image 1'})
    assert report['frames']['not_captioned'] == 1
    assert report['captions'] == {'n': 4, 'header_mismatch': 1, 'out_of_order': 1,
                                  'repeated': 0, 'golden_mismatch': 1}
    topic = report['answer_topic']
    assert (topic['correct'], topic['missing'], topic['wrong_image'],
            topic['out_of_order']) == (1, 1, 1, 1)
    text = '\n'.join(problems(report))
    assert "[answer topic] q#0 'what color?' (image 0): expected 'red', got 'green' " \
           '[frame #1 image 0]' in text
    assert "q#2 'what color?' (image 1): expected 'blue', got no answer" in text
    assert 'answered about the wrong image: frame #0 image 0' in text
    assert "[caption] frame #3 image 1: expected 'image 1', got 'image nine'" in text
    assert "[caption] header 'cam' @ 99.000000000 matches no published frame" in text
    assert '[caption] frame #0 image 0 arrived after a caption of frame #2' in text
    assert "[vqa service] q#1 'what shape?' (image 1): expected 'circle', got no answer" in text


def test_cli_bag_info_and_fixtures(tmp_path):
    def run(*args):
        r = subprocess.run([sys.executable, '-m', 'vla_ros.cli', 'bag', *args],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout
    out = run('fixtures', str(tmp_path))
    assert len(out.splitlines()) == 4
    text = run('info', str(tmp_path / 'easy_vqa_raw_sqlite3'))
    assert 'Storage id:        sqlite3' in text and 'Messages:          64' in text
    assert '/camera/image_raw | sensor_msgs/msg/Image | 40 msgs | ~10 Hz' in text
    info = json.loads(run('info', '--json', str(tmp_path / 'easy_vqa_compressed_mcap')))
    assert {t['topic']: t['count'] for t in info['topics']} == {
        '/camera/image_raw/compressed': 40, '/question': 24}
    assert info['topics'][0]['qos'] == [{'reliability': 'reliable', 'durability': 'volatile',
                                         'depth': 10}]
