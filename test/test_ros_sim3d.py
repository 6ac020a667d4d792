"""The sim node with world:=3d over real DDS: camera + camera_info that agree with the
scene, odometry, TF (built here without tf2_msgs), bad cmd_vel dropped, contacts as
events, a clean reset mid-episode, a clean teardown, and the closed loop with the VLA node.

Every wait is a generous upper bound against hangs, not a timing assertion.
"""
import json
import math
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('mujoco')

from geometry_msgs.msg import Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.exceptions import ParameterException  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from vla_ros.msg import ActionStatus  # noqa: E402
from vla_ros.ros import sim_outputs  # noqa: E402
from vla_ros.ros.image_conversion import image_to_rgb  # noqa: E402
from vla_ros.ros.params import LATCHED_QOS  # noqa: E402
from vla_ros.ros.sim_node import EVENT_QOS, MAX_IMAGE_3D, SimNode  # noqa: E402
from vla_ros.ros.vla_node import VLANode  # noqa: E402
from vla_ros.ros_tools.sim_demo import SimExpert  # noqa: E402
from vla_ros.sim.evaluate import REACH_SUCCESS  # noqa: E402
from vla_ros.sim.world import Pose  # noqa: E402
from vla_ros.sim3d.scene import MAX_RENDER  # noqa: E402
from vla_ros.sim3d.world3d import World3D  # noqa: E402

# An exception escaping a callback kills the executor thread: make that a test failure.
pytestmark = [pytest.mark.filterwarnings('error::pytest.PytestUnhandledThreadExceptionWarning')]
TIMEOUT_S = 20.0
SEED = 1_000_000   # the default: objects in view at the start, and 0.45 m clear ahead
# Latched like rcl's /rosout publisher, so lines logged before the probe matched arrive too.
ROSOUT_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)


def wait_for(condition, what, timeout=TIMEOUT_S):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f'timed out after {timeout} s waiting for {what}'
        time.sleep(0.01)


def quat_matrix(q):
    """(x, y, z, w) quaternion -> 3x3 rotation matrix."""
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def as_matrix(t):
    """geometry_msgs/TransformStamped -> 4x4 homogeneous transform parent <- child."""
    r, v = t.transform.rotation, t.transform.translation
    m = np.eye(4)
    m[:3, :3] = quat_matrix((r.x, r.y, r.z, r.w))
    m[:3, 3] = v.x, v.y, v.z
    return m


@pytest.fixture
def closed_worlds(monkeypatch):
    """Every World3D.close() call, by world."""
    closed, close = [], World3D.close

    def recording_close(world):
        closed.append(world)
        close(world)
    monkeypatch.setattr(World3D, 'close', recording_close)
    return closed


class Probe:
    """Records what the sim publishes (and /rosout); drives it with cmd_vel and reset."""

    def __init__(self, executor):
        self.node = n = rclpy.create_node('probe3d')
        self.images, self.infos, self.odom, self.events, self.overviews, self.logs = \
            [], [], [], [], [], []
        n.create_subscription(Image, 'image', self.images.append, 10)
        n.create_subscription(CameraInfo, 'camera_info', self.infos.append, 10)
        n.create_subscription(Odometry, 'odom', self.odom.append, 100)
        n.create_subscription(Image, 'overview', self.overviews.append, 10)
        n.create_subscription(String, 'sim_events',
                              lambda m: self.events.append(json.loads(m.data)), EVENT_QOS)
        n.create_subscription(Log, '/rosout', self.logs.append, ROSOUT_QOS)
        self.cmd_pub = n.create_publisher(Twist, 'cmd_vel', 10)
        self.status_pub = n.create_publisher(ActionStatus, 'action_status', LATCHED_QOS)
        self.reset = n.create_client(Trigger, 'reset')
        executor.add_node(n)

    def logged(self, words):
        return any(m.name == 'sim' and words in m.msg for m in self.logs)

    def drive(self, linear, angular, until, what):
        """Publish (linear, angular) at ~20 Hz until `until()` holds."""
        twist = Twist()
        twist.linear.x, twist.angular.z = linear, angular
        wait_for(lambda: self.cmd_pub.get_subscription_count() > 0, 'cmd_vel to match')

        def sent_and_done():
            self.cmd_pub.publish(twist)
            time.sleep(0.05)
            return until()
        wait_for(sent_and_done, what)

    def call_reset(self):
        assert self.reset.wait_for_service(timeout_sec=TIMEOUT_S), 'no reset service'
        done = threading.Event()
        future = self.reset.call_async(Trigger.Request())
        future.add_done_callback(lambda _: done.set())
        assert done.wait(TIMEOUT_S), 'no reset response'
        return future.result()


