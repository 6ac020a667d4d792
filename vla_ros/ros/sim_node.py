"""Sim node: a simulated robot behind ROS topics, for demos and tests.

Two arenas (`world`): '2d' (vla_ros.sim, the default: a top-down "camera", the view the
shipped model was trained on) and '3d' (vla_ros.sim3d, MuJoCo: a forward perspective
camera at robot height, contacts from the physics).

Subscribes `cmd_vel` (geometry_msgs/Twist; linear.x m/s, angular.z rad/s) and integrates
it at `rate` Hz; like diff_drive, a command older than `cmd_vel_timeout` counts as zero.
A command that is not finite or beyond CMD_VEL_LIMIT is dropped with a (throttled) log
line; the previous one then times out as usual. Publishes every step `image`
(sensor_msgs/Image rgb8, stamped) and `odom` (nav_msgs/Odometry, odom -> base_link), at
`overview_rate` Hz `overview` (a view for humans, the target marked), and on
`sim_events` (std_msgs/String, JSON) what happens: `reset` (the arena's shapes), `reach`
/ `touch` (first time per shape), `wall`. The `reset` service (std_srvs/Trigger) starts
a new episode; episode k uses arena seed `seed` + k.

With world '3d' the image is `image_width` x `image_height` in `optical_frame_id`, and
also published: `camera_info` (same header as the image; the camera's real intrinsics)
and TF odom -> base_link -> camera_link -> optical frame on /tf and /tf_static where
tf2_msgs is installed (sim_outputs.py). With '2d' the image is `image_size` square in
`frame_id`.

The VLA node's `action_status` tells which instruction is being followed; the sim grounds
it to mark the target on the map and in `reach`/`touch` events. (Not the `instruction`
topic itself: `ros2 topic pub --once` publishes as soon as one subscriber matches, so a
second subscriber there could take the one message before the VLA node had matched.)
"""
import json
import math
import threading

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.exceptions import InvalidParameterValueException
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger

from ..msg import ActionStatus
from ..control.instructions import ground, InstructionRefused, parse_instruction
from ..sim.render import render_camera, render_overview
from ..sim.world import World, wrap_angle
from .image_conversion import rgb_to_image
from .params import declare_parameters, LATCHED_QOS, OUTPUT_QOS, Param
from .runner import run_node
from .sim_outputs import (camera_info_message, camera_transforms, odom_transform,
                          TFBroadcaster, yaw_quaternion)

MAX_IMAGE_3D = 640   # = sim3d.scene.MAX_RENDER, not imported: mujoco is needed only for '3d'
PARAMS = (
    Param('world', '2d', "'2d': the top-down arena the shipped model reads; '3d': MuJoCo "
          'with a perspective camera', choices=('2d', '3d')),
    Param('rate', 20.0, 'simulation steps per second; a camera frame is published each step',
          range=(1.0, 200.0)),
    Param('seed', 1_000_000, 'arena seed of the first episode; each reset takes the next one',
          range=(0, 2**31 - 1)),
    Param('image_size', 64, "2d: camera image side in pixels (the model reads 64x64)",
          range=(16, 1024)),
    Param('image_width', 96, '3d: camera image width in pixels', range=(16, MAX_IMAGE_3D)),
    Param('image_height', 96, '3d: camera image height in pixels', range=(16, MAX_IMAGE_3D)),
    Param('held_out_style', False, "3d: draw each episode's look from the held-out styles "
          '(textures, lighting training never uses), for evaluation'),
    Param('frame_id', 'camera', '2d: header.frame_id of camera images'),
    Param('camera_frame_id', 'camera_link', '3d: the camera body frame (x forward, z up)'),
    Param('optical_frame_id', 'camera_optical_frame',
          '3d: header.frame_id of images and camera_info (z forward, x right, y down)'),
    Param('odom_frame_id', 'odom', 'header.frame_id of odometry'),
    Param('base_frame_id', 'base_link', 'child_frame_id of odometry'),
    Param('overview_rate', 5.0, 'overview images per second (0 = none)', range=(0.0, 60.0)),
    Param('overview_size', 480, f'overview image side in pixels (3d: at most {MAX_IMAGE_3D})',
          range=(64, 4096)),
    Param('overview_view', 'top', "3d: 'top' (the whole arena) or 'chase' (behind the robot)",
          choices=('top', 'chase')),
    Param('cmd_vel_timeout', 0.5, 'seconds after which the last cmd_vel counts as zero',
          range=(0.01, 60.0)),
)
# m/s or rad/s: a command beyond this is a bug upstream, not a request to go fast, and is
# dropped; sane ones are clamped by the world to the robot's limits (0.5 m/s, 1.5 rad/s).
CMD_VEL_LIMIT = 100.0
LOG_THROTTLE_S = 5.0

