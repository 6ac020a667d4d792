"""Read and write ROS 2 bags (mcap or sqlite3) with the pure-Python `rosbags` library.

No rclpy here, so this works on machines without ROS. Messages stay CDR bytes end to
end (the same bytes rosbag2 stores and the middleware sends), so a bag written here is
read by `ros2 bag info/play` on a real install and vice versa. Bags are written in
rosbag2 metadata version 8 (Jazzy's; Kilted reads it too), with every type's message
definition and RIHS01 type hash embedded, as rosbag2 does (rosbag2_writer.py completes
what rosbags leaves out: mcap CRCs, publish times, the ROS distro).

Types come from rosbags' ROS 2 Kilted typestore plus, for anything it lacks (vla_ros's
own Caption and Answer, a robot's custom messages), the `.msg` files of an installed
ROS package found through AMENT_PREFIX_PATH.
"""
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,
                                QosReliability, QosTime)
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin
from rosbags.typesys import get_types_from_msg, get_typestore, Stores

from .rosbag2_writer import BagFileWriter
from .type_hash import rihs01

BAG_VERSION = 8
STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
DEFAULT_STORAGE = 'mcap'
IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
STRING_TYPE = 'std_msgs/msg/String'

SOURCE_ROOT = Path(__file__).resolve().parents[2]   # the repository, under symlink installs


class BagError(RuntimeError):
    """A bag that cannot be read or written as asked; the message says why."""


# -- types ---------------------------------------------------------------------------------

def _msg_file(msgtype: str) -> Optional[Path]:
    """`pkg/msg/Name` -> the installed (or, for vla_ros, source-tree) Name.msg, or None."""
    pkg, _, name = msgtype.split('/')
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    candidates = [Path(p, 'share', pkg, 'msg', f'{name}.msg') for p in prefixes]
    if pkg == 'vla_ros':   # pip installs and bare checkouts have no ament index
        candidates += [SOURCE_ROOT / 'msg' / f'{name}.msg',
                       Path(sys.prefix, 'share', pkg, 'msg', f'{name}.msg')]
    return next((c for c in candidates if c.is_file()), None)


def _referenced_types(node) -> set:
    """Message type names a rosbags parse tree refers to (nested in arrays/sequences)."""
    if isinstance(node, str):
        return {node} if '/' in node else set()
    if isinstance(node, (tuple, list)):
        return set().union(*(_referenced_types(n) for n in node)) if node else set()
    return set()


def ensure_type(typestore, msgtype: str) -> None:
    """Register `msgtype` (and the types it uses) from its .msg file if the store lacks it.

    Raises BagError naming the type when no definition can be found.
    """
    if msgtype in typestore.fielddefs:
        return
    path = _msg_file(msgtype)
    if path is None:
        raise BagError(f'no definition of {msgtype}: not a ROS 2 Kilted core type and no '
                       f'{msgtype.split("/")[-1]}.msg under AMENT_PREFIX_PATH '
                       '(source the workspace that builds it)')
    types = get_types_from_msg(path.read_text(), msgtype)
    for dep in _referenced_types(types[msgtype][1]) - {msgtype}:
        ensure_type(typestore, dep)
    typestore.register(types)


def make_typestore():
    """ROS 2 Kilted types plus vla_ros's Caption and Answer (one new store per call).

    Without the .msg files (a pip install of the wheel) the store just lacks those two;
    using them then raises the BagError of ensure_type().
    """
    typestore = get_typestore(Stores.ROS2_KILTED)
    for name in ('Caption', 'Answer'):
        try:
            ensure_type(typestore, f'vla_ros/msg/{name}')
        except BagError:
            pass
    return typestore


# -- QoS recorded with each topic ----------------------------------------------------------

def bag_qos(reliable: bool = True, transient_local: bool = False, depth: int = 10) -> Qos:
    """A keep-last QoS profile as rosbag2 stores it (offered_qos_profiles)."""
    zero = QosTime(0, 0)   # deadline, lifespan, lease: 0 = the middleware default (none)
    return Qos(QosHistory.KEEP_LAST, depth,
               QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
               zero, zero, QosLiveliness.AUTOMATIC, zero, False)


# -- writing -------------------------------------------------------------------------------