def sim3d(executor, **params):
    params = {'world': '3d', 'overview_rate': 0.0, **params}
    node = SimNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    executor.add_node(node)
    return node


def test_transforms_and_camera_info_agree_with_the_world_camera():
    """The published frames chain to MuJoCo's camera pose; no tf2_msgs or ROS graph needed."""
    assert MAX_IMAGE_3D == MAX_RENDER
    world = World3D.random(SEED)
    try:
        world.pose = Pose(1.7, 2.2, 2.4)
        info = world.camera_info(128, 96)
        stamp = Header().stamp
        stamp.sec = 42
        chain = [sim_outputs.odom_transform(world.pose, stamp, 'odom', 'base_link')]
        chain += sim_outputs.camera_transforms(info, stamp, 'base_link', 'camera_link',
                                               'camera_optical_frame')
        assert [(t.header.frame_id, t.child_frame_id) for t in chain] == [
            ('odom', 'base_link'), ('base_link', 'camera_link'),
            ('camera_link', 'camera_optical_frame')]
        assert all(t.header.stamp.sec == 42 for t in chain)
        odom_to_optical = as_matrix(chain[0]) @ as_matrix(chain[1]) @ as_matrix(chain[2])
        position, rotation = world.camera_pose()    # columns: optical x right, y down, z fwd
        assert np.allclose(odom_to_optical[:3, 3], position, atol=1e-9)
        assert np.allclose(odom_to_optical[:3, :3], rotation, atol=1e-6)
        assert rotation[2, 1] < 0 and rotation[2, 2] < 0.5   # y points down, z near level
        msg = sim_outputs.camera_info_message(info, Header(frame_id='camera_optical_frame'))
        assert (msg.width, msg.height, msg.distortion_model) == (128, 96, 'plumb_bob')
        assert np.allclose(np.reshape(msg.k, (3, 3)), info['K'])
        assert np.allclose(np.reshape(msg.p, (3, 4)), info['P'])
        assert list(msg.r) == [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0] and list(msg.d) == [0.0] * 5
    finally:
        world.close()


def test_image_and_camera_info_agree_and_k_projects_objects_onto_their_pixels(executor_pair):
    sim = sim3d(executor_pair[0], overview_rate=5.0, overview_size=128)
    probe = Probe(executor_pair[1])
    wait_for(lambda: len(probe.infos) >= 3 and probe.images and probe.overviews,
             'camera_info, images and an overview')
    images = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in probe.images}
    pairs = [(images[k], i) for i in probe.infos
             if (k := (i.header.stamp.sec, i.header.stamp.nanosec)) in images]
    assert pairs, 'no image with the stamp of a camera_info'
    for image, info in pairs:
        assert image.header.frame_id == info.header.frame_id == 'camera_optical_frame'
        assert (image.width, image.height, image.encoding) == (info.width, info.height, 'rgb8')
    assert (info.width, info.height) == (96, 96) and info.header.stamp.sec > 0
    assert (probe.overviews[-1].width, probe.overviews[-1].height) == (128, 128)
    K = np.reshape(info.k, (3, 3))
    with sim.lock:   # nothing moves without cmd_vel: the state every frame was rendered in
        world = sim.world
        position, rotation = world.camera_pose()
        seg = world.segmentation(info.width, info.height)
        clean = world.render(info.width, info.height, noise=False).astype(float)
        noise = world.style.noise_std
        centres = {i: np.array(world.shapes[i].centre) for i in world.objects}
    seen = image_to_rgb(probe.images[-1]).astype(float)
    # The received image is the scene's render, up to the style's pixel noise.
    assert np.abs(seen - clean).mean() < 0.8 * noise + 1.0
    hits = []
    for i, centre in centres.items():
        x = rotation.T @ (centre - position)             # (3,) in the optical frame
        if x[2] <= 0:
            continue
        u, v = (K @ x)[:2] / x[2]
        if 0 <= round(u) < info.width and 0 <= round(v) < info.height \
                and seg[round(v), round(u)] == i:
            rows, cols = np.nonzero(seg == i)
            hits.append((i, cols.mean() - u, rows.mean() - v))
    assert len(hits) >= 2, f'objects projected onto their own pixels: {hits}'
    # Blob centroids: across, within half a pixel (the solids are symmetric about their
    # axis); down, within the offset of a pyramid's area below its half height.
    assert all(abs(du) < 0.5 and abs(dv) < 2.5 for _, du, dv in hits), hits
    if sim_outputs.TF_UNAVAILABLE:   # the PyPI wheels: said once, with the reason
        wait_for(lambda: probe.logged('TF is not published: tf2_msgs'), 'the TF log line')
    else:
        assert sim.tf.unavailable is None


