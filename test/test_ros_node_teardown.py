"""A node whose constructor fails half-way still tears down cleanly.

rclpy's context destroys every node it tracks when it shuts down, including one whose
constructor raised. When that node's destroy_node() tripped over an attribute the
constructor never set (the web node on a taken port: no `server`), the context could
never be shut down, and every later rclpy.init() in the process failed.
"""
import socket

import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.exceptions import ParameterException  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from vla_ros.errors import CheckpointError  # noqa: E402
from vla_ros.ros.image_source_node import ImageSourceNode  # noqa: E402
from vla_ros.ros.vla_node import VLANode  # noqa: E402
from vla_ros.ros.web_node import WebNode  # noqa: E402


@pytest.fixture
def taken_port():
    """A port something else is listening on, as a user's own demo would be."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        s.listen(1)
        yield s.getsockname()[1]


def failing_constructions(tmp_path, port):
    return [
        (WebNode, {'port': port}, ParameterException, 'cannot listen there'),
        (VLANode, {'checkpoint': str(tmp_path)}, CheckpointError, 'config.json'),
        (ImageSourceNode, {'source': 'video', 'path': str(tmp_path / 'none.mp4')},
         Exception, 'no such file'),
    ]


def test_a_node_that_failed_half_way_lets_the_context_shut_down(tmp_path, taken_port):
    for node_class, params, error, words in failing_constructions(tmp_path, taken_port):
        rclpy.init()
        try:
            with pytest.raises(error, match=words) as raised:
                node_class(parameter_overrides=[Parameter(k, value=v)
                                                for k, v in params.items()])
            assert raised.value is not None     # the traceback keeps the half-made node alive
        finally:
            rclpy.try_shutdown()                # destroys it: must not raise
        assert not rclpy.ok(), f'{node_class.__name__}: the context is still up'