class BagWriter:
    """A new ROS 2 bag directory; add topics, then write CDR bytes or rosbags messages.

    Use as a context manager (the bag's metadata.yaml is written on close).
    """

    def __init__(self, path, storage: str = DEFAULT_STORAGE, typestore=None):
        if storage not in STORAGES:
            raise BagError(f"storage must be one of {', '.join(STORAGES)}, not {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f'{self.path} exists already; rosbag2 bags are never overwritten')
        self.typestore = typestore or make_typestore()
        self._writer = BagFileWriter(self.path, version=BAG_VERSION,
                                     storage_plugin=STORAGES[storage])
        self._writer.open()
        self._connections = {}
        self.counts = {}

    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = ()) -> None:
        ensure_type(self.typestore, msgtype)
        msgdef, _ = self.typestore.generate_msgdef(msgtype, ros_version=2)
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, msgdef=msgdef, rihs01=rihs01(self.typestore, msgtype),
            offered_qos_profiles=list(qos))
        self.counts[topic] = 0

    def has_topic(self, topic: str) -> bool:
        return topic in self._connections

    def write(self, topic: str, timestamp_ns: int, data: bytes,
              publish_time_ns: Optional[int] = None) -> None:
        """Write one CDR-serialised message received (or due) at `timestamp_ns` and sent at
        `publish_time_ns` (default: the same; only mcap bags keep it)."""
        self._writer.write(self._connections[topic], timestamp_ns, data, publish_time_ns)
        self.counts[topic] += 1

    def write_message(self, topic: str, timestamp_ns: int, msg) -> None:
        """Serialise a rosbags message object of the topic's type and write it."""
        msgtype = self._connections[topic].msgtype
        self.write(topic, timestamp_ns, bytes(self.typestore.serialize_cdr(msg, msgtype)))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BagWriterThread:
    """A BagWriter owned by one thread, fed through a queue.

    For writers fed from executor callbacks: those run on several threads, and Python's
    sqlite3 refuses a connection used from a thread other than the one that opened it.
    Calls return at once; a write error is kept and raised by close().
    """

    def __init__(self, path, storage: str = DEFAULT_STORAGE):
        self._queue = queue.Queue()
        self._error = None
        opened = threading.Event()

        def run():
            try:
                writer = BagWriter(path, storage)
            except Exception as e:  # noqa: BLE001 - handed to the constructor's caller
                self._error = e
                return
            finally:
                opened.set()
            while (op := self._queue.get()) is not None:
                try:
                    getattr(writer, op[0])(*op[1:])
                except Exception as e:  # noqa: BLE001 - reported by close()
                    self._error = self._error or e
            writer.close()

        self._thread = threading.Thread(target=run, name='bag_writer', daemon=True)
        self._thread.start()
        opened.wait()
        if self._error is not None:
            raise self._error

    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = ()) -> None:
        self._queue.put(('add_topic', topic, msgtype, qos))

    def write(self, topic: str, timestamp_ns: int, data: bytes,
              publish_time_ns: Optional[int] = None) -> None:
        self._queue.put(('write', topic, timestamp_ns, data, publish_time_ns))

    def close(self) -> None:
        """Write what is queued, finish the bag; raises the first write error, if any."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise BagError(f'writing the bag failed: {error}') from error


# -- reading -------------------------------------------------------------------------------

@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    timestamp: int          # ns; rosbag2's receive time (what `ros2 bag play` paces by)
    data: bytes             # CDR, with its 4-byte encapsulation header


@dataclass(frozen=True)
class TopicSummary:
    topic: str
    msgtype: str
    count: int
    qos: tuple              # offered QoS profiles recorded with the topic (rosbags Qos)


def _open(path) -> Reader:
    path = Path(path)
    if not path.exists():
        raise BagError(f'{path}: no such bag')
    if path.is_dir() and not (path / 'metadata.yaml').is_file():
        files = sorted(p for p in path.iterdir() if p.suffix in ('.mcap', '.db3'))
        raise BagError(f'{path}: not a readable ROS 2 bag: no metadata.yaml in it' + (
            f" (found {', '.join(p.name for p in files)}: a bare {files[0].suffix[1:]} file "
            f'without the metadata rosbag2 writes when a recording ends; give the file '
            f'itself, {files[0]}, to read it)' if files else ' and no .mcap or .db3 file'))
    try:
        reader = Reader(path)
        reader.open()
    except Exception as e:  # noqa: BLE001 - rosbags raises several types for bad bags
        raise BagError(f'{path}: not a readable ROS 2 bag ({type(e).__name__}: {e})') from e
    return reader


def bag_topics(path) -> list:
    """[TopicSummary] of a bag, sorted by topic name."""
    reader = _open(path)
    try:
        return [TopicSummary(topic, info.msgtype or '(mixed types)', info.msgcount,
                             tuple(q for c in info.connections
                                   for q in c.ext.offered_qos_profiles))
                for topic, info in sorted(reader.topics.items())]
    finally:
        reader.close()


def read_messages(path, topics: Optional[Sequence[str]] = None) -> Iterator[BagMessage]:
    """Messages of a bag (optionally only `topics`) in timestamp order, read lazily."""
    reader = _open(path)
    try:
        wanted = [c for c in reader.connections if topics is None or c.topic in topics]
        if topics is not None and not wanted:
            return
        try:
            for conn, timestamp, data in reader.messages(connections=wanted):
                yield BagMessage(conn.topic, conn.msgtype, timestamp, bytes(data))
        except ReaderError as e:   # e.g. a chunk whose CRC does not match: corrupted
            raise BagError(f'{path}: {e}') from e
    finally:
        reader.close()


def bag_summary(path) -> dict:
    """What `vla-ros bag info` prints, as a JSON-friendly dict."""
    path = Path(path)
    reader = _open(path)
    try:
        files = sorted(p for p in (path.iterdir() if path.is_dir() else [path])
                       if p.suffix in ('.mcap', '.db3'))
        summary = {
            'path': str(path),
            'files': [p.name for p in files],
            'size_bytes': sum(p.stat().st_size for p in files),
            'storage': 'mcap' if any(p.suffix == '.mcap' for p in files) else 'sqlite3',
            'messages': reader.message_count,
            'start_ns': reader.start_time if reader.message_count else 0,
            'end_ns': reader.end_time if reader.message_count else 0,
            'duration_s': reader.duration / 1e9 if reader.message_count else 0.0,
        }
    finally:
        reader.close()
    summary['topics'] = [
        {'topic': t.topic, 'type': t.msgtype, 'count': t.count,
         'rate_hz': round((t.count - 1) / summary['duration_s'], 2)
         if t.count > 1 and summary['duration_s'] > 0 else None,
         'qos': [{'reliability': q.reliability.name.lower(),
                  'durability': q.durability.name.lower(), 'depth': q.depth} for q in t.qos]}
        for t in bag_topics(path)]
    return summary


def _clock(ns: int) -> str:
    return f'{time.strftime("%b %d %Y %H:%M:%S", time.gmtime(ns // 10**9))}.' \
           f'{ns % 10**9 // 10**6:03d} UTC ({ns / 1e9:.3f})'


def format_summary(s: dict) -> str:
    """The summary laid out like `ros2 bag info`."""
    lines = [f"Files:             {', '.join(s['files'])}",
             f"Bag size:          {s['size_bytes'] / 2**20:.1f} MiB",
             f"Storage id:        {s['storage']}",
             f"Duration:          {s['duration_s']:.3f}s",
             f"Start:             {_clock(s['start_ns'])}",
             f"End:               {_clock(s['end_ns'])}",
             f"Messages:          {s['messages']}",
             'Topic information:']
    width = max((len(t['topic']) for t in s['topics']), default=0)
    for t in s['topics']:
        rate = f" | ~{t['rate_hz']:g} Hz" if t['rate_hz'] else ''
        lines.append(f"  {t['topic']:{width}s} | {t['type']} | {t['count']} msgs{rate}")
    return '\n'.join(lines)


def header_of(typestore, msg: BagMessage):
    """(sec, nanosec, frame_id) of a message with a std_msgs/Header `header` field."""
    h = typestore.deserialize_cdr(msg.data, msg.msgtype).header
    return h.stamp.sec, h.stamp.nanosec, h.frame_id


# -- timing ----------------------------------------------------------------------------------

class Pacer:
    """Publishes on the bag's clock: a message recorded at bag time t is due at
    start + (t - first) / rate, where `start` is when the first message was due.

    Late messages (the publisher fell behind) go out at once; the lateness is returned
    so players can report it. `restart()` begins a new pass (for --loop).
    """

    def __init__(self, rate: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 wait: Optional[Callable[[float], bool]] = None):
        if not rate > 0:
            raise ValueError(f'rate must be > 0, got {rate}')
        self.rate, self.clock = rate, clock
        # wait(seconds) -> True when asked to stop (threading.Event.wait has this contract)
        self.wait = wait or (lambda s: time.sleep(s) or False)
        self.restart()

    def restart(self) -> None:
        self._first_ns = self._start = None

    def due(self, t_ns: int) -> float:
        """Clock time at which the message recorded at `t_ns` is due."""
        if self._first_ns is None:
            self._first_ns, self._start = t_ns, self.clock()
        return self._start + (t_ns - self._first_ns) / 1e9 / self.rate

    def wait_for(self, t_ns: int) -> Optional[float]:
        """Block until `t_ns` is due; seconds late (>= 0), or None if stopped meanwhile."""
        due = self.due(t_ns)
        delay = due - self.clock()
        if delay > 0 and self.wait(delay):
            return None
        return max(0.0, self.clock() - due)


def choose_topics(topics, image_topic: Optional[str] = None,
                  question_topic: Optional[str] = None) -> tuple:
    """(camera topic summary, question topic summary or None) to replay from a bag.

    Given names are checked; otherwise the one Image/CompressedImage topic is the camera and
    a String topic named `question` (any namespace) the questions. Raises BagError.
    """
    by_name = {t.topic: t for t in topics}
    images = [t for t in topics if t.msgtype in IMAGE_TYPES]
    if image_topic:
        if by_name.get(image_topic) not in images:
            raise BagError(f'{image_topic} is not an Image/CompressedImage topic of the bag; '
                           f"camera topics: {', '.join(t.topic for t in images) or 'none'}")
        image = by_name[image_topic]
    elif len(images) == 1:
        image = images[0]
    else:
        raise BagError('no camera topic in the bag' if not images else
                       'several camera topics; choose one with --image-topic: '
                       + ', '.join(t.topic for t in images))
    if question_topic:
        if by_name.get(question_topic) is None or \
                by_name[question_topic].msgtype != STRING_TYPE:
            raise BagError(f'{question_topic} is not a std_msgs/msg/String topic of the bag')
        return image, by_name[question_topic]
    named = [t for t in topics if t.msgtype == STRING_TYPE
             and t.topic.rstrip('/').split('/')[-1] == 'question']
    return image, (named[0] if len(named) == 1 else None)
