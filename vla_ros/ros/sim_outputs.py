"""What the sim node publishes about the 3D robot besides its image: `camera_info` and TF.

Pure message building (no node state) plus a small broadcaster, so the values can be
tested without a ROS graph and without tf2_msgs. Frames follow REP 103/105:

    odom -> base_link             the robot on the floor (dynamic, on /tf)
    base_link -> camera_link      ahead and up, pitched down (static per episode)
    camera_link -> camera_optical_frame   z forward, x right, y down (static)

The image and `camera_info` carry the optical frame. The base -> camera transform comes
from World3D.camera_info(), whose camera height and pitch change with each episode's
style, so /tf_static is published again on every reset.

TF goes out as tf2_msgs/TFMessage, the message tf2_ros's broadcasters publish. tf2_msgs
is part of every ROS install, but not of the PyPI wheels this package is tested with:
there the broadcaster is not available and says why (`TFBroadcaster.unavailable`).
"""
import math
from typing import Optional, Sequence

from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo

try:
    from tf2_msgs.msg import TFMessage
    TF_UNAVAILABLE = None
except ImportError as e:   # the PyPI ROS wheels; a real ROS install has it
    TFMessage = None
    TF_UNAVAILABLE = f'tf2_msgs does not import ({e}); install ros-$ROS_DISTRO-tf2-msgs'

# tf2_ros's own QoS: /tf like DynamicBroadcasterQoS, /tf_static like StaticBroadcasterQoS
# (latched, so a listener that starts later still gets the camera's mounting).
TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                    reliability=ReliabilityPolicy.RELIABLE)
TF_STATIC_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                           reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


def camera_info_message(info: dict, header) -> CameraInfo:
    """sensor_msgs/CameraInfo from World3D.camera_info(): pinhole, no distortion, R = I."""
    msg = CameraInfo()
    msg.header = header
    msg.width, msg.height = int(info['width']), int(info['height'])
    msg.distortion_model = info['distortion_model']
    msg.d = [float(v) for v in info['D']]
    msg.k = [float(v) for v in info['K'].ravel()]               # 3x3, row-major
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]      # monocular: no rectification
    msg.p = [float(v) for v in info['P'].ravel()]               # 3x4, row-major
    return msg


def transform(stamp, parent: str, child: str, translation: Sequence[float],
              rotation: Sequence[float]) -> TransformStamped:
    """geometry_msgs/TransformStamped parent -> child; rotation is a quaternion x y z w."""
    t = TransformStamped()
    t.header.stamp = stamp
    t.header.frame_id, t.child_frame_id = parent, child
    v, q = t.transform.translation, t.transform.rotation
    v.x, v.y, v.z = (float(c) for c in translation)
    q.x, q.y, q.z, q.w = (float(c) for c in rotation)
    return t


def yaw_quaternion(theta: float) -> tuple:
    """(x, y, z, w) of a rotation by `theta` about z."""
    return 0.0, 0.0, math.sin(theta / 2), math.cos(theta / 2)


def odom_transform(pose, stamp, odom_frame: str, base_frame: str) -> TransformStamped:
    """odom -> base_link for a robot at pose (x, y, theta) on the floor."""
    return transform(stamp, odom_frame, base_frame, (pose.x, pose.y, 0.0),
                     yaw_quaternion(pose.theta))


def camera_transforms(info: dict, stamp, base_frame: str, camera_frame: str,
                      optical_frame: str) -> list:
    """base_link -> camera_link -> optical frame, from World3D.camera_info()'s transforms."""
    return [transform(stamp, base_frame, camera_frame, *info['base_to_camera']),
            transform(stamp, camera_frame, optical_frame, *info['camera_to_optical'])]


class TFBroadcaster:
    """Publishes transforms on /tf and /tf_static where tf2_msgs imports; otherwise does
    nothing, and `unavailable` says why."""

    def __init__(self, node):
        self.unavailable: Optional[str] = TF_UNAVAILABLE
        self._dynamic = self._static = None
        if TFMessage is not None:
            self._dynamic = node.create_publisher(TFMessage, '/tf', TF_QOS)
            self._static = node.create_publisher(TFMessage, '/tf_static', TF_STATIC_QOS)

    def send(self, transforms: list) -> None:
        if self._dynamic is not None:
            self._dynamic.publish(TFMessage(transforms=transforms))

    def send_static(self, transforms: list) -> None:
        """All static transforms in one message: /tf_static keeps only the last one."""
        if self._static is not None:
            self._static.publish(TFMessage(transforms=transforms))
