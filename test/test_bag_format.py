"""What the bags say about themselves, checked with readers that are not rosbags.

Foxglove's `mcap` reader validates chunk and data-section CRCs; the type hashes are held
to the ones rosidl generated for the installed packages and to what rclpy reports for a
live publisher; the distro, the publish times and the message for a folder without
metadata.yaml are checked where rosbag2 keeps them.
"""
import glob
import json
import os
import sqlite3
import time
from pathlib import Path
from zlib import crc32

import pytest
import yaml
from mcap.reader import make_reader, NonSeekingReader
from mcap.records import Chunk, DataEnd, Footer
from mcap.stream_reader import CRCValidationError, StreamReader

from vla_ros.bag.bag_io import (bag_summary, BagError, BagWriter, ensure_type, make_typestore,
                                read_messages)
from vla_ros.bag.rosbag2_writer import ros_distro
from vla_ros.bag.type_hash import rihs01

T0 = 1_700_000_000_000_000_000
# from share/<pkg>/msg/<Name>.json of the Kilted packages (rosidl_generator_type_description)
IMAGE_HASH = 'RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47'
CHAR_HASH = 'RIHS01_3ad2d04dd29ba19d04b16659afa3ccaedd691914b02a64e82e252f2fa6a586a9'


def write_questions(path, storage='mcap', n=30, size=0, sent=None):
    """A bag of n String messages on /question, 0.1 s apart; `sent(k)`: publish time."""
    ts = make_typestore()
    String = ts.types['std_msgs/msg/String']
    with BagWriter(path, storage, ts) as bag:
        bag.add_topic('/question', 'std_msgs/msg/String')
        bag.add_topic('/char', 'std_msgs/msg/Char')
        for k in range(n):
            data = ts.serialize_cdr(String(data=f'question {k:03d} ' + 'x' * size),
                                    'std_msgs/msg/String')
            bag.write('/question', T0 + k * 10**8, bytes(data), *([sent(k)] if sent else []))
    return path


def mcap_file(bag: Path) -> Path:
    return next(bag.glob('*.mcap'))


def records(path, **kwargs):
    with open(path, 'rb') as f:
        return list(StreamReader(f, validate_crcs=True, **kwargs).records)


def flipped(src: Path, dst: Path, offset: int) -> Path:
    data = bytearray(src.read_bytes())
    data[offset] ^= 0x01
    dst.write_bytes(data)
    return dst


# -- mcap CRCs -------------------------------------------------------------------------------

def test_mcap_crcs_are_written_and_catch_a_flipped_byte(tmp_path):
    path = mcap_file(write_questions(tmp_path / 'bag'))
    recs = records(path, emit_chunks=True)   # validates the data-section CRC
    assert all(r.uncompressed_crc for r in recs if isinstance(r, Chunk))
    assert [r.data_section_crc != 0 for r in recs if isinstance(r, DataEnd)] == [True]
    with open(path, 'rb') as f:   # chunk CRCs, through the summary's chunk index
        assert len(list(make_reader(f, validate_crcs=True).iter_messages())) == 30
    assert len(list(read_messages(path.parent))) == 30

    data = path.read_bytes()
    bad = flipped(path, tmp_path / 'bad.mcap', data.index(b'question 017'))
    with open(bad, 'rb') as f, pytest.raises(CRCValidationError, match='Chunk'):
        list(make_reader(f, validate_crcs=True).iter_messages())
    with pytest.raises(CRCValidationError, match='DataEnd'):
        records(bad, emit_chunks=True)
    with open(bad, 'rb') as f, pytest.raises(CRCValidationError):
        list(NonSeekingReader(f, validate_crcs=True).iter_messages())
    with pytest.raises(BagError, match='checksum mismatch'):   # rosbags checks chunks too
        list(read_messages(bad))


def test_mcap_summary_crc_covers_the_summary_section(tmp_path):
    """The Footer's CRC: the summary section up to the Footer's own summary_crc field (no
    Python reader checks it; this is the spec's definition)."""
    path = mcap_file(write_questions(tmp_path / 'bag'))
    footer = records(path, emit_chunks=True)[-1]
    assert isinstance(footer, Footer) and footer.summary_crc != 0

    def summary_crc_ok(data: bytes) -> bool:   # from summary_start to the CRC and magic
        return crc32(data[footer.summary_start:-4 - 8]) == footer.summary_crc
    assert summary_crc_ok(path.read_bytes())
    channel = path.read_bytes().index(b'/question', footer.summary_start)   # in the summary
    assert not summary_crc_ok(flipped(path, tmp_path / 'bad.mcap', channel).read_bytes())


