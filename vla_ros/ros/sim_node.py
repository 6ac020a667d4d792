"""Sim node: the simulated robot of vla_ros.sim behind ROS topics, for demos and tests.

Subscribes `cmd_vel` (geometry_msgs/Twist; linear.x m/s, angular.z rad/s) and integrates
it at `rate` Hz; like diff_drive, a command older than `cmd_vel_timeout` counts as zero.
Publishes every step `image` (sensor_msgs/Image rgb8, the egocentric camera, stamped,
`frame_id`) and `odom` (nav_msgs/Odometry), at `overview_rate` Hz `overview` (a top-down
map for humans), and on `sim_events` (std_msgs/String, JSON) what happens: `reset` (the
arena's shapes), `reach` / `touch` (first time per shape), `wall`. The `reset` service
(std_srvs/Trigger) starts a new episode; episode k uses arena seed `seed` + k.
The VLA node's `action_status` tells which instruction is being followed; the sim grounds
it to mark the target on the map and in `reach`/`touch` events. (Not the `instruction`
topic itself: `ros2 topic pub --once` publishes as soon as one subscriber matches, so a
second subscriber there could take the one message before the VLA node had matched.)
"""
import json
import math

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger

from ..msg import ActionStatus
from ..control.instructions import ground, InstructionRefused, parse_instruction
from ..sim.render import render_camera, render_overview
from ..sim.world import World, wrap_angle
from .image_conversion import rgb_to_image
from .params import declare_parameters, LATCHED_QOS, OUTPUT_QOS, Param
from .runner import run_node

PARAMS = (
    Param('rate', 20.0, 'simulation steps per second; a camera frame is published each step',
          range=(1.0, 200.0)),
    Param('seed', 1_000_000, 'arena seed of the first episode; each reset takes the next one',
          range=(0, 2**31 - 1)),
    Param('image_size', 64, 'camera image side in pixels (the model reads 64x64)',
          range=(16, 1024)),
    Param('frame_id', 'camera', 'header.frame_id of camera images'),
    Param('odom_frame_id', 'odom', 'header.frame_id of odometry'),
    Param('base_frame_id', 'base_link', 'child_frame_id of odometry'),
    Param('overview_rate', 5.0, 'overview images per second (0 = none)', range=(0.0, 60.0)),
    Param('overview_size', 480, 'overview image side in pixels', range=(64, 4096)),
    Param('cmd_vel_timeout', 0.5, 'seconds after which the last cmd_vel counts as zero',
          range=(0.01, 60.0)),
)

# Camera frames: keep only the newest, reliable so both kinds of subscriber hear them.
IMAGE_QOS = QoSProfile(depth=1, reliability=OUTPUT_QOS.reliability, history=OUTPUT_QOS.history)
# Events are few and matter: late joiners get the last ones (e.g. the arena's shapes).
EVENT_QOS = LATCHED_QOS


class SimNode(Node):
    NODE_NAME = 'sim'

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        self.p = declare_parameters(self, PARAMS)
        self.image_pub = self.create_publisher(Image, 'image', IMAGE_QOS)
        self.overview_pub = self.create_publisher(Image, 'overview', IMAGE_QOS)
        self.odom_pub = self.create_publisher(Odometry, 'odom', OUTPUT_QOS)
        self.event_pub = self.create_publisher(String, 'sim_events', EVENT_QOS)
        self.create_subscription(Twist, 'cmd_vel', self._on_cmd_vel, 10)
        self.create_subscription(ActionStatus, 'action_status', self._on_action_status,
                                 LATCHED_QOS)
        self.create_service(Trigger, 'reset', self._on_reset)
        self.episode = -1
        self.world = None
        self.instruction = ''
        self._new_episode()
        self.create_timer(1.0 / self.p['rate'], self._step)
        if self.p['overview_rate'] > 0:
            self.create_timer(1.0 / self.p['overview_rate'], self._publish_overview)
        self.get_logger().info(f"simulating at {self.p['rate']:g} Hz; arena {self.world.seed}: "
                               + ', '.join(s.name for s in self.world.shapes))

    # -- episodes ---------------------------------------------------------------------------
    def _new_episode(self) -> dict:
        self.episode += 1
        self.world = World.random(self.p['seed'] + self.episode, dt=1.0 / self.p['rate'])
        self.world.target = None          # until an instruction names one
        self.command, self.command_time = (0.0, 0.0), None
        self._touching_wall = False
        arena = {'seed': self.world.seed, 'shapes': [s.name for s in self.world.shapes]}
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
        try:
            self.world.target = ground(parse_instruction(msg.instruction), self.world)
        except InstructionRefused:
            self.world.target = None

    def _on_cmd_vel(self, msg: Twist):
        self.command = (msg.linear.x, msg.angular.z)
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
        stamp = now.to_msg()
        header = Header(stamp=stamp, frame_id=self.p['frame_id'])
        self.image_pub.publish(rgb_to_image(render_camera(self.world, self.p['image_size']),
                                            header))
        self.odom_pub.publish(self._odometry(stamp, before))

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
        odom.pose.pose.orientation.z = math.sin(pose.theta / 2)
        odom.pose.pose.orientation.w = math.cos(pose.theta / 2)
        odom.twist.twist.linear.x, odom.twist.twist.angular.z = float(linear), float(angular)
        return odom

    def _publish_overview(self):
        img = render_overview(self.world, self.p['overview_size'], self.instruction)
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id='overview')
        self.overview_pub.publish(rgb_to_image(img, header))


def main(args=None):
    return run_node(SimNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