# Camera frames: keep only the newest, reliable so both kinds of subscriber hear them.
IMAGE_QOS = QoSProfile(depth=1, reliability=OUTPUT_QOS.reliability, history=OUTPUT_QOS.history)
# Events are few and matter: late joiners get the last ones (e.g. the arena's shapes).
EVENT_QOS = LATCHED_QOS


def command_problem(linear: float, angular: float):
    """Why a cmd_vel (linear.x, angular.z) is dropped, or None when it is usable."""
    if not (math.isfinite(linear) and math.isfinite(angular)):
        return f'not finite (linear {linear}, angular {angular})'
    if abs(linear) > CMD_VEL_LIMIT or abs(angular) > CMD_VEL_LIMIT:
        return f'beyond {CMD_VEL_LIMIT:g} (linear {linear:g}, angular {angular:g})'
    return None


class SimNode(Node):
    NODE_NAME = 'sim'
    world = None     # until the first episode is made (destroy_node checks)

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        self.p = declare_parameters(self, PARAMS)
        self.is_3d = self.p['world'] == '3d'
        if self.is_3d and self.p['overview_size'] > MAX_IMAGE_3D:
            raise InvalidParameterValueException(
                'overview_size', self.p['overview_size'],
                f'the 3d world renders at most {MAX_IMAGE_3D} px')
        # World3D is not thread-safe: callbacks here run one at a time, and any other
        # thread that reads or changes `world` (a test, an expert policy) holds this.
        self.lock = threading.RLock()
        self.dropped_commands = 0
        self.image_pub = self.create_publisher(Image, 'image', IMAGE_QOS)
        self.overview_pub = self.create_publisher(Image, 'overview', IMAGE_QOS)
        self.odom_pub = self.create_publisher(Odometry, 'odom', OUTPUT_QOS)
        self.event_pub = self.create_publisher(String, 'sim_events', EVENT_QOS)
        if self.is_3d:
            self.camera_info_pub = self.create_publisher(CameraInfo, 'camera_info', IMAGE_QOS)
            self.tf = TFBroadcaster(self)
            if self.tf.unavailable:
                self.get_logger().warning(f'TF is not published: {self.tf.unavailable}')
        self.create_subscription(Twist, 'cmd_vel', self._on_cmd_vel, 10)
        self.create_subscription(ActionStatus, 'action_status', self._on_action_status,
                                 LATCHED_QOS)
        self.create_service(Trigger, 'reset', self._on_reset)
        self.episode = -1
        self.instruction = ''
        self._new_episode()
        self.create_timer(1.0 / self.p['rate'], self._step)
        if self.p['overview_rate'] > 0:
            self.create_timer(1.0 / self.p['overview_rate'], self._publish_overview)
        self.get_logger().info(
            f"simulating the {self.p['world']} arena at {self.p['rate']:g} Hz; arena "
            f"{self.world.seed}: " + ', '.join(s.name for s in self.world.shapes))

    # -- episodes ---------------------------------------------------------------------------
    def _make_world(self, seed: int):
        dt = 1.0 / self.p['rate']
        if not self.is_3d:
            return World.random(seed, dt=dt)
        try:
            from ..sim3d.world3d import World3D
        except ImportError as e:   # mujoco is not among the runtime requirements
            raise InvalidParameterValueException('world', '3d', f'needs mujoco: {e}') from e
        world = World3D.random(seed, held_out_style=self.p['held_out_style'], dt=dt)
        try:   # the first render makes the GL context: fail here, with the reason, not later
            world.render(self.p['image_width'], self.p['image_height'])
        except Exception as e:  # noqa: BLE001 - EGL / GL failures come in assorted types
            world.close()
            raise InvalidParameterValueException(
                'world', '3d', f'cannot render the 3D arena (MUJOCO_GL=egl needs EGL): {e}')
        return world

    def _new_episode(self) -> dict:
        with self.lock:
            world = self._make_world(self.p['seed'] + self.episode + 1)
            old, self.world = self.world, world
            if old is not None:
                old.close()   # a World3D frees its render context (GL textures and buffers)
            self.episode += 1
            self.world.target = None          # until an instruction names one
            self.command, self.command_time = (0.0, 0.0), None
            self._touching_wall = False
            arena = {'seed': self.world.seed, 'world': self.p['world'],
                     'shapes': [s.name for s in self.world.shapes]}
            if self.is_3d:   # what instructions can name: the palette objects
                arena['targets'] = [s.name for s in self.world.shapes if not s.clutter]
                self._camera_info = self.world.camera_info(self.p['image_width'],
                                                           self.p['image_height'])
                stamp = self.get_clock().now().to_msg()
                self.tf.send_static(camera_transforms(
                    self._camera_info, stamp, self.p['base_frame_id'],
                    self.p['camera_frame_id'], self.p['optical_frame_id']))
            self._event('reset', **arena)
        return arena

    def _on_reset(self, request, response):
        arena = self._new_episode()
        response.success, response.message = True, json.dumps(arena)
        return response

    def _on_action_status(self, msg: ActionStatus):
        if msg.state != ActionStatus.RUNNING:   # the target stays marked once it is done
            return
        self.instruction = msg.instruction
        with self.lock:
            try:
                self.world.target = ground(parse_instruction(msg.instruction), self.world)
            except InstructionRefused:
                self.world.target = None

    def _on_cmd_vel(self, msg: Twist):
        linear, angular = msg.linear.x, msg.angular.z
        problem = command_problem(linear, angular)
        if problem:
            self.dropped_commands += 1
            self.get_logger().warning(f'cmd_vel dropped: {problem}',
                                      throttle_duration_sec=LOG_THROTTLE_S)
            return
        self.command = (linear, angular)
        self.command_time = self.get_clock().now()

    # -- stepping ---------------------------------------------------------------------------
    def _event(self, name: str, **fields):
        fields = {'event': name, 'time': round(self.world.time, 3), **fields}
        self.event_pub.publish(String(data=json.dumps(fields)))

    def _step(self):
        now = self.get_clock().now()
        linear, angular = self.command
        if self.command_time is None or \
                (now - self.command_time).nanoseconds * 1e-9 > self.p['cmd_vel_timeout']:
            linear = angular = 0.0
        with self.lock:
            before = self._advance(linear, angular)
            stamp = now.to_msg()
            self._publish_camera(stamp)
            self.odom_pub.publish(self._odometry(stamp, before))
            if self.is_3d:
                self.tf.send([odom_transform(self.world.pose, stamp, self.p['odom_frame_id'],
                                             self.p['base_frame_id'])])

    def _advance(self, linear: float, angular: float):
        """One world step, its events on `sim_events`; returns the pose before it."""
        before = self.world.pose
        touching_wall = False
        for event in self.world.step(linear, angular):
            if event[0] == 'wall':
                touching_wall = True
                continue
            shape = self.world.shapes[event[1]]
            self._event(event[0], shape=shape.name, target=event[1] == self.world.target)
        if touching_wall and not self._touching_wall:   # once per contact, not every step
            self._event('wall')
        self._touching_wall = touching_wall
        return before

    def _publish_camera(self, stamp):
        if not self.is_3d:
            header = Header(stamp=stamp, frame_id=self.p['frame_id'])
            self.image_pub.publish(rgb_to_image(render_camera(self.world, self.p['image_size']),
                                                header))
            return
        header = Header(stamp=stamp, frame_id=self.p['optical_frame_id'])
        image = self.world.render(self.p['image_width'], self.p['image_height'])
        self.image_pub.publish(rgb_to_image(image, header))
        self.camera_info_pub.publish(camera_info_message(self._camera_info, header))

    def _odometry(self, stamp, before) -> Odometry:
        """Pose now, and the velocity that moved the robot from `before` (0 when blocked)."""
        pose, dt = self.world.pose, self.world.dt
        linear = ((pose.x - before.x) * math.cos(before.theta)
                  + (pose.y - before.y) * math.sin(before.theta)) / dt
        angular = wrap_angle(pose.theta - before.theta) / dt
        odom = Odometry()
        odom.header = Header(stamp=stamp, frame_id=self.p['odom_frame_id'])
        odom.child_frame_id = self.p['base_frame_id']
        odom.pose.pose.position.x, odom.pose.pose.position.y = pose.x, pose.y
        q = odom.pose.pose.orientation
        q.x, q.y, q.z, q.w = yaw_quaternion(pose.theta)
        odom.twist.twist.linear.x, odom.twist.twist.angular.z = float(linear), float(angular)
        return odom

    def _publish_overview(self):
        with self.lock:
            if self.is_3d:   # the target's ring is part of the 3D scene (World3D.target)
                img = self.world.overview(self.p['overview_size'], self.p['overview_view'])
            else:
                img = render_overview(self.world, self.p['overview_size'], self.instruction)
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id='overview')
        self.overview_pub.publish(rgb_to_image(img, header))

    def destroy_node(self):
        # Also runs for a constructor that failed half-way (rclpy's context destroys the
        # node at shutdown): then `world` may be None, the class default.
        world, self.world = self.world, None
        if world is not None:
            world.close()   # a World3D frees its render context
        return super().destroy_node()


def main(args=None):
    return run_node(SimNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
