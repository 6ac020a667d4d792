"""Record topics into a ROS 2 bag (mcap or sqlite3): `vla-ros bag record`.

What `ros2 bag record` does, for machines without rosbag2. Subscriptions are raw
(rclpy hands over the CDR bytes), so messages are written exactly as received, stamped
with the node clock at arrival (rosbag2's receive time, mcap `log_time`) and with the
publisher's source timestamp from the message info (rosbag2's send time, mcap
`publish_time`; sqlite3 bags have no place for it). Topics are subscribed as soon
as they appear in the graph, with their type from the graph; the QoS adapts to the
publishers (best effort if any publisher is, so it is heard; transient local only if all
are) and the publishers' offered QoS is stored with the topic, as rosbag2 does.
"""
import threading
from collections import Counter

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..bag.bag_io import (bag_qos, BagError, BagWriterThread, DEFAULT_STORAGE, ensure_type,
                          make_typestore)
from .bag_player import message_class

# Not worth recording with --all: per-node parameter and log chatter.
SKIPPED_WITH_ALL = ('/rosout', '/parameter_events')
DISCOVERY_PERIOD_S = 0.5


class BagRecorder(Node):
    """Writes `topics` (or every topic, `all_topics`) to a new bag at `out`.

    `types` ({topic: msgtype}) subscribes at once, before any publisher exists; other topics
    are subscribed when discovery first shows them. `rename` ({topic: name in bag}) lets
    a namespaced rig record `/ns/caption` as `/caption`. Call close() to finish the bag.
    """

    NODE_NAME = 'bag_recorder'

    def __init__(self, out, topics=(), all_topics=False, storage=DEFAULT_STORAGE, types=None,
                 rename=None, on_message=None, **kwargs):
        super().__init__(kwargs.pop('node_name', self.NODE_NAME), **kwargs)
        self._lock = threading.Lock()
        self.writer = None
        self.counts = Counter()
        self._typestore = make_typestore()   # to check types before they reach the writer
        self.writer = BagWriterThread(out, storage)
        self._rename = rename or {}
        self._on_message = on_message
        self.all_topics = all_topics
        self.wanted = {self._resolve(t) for t in topics}
        self._subs_by_topic = {}
        try:
            for topic, msgtype in (types or {}).items():
                topic = self._resolve(topic)
                self.wanted.add(topic)
                self._subscribe(topic, msgtype, [])
            self._discover()
        except Exception:
            self.close()   # leave a complete (if empty) bag, not a half-written one
            raise
        self._timer = self.create_timer(DISCOVERY_PERIOD_S, self._discover)

    def _resolve(self, topic: str) -> str:
        resolve = getattr(self, 'resolve_topic_name', None)   # rclpy >= Iron
        return resolve(topic) if resolve else topic if topic.startswith('/') else '/' + topic

    def _discover(self):
        for topic, msgtypes in self.get_topic_names_and_types():
            if topic in self._subs_by_topic:
                continue
            if topic in self.wanted or (self.all_topics and topic not in SKIPPED_WITH_ALL):
                if len(msgtypes) > 1:
                    self.get_logger().warning(f'not recording {topic}: several types '
                                              f'{msgtypes}', once=True)
                    continue
                self._subscribe(topic, msgtypes[0], self.get_publishers_info_by_topic(topic))

    def _subscribe(self, topic: str, msgtype: str, publishers):
        cls, reason = message_class(msgtype), ''
        try:
            ensure_type(self._typestore, msgtype)   # a definition to store in the bag
        except BagError as e:
            reason = str(e)
        if cls is None or reason:
            self._subs_by_topic[topic] = None   # do not retry every discovery tick
            self.get_logger().warning(f'not recording {topic}: ' + (
                reason or f'type {msgtype} is not importable (source its workspace)'))
            return
        profiles = [p.qos_profile for p in publishers]
        best_effort = any(p.reliability == ReliabilityPolicy.BEST_EFFORT for p in profiles)
        latched = bool(profiles) and all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL
                                         for p in profiles)
        offered = [bag_qos(p.reliability != ReliabilityPolicy.BEST_EFFORT,
                           p.durability == DurabilityPolicy.TRANSIENT_LOCAL,
                           p.depth or 10) for p in profiles] or [bag_qos()]
        name = self._rename.get(topic, topic)
        with self._lock:
            self.writer.add_topic(name, msgtype, offered)
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=100,
            reliability=ReliabilityPolicy.BEST_EFFORT if best_effort
            else ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched
            else DurabilityPolicy.VOLATILE)
        self._subs_by_topic[topic] = self.create_subscription(
            cls, topic, lambda data, info, name=name: self._write(name, data, info), qos,
            raw=True)
        self.get_logger().info(f'recording {topic} ({msgtype})'
                               + (f' as {name}' if name != topic else ''))

    def _write(self, name: str, data: bytes, info=None):
        """Write a message received now; `info`: rclpy's MessageInfo (its source_timestamp is
        when the publisher sent it, 0 where the middleware does not say)."""
        now = self.get_clock().now().nanoseconds
        sent = (info or {}).get('source_timestamp') or None
        with self._lock:
            if self.writer is None:   # closed while a message was in flight
                return
            self.writer.write(name, now, data, sent)
            self.counts[name] += 1
        if self._on_message is not None:
            self._on_message(name)

    def subscribed(self) -> list:
        return sorted(t for t, s in self._subs_by_topic.items() if s is not None)

    def matched(self) -> bool:
        """Whether every subscription has matched at least one publisher (so nothing sent
        from now on is missed for want of discovery)."""
        subs = [s for s in self._subs_by_topic.values() if s is not None]
        return bool(subs) and all(s.get_publisher_count() > 0 for s in subs)

    def not_seen(self) -> list:
        """Requested topics that never appeared in the graph."""
        return sorted(self.wanted - set(self._subs_by_topic))

    def close(self) -> dict:
        """Finish the bag (metadata.yaml); returns {topic: messages written}."""
        with self._lock:
            writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()
        return dict(self.counts)

    def destroy_node(self):
        self.close()
        return super().destroy_node()
