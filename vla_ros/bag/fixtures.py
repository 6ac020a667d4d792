"""Small, deterministic test bags: a 10 Hz camera looking at easy-VQA test images, and
questions about them with their ground-truth answers.

Each bag holds one camera topic, raw (`/camera/image_raw`, sensor_msgs/Image, bgr8 as
OpenCV drivers publish) or compressed (`/camera/image_raw/compressed`, JPEG), plus
`/question` (std_msgs/String). The camera shows each of 8 images (all 8 colours, all 3
shapes) for 5 frames (0.5 s); 3 questions about it are asked 150, 200 and 250 ms into
that stretch, so an answer about "the latest frame" is about the right image even if it
comes 250 ms late (at 1x; the margin shrinks with the replay rate). Frames are 256x256:
the 64x64 image upscaled 4x by pixel replication, which the model's 4x area downscale
undoes exactly, so answers and captions match what the model gives on the dataset image.

Expected answers go in `expected_answers.json` inside the bag directory (rosbag2 tools
ignore extra files there); see `load_expected`. Everything is fixed (stamps start at
1700000000 s), so two runs write identical messages.

    python -m vla_ros.bag.fixtures --out DIR        # write the four bags
    python -m vla_ros.bag.fixtures --update-golden  # refresh test/golden/bag_captions.json
"""
import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from ..data.easy_vqa import package_split_dir
from .bag_io import SOURCE_ROOT, bag_qos, BagWriter, make_typestore, STRING_TYPE

IMAGE_IDS = (0, 1, 2, 5, 7, 11, 15, 55)   # easy-VQA test images: every colour and shape
FRAMES_PER_IMAGE = 5
QUESTIONS_PER_IMAGE = 3
FRAME_PERIOD_NS = 100_000_000              # 10 Hz
QUESTION_OFFSETS_NS = (150_000_000, 200_000_000, 250_000_000)
TRANSPORT_DELAY_NS = 3_000_000             # bag (receive) time - header stamp, as on a robot
START_NS = 1_700_000_000 * 10**9
FRAME_SIZE = 256
FRAME_ID = 'camera_optical_frame'
JPEG_QUALITY = 90

CAMERA_TOPIC = '/camera/image_raw'
TOPICS = {'raw': (CAMERA_TOPIC, 'sensor_msgs/msg/Image'),
          'compressed': (CAMERA_TOPIC + '/compressed', 'sensor_msgs/msg/CompressedImage')}
QUESTION_TOPIC = '/question'
EXPECTED_FILE = 'expected_answers.json'
EXPECTED_FORMAT = 'vla_ros expected answers 1'
FIXTURES = tuple(f'easy_vqa_{t}_{s}' for t in TOPICS for s in ('mcap', 'sqlite3'))
GOLDEN_PATH = SOURCE_ROOT / 'test' / 'golden' / 'bag_captions.json'


def _dataset():
    root = package_split_dir('test')
    with open(os.path.join(root, 'questions.json')) as f:
        rows = json.load(f)
    questions = {i: [(q, a) for q, a, j in rows if j == i][:QUESTIONS_PER_IMAGE]
                 for i in IMAGE_IDS}
    return root, questions