# -- type hashes -----------------------------------------------------------------------------

def installed_type_descriptions() -> dict:
    """{type: hash} from every share/<pkg>/msg/<Name>.json under AMENT_PREFIX_PATH."""
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    found = {}
    for prefix in prefixes:
        for path in glob.glob(os.path.join(prefix, 'share', '*', 'msg', '*.json')):
            with open(path) as f:
                first = json.load(f)['type_hashes'][0]
            found[first['type_name']] = first['hash_string']
    return found


def test_type_hashes_are_the_ones_rosidl_computes():
    ts = make_typestore()
    assert rihs01(ts, 'sensor_msgs/msg/Image') == IMAGE_HASH
    assert rihs01(ts, 'std_msgs/msg/Char') == CHAR_HASH   # a .msg char is an uint8
    assert ts.hash_rihs01('std_msgs/msg/Char') != CHAR_HASH   # (rosbags: an IDL char)
    # and every type of the installed packages (the wheels: 135, e.g. rmw_dds_common's
    # Gid, a char[16]; none on a pip-only install)
    installed = installed_type_descriptions()
    wrong = []
    for msgtype, expected in sorted(installed.items()):
        ensure_type(ts, msgtype)
        if rihs01(ts, msgtype) != expected:
            wrong.append(msgtype)
    assert not wrong, f'{len(wrong)} of {len(installed)} installed types hash differently'


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bags_carry_the_type_hashes(tmp_path, storage):
    bag = write_questions(tmp_path / 'bag', storage, n=2)
    with open(bag / 'metadata.yaml') as f:
        topics = yaml.safe_load(f)['rosbag2_bagfile_information']['topics_with_message_count']
    hashes = {t['topic_metadata']['name']: t['topic_metadata']['type_description_hash']
              for t in topics}
    assert hashes['/char'] == CHAR_HASH
    if storage == 'mcap':
        with open(mcap_file(bag), 'rb') as f:
            channels = make_reader(f).get_summary().channels.values()
        assert {c.topic: c.metadata.get('topic_type_hash') for c in channels} == hashes
    else:
        with sqlite3.connect(next(bag.glob('*.db3'))) as db:
            assert dict(db.execute('SELECT name, type_description_hash FROM topics')) == hashes


# -- ROS distro ------------------------------------------------------------------------------

def fake_rclpy(tmp_path, version: str) -> str:
    share = tmp_path / version / 'share' / 'rclpy'
    share.mkdir(parents=True)
    (share / 'package.xml').write_text(f'<package format="3">\n  <name>rclpy</name>\n'
                                       f'  <version>{version}</version>\n</package>\n')
    return str(tmp_path / version)


def test_ros_distro_is_ros_distro_or_that_of_the_installed_rclpy(tmp_path, monkeypatch):
    monkeypatch.setenv('ROS_DISTRO', 'jazzy')
    assert ros_distro() == 'jazzy'
    monkeypatch.delenv('ROS_DISTRO')
    for version, distro in (('7.1.5', 'jazzy'), ('9.1.2', 'kilted'), ('10.0.1', '')):
        monkeypatch.setenv('AMENT_PREFIX_PATH', fake_rclpy(tmp_path, version))
        assert ros_distro() == distro, version


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bags_record_the_ros_distro(tmp_path, monkeypatch, storage):
    monkeypatch.setenv('ROS_DISTRO', 'jazzy')
    bag = write_questions(tmp_path / 'bag', storage, n=2)
    with open(bag / 'metadata.yaml') as f:
        info = yaml.safe_load(f)['rosbag2_bagfile_information']
    assert info['ros_distro'] == 'jazzy' and info['message_count'] == 2
    if storage == 'mcap':   # the copy of the metadata inside the bag file
        with open(mcap_file(bag), 'rb') as f:
            meta = next(make_reader(f).iter_metadata())
        assert meta.name == 'rosbag2'
        assert yaml.safe_load(meta.metadata['serialized_metadata'])['ros_distro'] == 'jazzy'
    else:
        with sqlite3.connect(next(bag.glob('*.db3'))) as db:
            assert db.execute('SELECT ros_distro FROM schema').fetchall() == [('jazzy',)]
            text = db.execute('SELECT metadata FROM metadata').fetchone()[0]
        assert yaml.safe_load(text)['ros_distro'] == 'jazzy'
    monkeypatch.delenv('ROS_DISTRO')
    monkeypatch.setenv('AMENT_PREFIX_PATH', fake_rclpy(tmp_path, '9.1.2'))
    with open(write_questions(tmp_path / 'kilted', storage, n=1) / 'metadata.yaml') as f:
        assert yaml.safe_load(f)['rosbag2_bagfile_information']['ros_distro'] == 'kilted'


