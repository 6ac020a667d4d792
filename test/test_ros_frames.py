"""FrameCache (latest frame, counters, lazy decoding) and the image source's frame sources.

No ROS graph: the cache takes any object with a header, and the sources are plain Python.
"""
import threading
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from vla_ros.preprocess import ImageError
from vla_ros.ros.frame_cache import FrameCache
from vla_ros.ros.frame_sources import open_source, SourceError


def msg(sec, frame_id='cam', pixels=None):
    stamp = SimpleNamespace(sec=sec, nanosec=0)
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id=frame_id),
                           pixels=pixels)


def decode(m):
    if m.pixels is None:
        raise ImageError('no pixels')
    return m.pixels


def test_latest_frame_wins_and_unused_frames_count_as_dropped():
    cache = FrameCache()
    assert cache.latest() is None
    for sec in (1, 2, 3):
        cache.put(msg(sec, pixels=np.zeros((2, 2, 3), np.uint8)), decode)
    frame = cache.latest()
    assert frame.header.stamp.sec == 3 and frame.seq == 3
    frame.rgb()   # used: replacing it is not a drop
    cache.put(msg(4), decode)
    assert cache.stats() == {'received': 4, 'dropped': 2, 'duplicates': 0, 'invalid': 0}


def test_same_stamp_on_a_second_transport_is_a_duplicate_but_unstamped_frames_are_not():
    cache = FrameCache()
    assert cache.put(msg(5), decode) is not None
    assert cache.put(msg(5), decode) is None           # e.g. the compressed copy
    assert cache.put(msg(5, frame_id='other'), decode) is not None
    assert cache.put(msg(0), decode) is not None
    assert cache.put(msg(0), decode) is not None       # stamp 0: cannot tell, keep newest
    assert cache.stats()['duplicates'] == 1


def test_decoding_is_lazy_memoised_and_bad_pixels_count_once():
    calls = []

    def counting_decode(m):
        calls.append(m)
        return decode(m)

    cache = FrameCache()
    frame = cache.put(msg(1, pixels=np.ones((1, 1, 3), np.uint8)), counting_decode)
    assert calls == []
    assert frame.rgb() is frame.rgb() and len(calls) == 1
    bad = cache.put(msg(2), counting_decode)
    for _ in range(3):
        with pytest.raises(ImageError, match='no pixels'):
            bad.rgb()
    assert len(calls) == 2 and cache.stats()['invalid'] == 1
    assert cache.count_invalid() == 2 and cache.stats()['received'] == 3


def test_cache_is_thread_safe():
    cache = FrameCache()

    def writer(offset):
        for i in range(500):
            cache.put(msg(offset + i), decode)
            cache.latest()

    threads = [threading.Thread(target=writer, args=(k * 1000 + 1,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = cache.stats()
    assert stats['received'] == 2000 and stats['dropped'] == 1999


def test_easy_vqa_and_scene_sources_give_rgb_frames():
    source = open_source('easy_vqa', loop=False)
    first = source.read()
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8
    scenes = open_source('scenes', seed=3)
    a, b = scenes.read(), scenes.read()
    assert a.shape == (64, 64, 3) and not np.array_equal(a, b)
    np.testing.assert_array_equal(open_source('scenes', seed=3).read(), a)   # reproducible


def test_folder_source_reads_images_in_order_skips_junk_and_loops(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0)]
    for i, rgb in enumerate(colours):
        cv2.imwrite(str(tmp_path / f'{i}.png'), np.full((8, 8, 3), rgb[::-1], np.uint8))
    (tmp_path / '1b.png').write_bytes(b'not a png')
    (tmp_path / 'notes.txt').write_text('ignored')
    once = open_source('folder', str(tmp_path), loop=False)
    got = [tuple(once.read()[0, 0]) for _ in range(2)]
    assert got == colours and once.read() is None
    looping = open_source('folder', str(tmp_path), loop=True)
    assert [tuple(looping.read()[0, 0]) for _ in range(3)] == colours + colours[:1]


def test_video_source_reads_and_rewinds(tmp_path):
    path = str(tmp_path / 'clip.avi')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), 10, (32, 24))
    if not writer.isOpened():
        pytest.skip('this OpenCV build cannot write MJPG video')
    for v in (0, 120, 240):
        writer.write(np.full((24, 32, 3), v, np.uint8))
    writer.release()
    video = open_source('video', path, loop=True)
    means = [int(video.read().mean()) for _ in range(4)]
    assert [abs(m - v) < 12 for m, v in zip(means, (0, 120, 240, 0))] == [True] * 4
    video.close()


@pytest.mark.parametrize('kind, path, words', [
    ('folder', '/nonexistent', 'not a directory'),
    ('video', '/nonexistent.mp4', 'no such file'),
    ('camera', '', 'OpenCV cannot open'),
    ('webcam', '', 'unknown source'),
])
def test_sources_that_cannot_open_say_why(kind, path, words):
    with pytest.raises(SourceError, match=words):
        open_source(kind, path, camera_index=63)


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(SourceError, match='no images'):
        open_source('folder', str(tmp_path))