def frame_rgb(root: str, image_id: int) -> np.ndarray:
    """The camera frame showing one easy-VQA image: (256, 256, 3) uint8 RGB."""
    bgr = cv2.imread(os.path.join(root, 'images', f'{image_id}.png'), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f'easy-VQA test image {image_id} missing under {root}')
    big = cv2.resize(bgr, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(big[:, :, ::-1])


def jpeg(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode('.jpg', rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok, 'OpenCV could not encode a JPEG'
    return data.tobytes()


def decoded_frame(rgb: np.ndarray, transport: str) -> np.ndarray:
    """What a subscriber decodes from the frame's message (JPEG is lossy)."""
    if transport == 'raw':
        return rgb
    return cv2.imdecode(np.frombuffer(jpeg(rgb), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]


def schedule():
    """(frames, questions): frames as {stamp: [sec, nanosec], frame_id, image_id} and
    questions as {question, answer, image_id, t_ns}, both in time order."""
    _root, qa = _dataset()
    frames, questions = [], []
    for k, image_id in enumerate(IMAGE_IDS):
        start = START_NS + k * FRAMES_PER_IMAGE * FRAME_PERIOD_NS
        for j in range(FRAMES_PER_IMAGE):
            t = start + j * FRAME_PERIOD_NS
            frames.append({'stamp': [t // 10**9, t % 10**9], 'frame_id': FRAME_ID,
                           'image_id': image_id})
        for (q, a), offset in zip(qa[image_id], QUESTION_OFFSETS_NS):
            questions.append({'question': q, 'answer': a, 'image_id': image_id,
                              't_ns': start + offset})
    return frames, questions


def write_bag(path, transport: str = 'raw', storage: str = 'mcap') -> Path:
    """Write one fixture bag (a new directory) and its expected answers; returns the path."""
    if transport not in TOPICS:
        raise ValueError(f"transport must be one of {', '.join(TOPICS)}, not {transport!r}")
    path = Path(path)
    root, _qa = _dataset()
    frames, questions = schedule()
    camera_topic, camera_type = TOPICS[transport]
    ts = make_typestore()
    Header, Time = ts.types['std_msgs/msg/Header'], ts.types['builtin_interfaces/msg/Time']
    Image = ts.types['sensor_msgs/msg/Image']
    Compressed = ts.types['sensor_msgs/msg/CompressedImage']
    String = ts.types[STRING_TYPE]
    pixels = {i: frame_rgb(root, i) for i in IMAGE_IDS}
    messages = []   # (t_ns, topic, message)
    for f in frames:
        sec, nsec = f['stamp']
        header = Header(stamp=Time(sec=sec, nanosec=nsec), frame_id=f['frame_id'])
        rgb = pixels[f['image_id']]
        if transport == 'raw':
            bgr = np.ascontiguousarray(rgb[:, :, ::-1])
            msg = Image(header=header, height=FRAME_SIZE, width=FRAME_SIZE, encoding='bgr8',
                        is_bigendian=0, step=FRAME_SIZE * 3, data=bgr.reshape(-1))
        else:   # image_transport's format string for a JPEG of a bgr8 image
            msg = Compressed(header=header, format='bgr8; jpeg compressed bgr8',
                             data=np.frombuffer(jpeg(rgb), np.uint8))
        messages.append((sec * 10**9 + nsec + TRANSPORT_DELAY_NS, camera_topic, msg))
    messages += [(q['t_ns'], QUESTION_TOPIC, String(data=q['question'])) for q in questions]
    with BagWriter(path, storage, ts) as bag:
        bag.add_topic(camera_topic, camera_type, [bag_qos(depth=10)])
        bag.add_topic(QUESTION_TOPIC, STRING_TYPE, [bag_qos(depth=10)])
        for t, topic, msg in sorted(messages, key=lambda m: m[0]):
            bag.write_message(topic, t, msg)
    expected = {'format': EXPECTED_FORMAT, 'image_topic': camera_topic,
                'question_topic': QUESTION_TOPIC, 'frames': frames,
                'questions': [{k: q[k] for k in ('question', 'answer', 'image_id')}
                              for q in questions]}
    (path / EXPECTED_FILE).write_text(json.dumps(expected, indent=1) + '\n')
    return path


def write_all(out_dir) -> dict:
    """All four fixtures ({raw, compressed} x {mcap, sqlite3}) under `out_dir`: {name: path}."""
    out = {}
    for name in FIXTURES:
        _, transport, storage = name.rsplit('_', 2)
        out[name] = write_bag(Path(out_dir) / name, transport, storage)
    return out


def load_expected(bag_or_file) -> dict:
    """Expected answers of a bag: `<bag>/expected_answers.json`, or a given JSON file.

    The file is {"questions": [{"question": ..., "answer": ...}, ...]} (or just that
    list) in the order the questions are published; other keys are optional
    (`frames` with `image_id`s lets a scorer check that answers are about the right image).
    """
    path = Path(bag_or_file)
    if path.is_dir():
        path = path / EXPECTED_FILE
    with open(path) as f:
        data = json.load(f)
    if isinstance(data, list):
        data = {'questions': data}
    for i, q in enumerate(data.get('questions', [])):
        if not isinstance(q, dict) or not {'question', 'answer'} <= set(q):
            raise ValueError(f'{path}: questions[{i}] needs "question" and "answer" keys')
    return data


# -- golden captions -----------------------------------------------------------------------

def checkpoint_digest(checkpoint: str) -> str:
    with open(os.path.join(checkpoint, 'model.safetensors'), 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def golden_captions(checkpoint: str = '') -> dict:
    """The caption the model gives each fixture image, per transport, computed without ROS
    on the pixels a subscriber decodes; replays through the nodes must reproduce them."""
    from ..engine import default_checkpoint, InferenceEngine
    checkpoint = checkpoint or default_checkpoint()
    engine = InferenceEngine(checkpoint, threads=1)   # as the nodes run it
    root, _qa = _dataset()
    golden = {'checkpoint_sha256': checkpoint_digest(checkpoint),
              'refresh': 'python -m vla_ros.bag.fixtures --update-golden'}
    for transport in TOPICS:
        golden[transport] = {str(i): engine.caption(decoded_frame(frame_rgb(root, i),
                                                                  transport)).text
                             for i in IMAGE_IDS}
    return golden


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m vla_ros.bag.fixtures', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', help='write the four fixture bags into this directory')
    p.add_argument('--update-golden', action='store_true',
                   help='recompute the golden captions for the checkpoint')
    p.add_argument('--golden', default=str(GOLDEN_PATH), help='golden file (default: %(default)s)')
    p.add_argument('--checkpoint', default='', help='checkpoint (default: the bundled model)')
    args = p.parse_args(argv)
    if not (args.out or args.update_golden):
        p.error('nothing to do: give --out DIR and/or --update-golden')
    if args.out:
        for name, path in write_all(args.out).items():
            print(f'{name}: {path}')
    if args.update_golden:
        golden = golden_captions(args.checkpoint)
        Path(args.golden).parent.mkdir(parents=True, exist_ok=True)
        Path(args.golden).write_text(json.dumps(golden, indent=1, sort_keys=True) + '\n')
        print(f"golden captions for checkpoint {golden['checkpoint_sha256']} -> {args.golden}",
              file=sys.stderr)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