# -- publish time ----------------------------------------------------------------------------

def test_mcap_keeps_the_publish_time_beside_the_receive_time(tmp_path):
    # 0.4 MB messages: chunks (1 MiB) close between writes, and publish times survive that
    sent = write_questions(tmp_path / 'sent', n=8, size=400_000, sent=lambda k: T0 + k)
    same = write_questions(tmp_path / 'same', n=3)
    for bag, expected in ((sent, [(T0 + k * 10**8, T0 + k) for k in range(8)]),
                          (same, [(T0 + k * 10**8,) * 2 for k in range(3)])):
        with open(mcap_file(bag), 'rb') as f:
            got = [(m.log_time, m.publish_time)
                   for _, _, m in make_reader(f, validate_crcs=True).iter_messages()]
        assert got == expected
    assert [m.timestamp for m in read_messages(sent)] == [T0 + k * 10**8 for k in range(8)]


# -- bag info on a bare mcap file ------------------------------------------------------------

def test_a_folder_without_metadata_yaml_names_the_file_found(tmp_path):
    bag = write_questions(tmp_path / 'bag', n=2)
    bare = tmp_path / 'bare'
    bare.mkdir()
    mcap_file(bag).rename(bare / 'foo.mcap')
    with pytest.raises(BagError) as e:
        bag_summary(bare)
    text = str(e.value)
    assert 'no metadata.yaml' in text and 'found foo.mcap: a bare mcap file' in text
    assert str(bare / 'foo.mcap') in text
    assert bag_summary(bare / 'foo.mcap')['messages'] == 2   # which works
    (bare / 'foo.mcap').unlink()
    with pytest.raises(BagError, match='no metadata.yaml in it and no .mcap or .db3 file'):
        bag_summary(bare)


# -- recording over DDS ----------------------------------------------------------------------

def test_recorder_stores_send_times_and_the_publishers_type_hash(rclpy_init, tmp_path):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from vla_ros.ros_tools.bag_recorder import BagRecorder
    topic = '/bag_format_test/image'
    node = Node('bag_format_publisher', context=rclpy_init)
    pub = node.create_publisher(Image, topic, 10)
    recorder = BagRecorder(tmp_path / 'rec', types={topic: 'sensor_msgs/msg/Image'})
    executor = SingleThreadedExecutor(context=rclpy_init)
    executor.add_node(recorder)
    try:
        end = time.monotonic() + 20
        while not (recorder.matched() and pub.get_subscription_count()):
            assert time.monotonic() < end, 'the recorder never matched the publisher'
            time.sleep(0.05)
        live = [str(i.topic_type_hash) for i in node.get_publishers_info_by_topic(topic)]
        windows = []
        for k in range(5):   # nothing spins meanwhile: every receive comes after every send
            before = time.time_ns()
            pub.publish(Image(height=1, width=k + 1, encoding='mono8', step=k + 1,
                              data=bytes(k + 1)))
            windows.append((before, time.time_ns()))
        while recorder.counts[topic] < 5:
            assert time.monotonic() < end, f'recorded {recorder.counts[topic]} of 5'
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown()
        recorder.destroy_node()   # finishes the bag
        node.destroy_node()
    assert live == [IMAGE_HASH]
    with open(mcap_file(tmp_path / 'rec'), 'rb') as f:
        reader = make_reader(f, validate_crcs=True)
        channels = reader.get_summary().channels.values()
        times = [(m.publish_time, m.log_time) for _, _, m in reader.iter_messages()]
    assert [c.metadata['topic_type_hash'] for c in channels] == live
    assert len(times) == 5
    for (sent, received), (before, after) in zip(times, windows):
        assert before <= sent <= after < received, (sent, received, before, after)
