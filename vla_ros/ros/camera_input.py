"""Camera subscriptions shared by the VLA and VQA nodes: `image` and `image/compressed`
into a FrameCache, with QoS and staleness from parameters.
"""
from sensor_msgs.msg import CompressedImage, Image

from ..preprocess import ImageError
from .frame_cache import FrameCache
from .image_conversion import check_compressed, check_image, compressed_to_rgb, image_to_rgb
from .params import Param, param_values, qos_profile

# Topic names are relative, so `image:=/camera/image_raw` (or a namespace) remaps them.
IMAGE_TOPIC = 'image'
COMPRESSED_TOPIC = 'image/compressed'

INPUT_PARAMS = (
    Param('image_transport', 'both',
          'camera topics to subscribe: raw `image`, `image/compressed`, or both',
          choices=('raw', 'compressed', 'both')),
    Param('qos_reliability', 'best_effort',
          'reliability of the camera subscriptions; best_effort (sensor-data style) '
          'hears reliable and best-effort publishers alike',
          choices=('best_effort', 'reliable')),
    Param('qos_depth', 1, 'camera subscription queue depth; 1 keeps only the newest frame',
          range=(1, 100)),
    Param('max_frame_age', 2.0,
          'seconds after arrival when the cached frame is too old to answer about '
          '(0 = no limit)',
          range=(0.0, 3600.0), dynamic=True),
)

LOG_THROTTLE_S = 5.0   # at most one line per this many seconds per kind of bad input


class CameraInput:
    """Subscribes to the camera topics of `node` and keeps the latest valid frame.

    Invalid frames are counted, logged (throttled, with the reason) and dropped; the
    callbacks never raise. `node` must have declared INPUT_PARAMS.
    """

    def __init__(self, node):
        self.node = node
        self.cache = FrameCache()
        p = param_values(node, INPUT_PARAMS)
        qos = qos_profile(p['qos_reliability'], p['qos_depth'])
        self.subscriptions = []
        if p['image_transport'] in ('raw', 'both'):
            self.subscriptions.append(node.create_subscription(
                Image, IMAGE_TOPIC, self._on_image, qos))
        if p['image_transport'] in ('compressed', 'both'):
            self.subscriptions.append(node.create_subscription(
                CompressedImage, COMPRESSED_TOPIC, self._on_compressed, qos))

    def topics(self) -> str:
        return ' / '.join(s.topic_name for s in self.subscriptions)

    def _on_image(self, msg):
        self._accept(msg, check_image, image_to_rgb)

    def _on_compressed(self, msg):
        self._accept(msg, check_compressed, compressed_to_rgb)

    def _accept(self, msg, check, decode):
        try:
            check(msg)
        except ImageError as e:
            n = self.cache.count_invalid()
            self.node.get_logger().warning(
                f'dropping invalid frame: {e} ({n} invalid so far)',
                throttle_duration_sec=LOG_THROTTLE_S)
            return
        except Exception as e:  # noqa: BLE001 - a callback must not raise
            self.cache.count_invalid()
            self.node.get_logger().error(f'dropping frame: {type(e).__name__}: {e}',
                                         throttle_duration_sec=LOG_THROTTLE_S)
            return
        self.cache.put(msg, decode)

    def usable_frame(self):
        """(frame, '') for the latest fresh frame, else (None, reason)."""
        frame = self.cache.latest()
        if frame is None:
            return None, f'no camera frame received yet on {self.topics()}'
        max_age = self.node.get_parameter('max_frame_age').value
        age = frame.age()
        if max_age > 0 and age > max_age:
            return None, (f'latest camera frame is stale: received {age:.1f} s ago '
                          f'(max_frame_age {max_age:g} s)')
        return frame, ''
