"""The generated vla_ros interfaces: exact fields, and a real round trip over DDS."""

import os
import threading

import pytest

rclpy = pytest.importorskip('rclpy')  # pip-only installs have no ROS: nothing to test here

from sensor_msgs.msg import Image  # noqa: E402

try:
    from vla_ros.msg import Answer, Caption
    from vla_ros.srv import VQA
except ImportError as e:  # the usual cause: the colcon install tree is not on sys.path
    raise ImportError(f'{e}: run scripts/setup.sh, then source scripts/env.sh') from e

TIMEOUT_S = 10.0


def test_fields_are_the_documented_contract():
    # Other packages and recorded bags depend on these names and types: change them knowingly.
    assert VQA.Request.get_fields_and_field_types() == {
        'question': 'string', 'image': 'sensor_msgs/Image'}
    assert VQA.Response.get_fields_and_field_types() == {
        'success': 'boolean', 'answer': 'string', 'confidence': 'float',
        'error': 'string', 'frame_stamp': 'builtin_interfaces/Time', 'latency_ms': 'float'}
    assert Caption.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'caption': 'string', 'confidence': 'float',
        'latency_ms': 'float'}
    assert Answer.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'question': 'string', 'success': 'boolean',
        'answer': 'string', 'confidence': 'float', 'error': 'string', 'latency_ms': 'float'}


def test_empty_request_image_means_use_latest_frame():
    assert VQA.Request().image.width == 0


def _wait(event, what):
    assert event.wait(TIMEOUT_S), f'timed out after {TIMEOUT_S} s waiting for {what}'


def test_vqa_service_round_trip(ros_executor):
    server = rclpy.create_node('vqa_test_server')
    client_node = rclpy.create_node('vqa_test_client')
    seen = {}

    def handle(request, response):
        seen['request'] = request
        response.success = True
        response.answer = f'echo: {request.question}'
        response.confidence = 0.75
        response.error = ''
        response.frame_stamp = request.image.header.stamp
        response.latency_ms = 12.5
        return response

    server.create_service(VQA, 'vqa', handle)
    client = client_node.create_client(VQA, 'vqa')
    ros_executor.add_node(server)
    ros_executor.add_node(client_node)
    assert client.wait_for_service(timeout_sec=TIMEOUT_S), 'vqa service never appeared'

    request = VQA.Request(question='what color is the shape?')
    request.image = Image(height=2, width=3, encoding='rgb8', step=9, data=bytes(range(18)))
    request.image.header.stamp.sec = 42
    request.image.header.stamp.nanosec = 7
    request.image.header.frame_id = 'camera'
    done = threading.Event()
    future = client.call_async(request)
    future.add_done_callback(lambda _: done.set())
    _wait(done, 'the VQA response')

    response = future.result()
    assert response.success
    assert response.answer == 'echo: what color is the shape?'
    assert response.confidence == pytest.approx(0.75)
    assert response.error == ''
    assert (response.frame_stamp.sec, response.frame_stamp.nanosec) == (42, 7)
    assert response.latency_ms == pytest.approx(12.5)
    got = seen['request'].image
    assert (got.height, got.width, got.encoding, got.step) == (2, 3, 'rgb8', 9)
    assert bytes(got.data) == bytes(range(18))
    assert got.header.frame_id == 'camera'


@pytest.mark.parametrize('msg_type, fields', [
    (Caption, {'caption': 'a red circle', 'confidence': 0.5, 'latency_ms': 3.25}),
    (Answer, {'question': 'is there a circle?', 'success': True, 'answer': 'yes',
              'confidence': 0.875, 'error': '', 'latency_ms': 4.5}),
])
def test_messages_round_trip_over_a_topic(ros_executor, msg_type, fields):
    node = rclpy.create_node('vla_msg_test')
    received = []
    got_one = threading.Event()

    def on_msg(msg):
        received.append(msg)
        got_one.set()

    node.create_subscription(msg_type, 'out', on_msg, 10)
    publisher = node.create_publisher(msg_type, 'out', 10)
    ros_executor.add_node(node)
    msg = msg_type(**fields)
    msg.header.frame_id = 'camera'
    msg.header.stamp.sec = 5
    # Discovery is asynchronous: publish until the subscription has heard one.
    for _ in range(int(TIMEOUT_S / 0.1)):
        publisher.publish(msg)
        if got_one.wait(0.1):
            break
    _wait(got_one, f'a {msg_type.__name__} message')
    assert received[0] == msg


def test_node_launchers_are_installed():
    # `ros2 run vla_ros <name>` runs <prefix>/lib/vla_ros/<name>.
    from ament_index_python.packages import get_package_prefix, PackageNotFoundError
    try:
        prefix = get_package_prefix('vla_ros')
    except PackageNotFoundError:
        pytest.skip('vla_ros is not in AMENT_PREFIX_PATH (source scripts/env.sh)')
    for name, module in [('vla_node', 'vla_ros.ros.vla_node'),
                         ('vqa_service', 'vla_ros.ros.vqa_service_node'),
                         ('image_source', 'vla_ros.ros.image_source_node')]:
        path = os.path.join(prefix, 'lib', 'vla_ros', name)
        assert os.access(path, os.X_OK), f'{path} missing or not executable'
        with open(path) as f:
            assert f'from {module} import main' in f.read()
