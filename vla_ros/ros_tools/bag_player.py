"""Publish a ROS 2 bag over rclpy with its recorded timing: `vla-ros bag play`.

What `ros2 bag play` does, for machines without rosbag2. Messages go out as the CDR bytes
stored in the bag (rclpy's publish() accepts serialized bytes), never deserialised and
re-serialised: byte-exact, cheap for large images, and independent of rosidl_runtime_py
(not installed with the PyPI wheels). The publisher still needs the message's Python
class for its type support, so a type whose package is not importable is skipped with a
warning. Each topic is published with the QoS recorded in the bag (reliable/volatile,
depth 10 when none was recorded).
"""
import importlib
import threading
import time
from collections import Counter, deque

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..bag.bag_io import bag_topics, Pacer, read_messages


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the generated Python class, or None if not importable.

    (What rosidl_runtime_py's get_message does; that package is not in the PyPI wheels.)
    """
    pkg, kind, name = msgtype.split('/')
    try:
        return getattr(importlib.import_module(f'{pkg}.{kind}'), name)
    except (ImportError, AttributeError):
        return None


def qos_from_bag(profiles) -> QoSProfile:
    """Playback QoS from a topic's recorded offered QoS profiles (rosbags Qos)."""
    names = {p.reliability.name for p in profiles}
    reliable = not profiles or names != {'BEST_EFFORT'}
    latched = bool(profiles) and {p.durability.name for p in profiles} == {'TRANSIENT_LOCAL'}
    depth = max([p.depth for p in profiles] + [10])
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def parse_remaps(pairs) -> dict:
    """['/from:=/to', ...] (ros2 bag play's --remap syntax) -> {from: to}."""
    out = {}
    for pair in pairs or ():
        src, sep, dst = pair.partition(':=')
        if not (sep and src and dst):
            raise ValueError(f"remap {pair!r} is not FROM:=TO")
        out[src] = dst
    return out


class BagPlayer(Node):
    """Publishers for a bag's topics (optionally only `topics`, renamed by `remap`)."""

    NODE_NAME = 'bag_player'

    def __init__(self, bag, topics=None, remap=None, **kwargs):
        super().__init__(kwargs.pop('node_name', self.NODE_NAME), **kwargs)
        self.bag = bag
        remap = remap or {}
        self.topics = {t.topic: t for t in bag_topics(bag) if not topics or t.topic in topics}
        missing = set(topics or ()) - set(self.topics)
        if missing:
            raise ValueError(f"{bag}: no topic {', '.join(sorted(missing))} in the bag")
        self.pubs = {}
        for topic, info in self.topics.items():
            cls = message_class(info.msgtype)
            if cls is None:
                self.get_logger().warning(f'not playing {topic}: message type {info.msgtype} '
                                          'is not importable (source its workspace)')
                continue
            self.pubs[topic] = self.create_publisher(cls, remap.get(topic, topic),
                                                     qos_from_bag(info.qos))
        self.published = Counter()

    def output_topic(self, bag_topic: str) -> str:
        return self.pubs[bag_topic].topic_name

    def message_count(self) -> int:
        return sum(self.topics[t].count for t in self.pubs)

    def wait_for_subscribers(self, counts: dict, timeout: float = 10.0) -> bool:
        """Wait until each bag topic in `counts` has at least that many subscribers."""
        end = time.monotonic() + timeout
        while any(self.pubs[t].get_subscription_count() < n for t, n in counts.items()):
            if time.monotonic() > end:
                return False
            time.sleep(0.02)
        return True

    def play(self, rate: float = 1.0, loops: int = 1, stop: threading.Event = None,
             progress=None, deliver=None) -> dict:
        """Publish the bag `loops` times (0 = until `stop`), paced by the recorded times.

        Blocks; call it from a thread that is not spinning an executor. `progress` is an
        optional tqdm-like object (update(n)). `deliver(msg, publish)`, if given, publishes
        each message itself (calling publish() once or more) and may wait for its effect;
        the bag's clock runs on meanwhile, so later messages catch up (they go out late,
        not at a slower pace). Returns counts and how late publishing ran.
        """
        stop = stop or threading.Event()

        def wait(seconds) -> bool:   # True: stop (asked to, or rclpy shut down by Ctrl-C)
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                if stop.wait(min(left, 0.2)) or not self.context.ok():
                    return True
            return False
        pacer = Pacer(rate, wait=wait)
        late = deque(maxlen=10_000)   # recent lateness only: --loop may run for days
        passes = 0
        while not stop.is_set() and (loops == 0 or passes < loops):
            for msg in read_messages(self.bag, list(self.pubs)):
                lateness = pacer.wait_for(msg.timestamp)
                if lateness is None or stop.is_set():
                    return self._stats(passes, late)
                publish = self.pubs[msg.topic].publish
                try:
                    if deliver is None:
                        publish(msg.data)
                    else:
                        deliver(msg, lambda: publish(msg.data))
                except Exception:
                    if stop.is_set() or not self.context.ok():   # Ctrl-C shut rclpy down
                        return self._stats(passes, late)
                    raise
                self.published[msg.topic] += 1
                late.append(lateness)
                if progress is not None:
                    progress.update(1)
            passes += 1
            pacer.restart()
        return self._stats(passes, late)

    def wait_for_acks(self, timeout: float = 2.0) -> bool:
        """Wait until reliable subscribers acknowledged everything published: a process
        that exits right after the last publish would otherwise lose the tail."""
        end = time.monotonic() + timeout
        return all(pub.wait_for_all_acked(Duration(seconds=max(0.0, end - time.monotonic())))
                   for pub in self.pubs.values())

    def _stats(self, passes, late) -> dict:
        late = sorted(late)
        return {'passes': passes, 'published': dict(self.published),
                'late_p50_ms': round(late[len(late) // 2] * 1000, 2) if late else None,
                'late_max_ms': round(late[-1] * 1000, 2) if late else None}
