"""The `backend` parameter in real nodes: `onnxruntime` serves /vqa over DDS from the ONNX
export, and that node process never maps libtorch."""
import signal
import subprocess
import time

import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('onnxruntime')

from rclpy.exceptions import ParameterException  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from vla_ros.data.easy_vqa import load_split  # noqa: E402
from vla_ros.ros import vla_node, vqa_service_node  # noqa: E402
from vla_ros.ros.image_conversion import rgb_to_image  # noqa: E402
from vla_ros.srv import VQA  # noqa: E402

TIMEOUT_S = 60   # against hangs on a loaded machine, not a timing check


@pytest.mark.parametrize('node_class', [vqa_service_node.VQAServiceNode, vla_node.VLANode])
@pytest.mark.parametrize('backend', ['onnxruntime', 'torch'])
def test_backend_parameter_selects_the_engine(rclpy_init, node_class, backend):
    node = node_class(parameter_overrides=[Parameter('backend', value=backend)])
    try:
        assert node.engine.backend == backend
    finally:
        node.destroy_node()


def test_unknown_backend_is_refused_at_startup(rclpy_init):
    with pytest.raises(ParameterException, match='not one of auto, torch, onnxruntime'):
        vqa_service_node.VQAServiceNode(
            parameter_overrides=[Parameter('backend', value='tensorflow')])


def _node_executable(name):
    from ament_index_python.packages import get_package_prefix, PackageNotFoundError
    try:
        return f"{get_package_prefix('vla_ros')}/lib/vla_ros/{name}"
    except PackageNotFoundError:
        pytest.skip('vla_ros is not in AMENT_PREFIX_PATH (source scripts/env.sh)')


def _mapped(pid, word):
    with open(f'/proc/{pid}/maps') as f:
        return any(word in line for line in f)


def test_onnxruntime_node_answers_over_dds_without_torch(rclpy_init):
    split = load_split('test')
    question, answer, index = split.questions[0]
    # The child inherits this run's ROS_DOMAIN_ID (conftest), so it is isolated.
    proc = subprocess.Popen([_node_executable('vqa_service'), '--ros-args',
                             '-p', 'backend:=onnxruntime'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    node = rclpy.create_node('onnx_backend_probe')
    try:
        client = node.create_client(VQA, 'vqa')
        end = time.monotonic() + TIMEOUT_S
        while not client.wait_for_service(timeout_sec=0.5):
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < end, 'vqa_service did not start'
        request = VQA.Request(question=question, image=rgb_to_image(split.images[index]))
        future = client.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=TIMEOUT_S)
        response = future.result()
        assert response is not None and response.success, response
        assert response.answer == answer
        assert _mapped(proc.pid, 'onnxruntime')
        assert not _mapped(proc.pid, 'libtorch'), 'the onnxruntime node loaded torch'
    finally:
        node.destroy_node()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0
