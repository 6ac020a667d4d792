"""Image source node: publishes frames for demos and tests, no camera needed.

Publishes `image` (sensor_msgs/Image) and optionally `image/compressed` at `rate` Hz,
stamped with the time of publishing and `frame_id`. Frames come from the bundled
easy-VQA test images (default), the procedural scene generator, a folder of images, a
video file or an OpenCV camera device (see frame_sources.py).
"""
import cv2
from rclpy.exceptions import InvalidParameterValueException
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from .diagnostics import NodeDiagnostics, OK, WARN
from .frame_sources import open_source, SOURCES
from .image_conversion import rgb_to_compressed, rgb_to_image
from .params import declare_parameters, Param, qos_profile
from .runner import run_node

PARAMS = (
    Param('source', 'easy_vqa', 'where frames come from', choices=SOURCES),
    Param('path', '', 'image folder (source folder) or video file (source video)'),
    Param('camera_index', 0, 'OpenCV device index (source camera)', range=(0, 63)),
    Param('rate', 2.0, 'frames published per second', range=(0.01, 120.0)),
    Param('frame_id', 'camera', 'header.frame_id of every frame'),
    Param('loop', True, 'start again at the end of a folder, video or easy_vqa'),
    Param('seed', 0, 'random seed of the scenes source', range=(0, 2**31 - 1)),
    Param('width', 0, 'resize frames to this width (0 = as read; set with height)',
          range=(0, 8192)),
    Param('height', 0, 'resize frames to this height (0 = as read; set with width)',
          range=(0, 8192)),
    Param('encoding', 'rgb8', 'encoding of the raw `image` topic', choices=('rgb8', 'bgr8')),
    Param('publish_raw', True, 'publish sensor_msgs/Image on `image`'),
    Param('publish_compressed', False,
          'publish sensor_msgs/CompressedImage on `image/compressed`'),
    Param('compressed_format', 'jpeg', 'codec of `image/compressed`', choices=('jpeg', 'png')),
    Param('jpeg_quality', 90, 'JPEG quality of `image/compressed`', range=(1, 100)),
    Param('qos_reliability', 'reliable',
          'reliability of the image publishers; reliable reaches both kinds of subscriber',
          choices=('best_effort', 'reliable')),
    Param('qos_depth', 1, 'image publisher queue depth', range=(1, 100)),
)


class ImageSourceNode(Node):
    NODE_NAME = 'image_source'
    source = None       # until it is opened (destroy_node checks)

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        p = self.p = declare_parameters(self, PARAMS)
        if (p['width'] > 0) != (p['height'] > 0):
            raise InvalidParameterValueException(
                'width/height', (p['width'], p['height']), 'set both or neither')
        self.source = open_source(p['source'], p['path'], p['camera_index'], p['loop'],
                                  p['seed'])
        qos = qos_profile(p['qos_reliability'], p['qos_depth'])
        self.raw_pub = (self.create_publisher(Image, 'image', qos)
                        if p['publish_raw'] else None)
        self.compressed_pub = (self.create_publisher(CompressedImage, 'image/compressed', qos)
                               if p['publish_compressed'] else None)
        self.published = 0
        self.failed = ''
        self.timer = self.create_timer(1.0 / p['rate'], self._publish_next)
        self.diagnostics = NodeDiagnostics(self, self._diagnostic_report)
        self.get_logger().info(f"publishing {self.source.name} at {p['rate']:g} Hz")

    def _publish_next(self):
        try:
            rgb = self.source.read()
            if rgb is None:
                self.get_logger().info(f'{self.source.name}: no more frames; stopping')
                self.timer.cancel()
                return
            p = self.p
            if p['width'] > 0:
                rgb = cv2.resize(rgb, (p['width'], p['height']), interpolation=cv2.INTER_LINEAR)
            header = Header(stamp=self.get_clock().now().to_msg(), frame_id=p['frame_id'])
            if self.raw_pub is not None:
                self.raw_pub.publish(rgb_to_image(rgb, header, p['encoding']))
            if self.compressed_pub is not None:
                self.compressed_pub.publish(rgb_to_compressed(
                    rgb, header, p['compressed_format'], p['jpeg_quality']))
            self.published += 1
            self.failed = ''
            self.diagnostics.count('frames published')
        except Exception as e:  # noqa: BLE001 - a callback must not raise; next tick retries
            self.failed = f'{type(e).__name__}: {e}'
            self.get_logger().error(f'frame not published: {type(e).__name__}: {e}',
                                    throttle_duration_sec=5.0)

    def _diagnostic_report(self, values: dict):
        values['source'] = self.source.name
        values['rate (set)'] = self.p['rate']
        if self.failed:
            return WARN, f'last frame not published: {self.failed}'
        return OK, ''

    def destroy_node(self):
        if self.source is not None:
            self.source.close()
        return super().destroy_node()


def main(args=None):
    return run_node(ImageSourceNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