@pytest.mark.parametrize('world', ['2d', '3d'])
def test_bad_cmd_vel_is_dropped_and_a_good_one_drives_forward(executor_pair, world):
    sim = sim3d(executor_pair[0], world=world)
    probe = Probe(executor_pair[1])
    wait_for(lambda: probe.odom, 'odometry')
    with sim.lock:
        start = sim.world.pose
    bad = [(float('nan'), 0.0), (0.2, float('inf')), (1e9, 0.0)]
    for linear, angular in bad:
        count = sim.dropped_commands
        probe.drive(linear, angular, lambda: sim.dropped_commands >= count + 3,
                    f'cmd_vel ({linear}, {angular}) to be dropped')
    wait_for(lambda: probe.logged('cmd_vel dropped: not finite'), 'the log line')
    seen = len(probe.odom)
    wait_for(lambda: len(probe.odom) > seen + 3, 'odometry after the bad commands')
    for o in probe.odom:
        p, t = o.pose.pose.position, o.twist.twist
        assert (p.x, p.y) == pytest.approx((start.x, start.y), abs=1e-6)
        assert t.linear.x == pytest.approx(0.0, abs=1e-6) and math.isfinite(t.angular.z)

    def moved():
        p = probe.odom[-1].pose.pose.position
        return (p.x - start.x) * math.cos(start.theta) + \
            (p.y - start.y) * math.sin(start.theta)
    probe.drive(0.3, 0.0, lambda: moved() > 0.15, 'the robot to drive forward')
    odom = probe.odom[-1]
    p = odom.pose.pose.position
    sideways = -(p.x - start.x) * math.sin(start.theta) + (p.y - start.y) * math.cos(start.theta)
    assert abs(sideways) < 0.02
    assert (odom.header.frame_id, odom.child_frame_id) == ('odom', 'base_link')
    assert any(o.twist.twist.linear.x == pytest.approx(0.3, abs=0.03) for o in probe.odom)


def test_touch_is_reported_and_a_reset_mid_episode_is_clean(executor_pair, closed_worlds):
    sim = sim3d(executor_pair[0])
    probe = Probe(executor_pair[1])
    wait_for(lambda: probe.events and probe.images, 'the reset event and images')
    first = probe.events[0]
    with sim.lock:
        old = sim.world
        assert first['event'] == 'reset' and first['seed'] == SEED
        assert first['shapes'] == [s.name for s in old.shapes]
        target = old.shapes[0]
        # Teleport the robot next to the target, facing it (test set-up, not a feature).
        near = old.random_free_pose(np.random.default_rng(0), near=0, max_dist=0.25)
        old.pose = Pose(near.x, near.y, math.atan2(target.y - near.y, target.x - near.x))
    wording = target.name   # '<colour> <3D shape>': what the instruction language says
    assert first['targets'] == [s.name for s in old.shapes if not s.clutter]
    assert wording == first['targets'][0]
    probe.status_pub.publish(ActionStatus(instruction=f'go to the {wording}',
                                          state=ActionStatus.RUNNING))
    wait_for(lambda: sim.world.target == 0, 'the sim to ground the instruction in 3D')
    probe.drive(0.3, 0.0, lambda: any(e['event'] == 'touch' for e in probe.events),
                'a touch event')
    touch = next(e for e in probe.events if e['event'] == 'touch')
    assert touch == {'event': 'touch', 'time': touch['time'], 'shape': target.name,
                     'target': True}
    # Reset while the last command is still fresh: the new robot must not inherit it.
    reply = probe.call_reset()
    assert reply.success and json.loads(reply.message)['seed'] == SEED + 1
    assert old in closed_worlds and sim.world is not old
    wait_for(lambda: probe.events[-1]['event'] == 'reset', 'the reset event')
    with sim.lock:
        names = [s.name for s in sim.world.shapes]
    assert probe.events[-1]['seed'] == SEED + 1 and probe.events[-1]['shapes'] == names
    count = len(probe.images)
    wait_for(lambda: len(probe.images) > count + 10, 'images from the new world')
    fresh = World3D.random(SEED + 1, dt=sim.world.dt)
    with sim.lock:
        assert sim.world.pose == fresh.pose and sim.world.touched == set()


def test_failed_construction_and_destroy_close_the_world(closed_worlds, monkeypatch):
    def make(**params):
        return SimNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    rclpy.init()
    try:
        with pytest.raises(ParameterException, match='not one of 2d, 3d'):
            make(world='4d')
        with pytest.raises(ParameterException, match='renders at most 640'):
            make(world='3d', overview_size=1000)
        node = make(world='3d')
        world = node.world
        node.destroy_node()
        assert closed_worlds == [world] and node.world is None

        def no_gl(*args, **kwargs):
            raise RuntimeError('no EGL display')
        monkeypatch.setattr(World3D, 'render', no_gl)
        with pytest.raises(ParameterException, match='cannot render the 3D arena.*no EGL'):
            make(world='3d')
        assert len(closed_worlds) == 2    # the half-made node's world is not leaked
    finally:
        rclpy.try_shutdown()   # destroys the half-made nodes: must not raise
    assert not rclpy.ok()


def test_closed_loop_expert_reaches_its_target_in_3d_over_dds(executor_pair):
    """The whole loop in the 3D arena: sim camera -> VLA node (the privileged expert behind
    its policy injection point) -> cmd_vel -> MuJoCo, over DDS, until done at the target."""
    sim = sim3d(executor_pair[0])
    vla = VLANode(parameter_overrides=[Parameter('caption_rate', value=0.0)])
    vla.actions.policy = SimExpert(sim)
    executor_pair[0].add_node(vla)
    probe = Probe(executor_pair[1])
    statuses = []
    probe.node.create_subscription(ActionStatus, 'action_status', statuses.append, 100)
    instruction_pub = probe.node.create_publisher(String, 'instruction', 10)
    wait_for(lambda: probe.events and instruction_pub.get_subscription_count() > 0
             and vla.actions.status_pub.get_subscription_count() > 0, 'the sim and the VLA node')
    target = probe.events[0]['targets'][0]
    instruction_pub.publish(String(data=f'go to the {target}'))
    wait_for(lambda: statuses and statuses[-1].state != 'running', 'the episode to end', 60.0)
    assert statuses[-1].state == 'done', statuses[-1]
    assert statuses[-1].header.frame_id == 'camera_optical_frame'   # it read the 3D camera
    reach = [e for e in probe.events if e['event'] == 'reach' and e['target']]
    assert reach and reach[0]['shape'] == target, probe.events
    assert not any(e['event'] in ('touch', 'wall') for e in probe.events), probe.events
    with sim.lock:
        assert sim.world.gap(0) <= REACH_SUCCESS
