"""config/vla_ros.yaml: complete, loaded by real nodes, and its values take effect;
invalid values are refused at startup and at run time. Also checks the launch file."""
import ast
import os
import py_compile
import re

import pytest
import yaml

rclpy = pytest.importorskip('rclpy')

from rclpy.exceptions import ParameterException  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402

from vla_ros.ros import (  # noqa: E402
    image_source_node, sim_node, vla_node, vqa_service_node, web_node)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'config', 'vla_ros.yaml')
NODES = {'image_source': image_source_node.ImageSourceNode,
         'vla_node': vla_node.VLANode,
         'vqa_service': vqa_service_node.VQAServiceNode,
         'sim': sim_node.SimNode,
         'web': web_node.WebNode}
PARAMS = {'image_source': image_source_node.PARAMS, 'vla_node': vla_node.PARAMS,
          'vqa_service': vqa_service_node.PARAMS, 'sim': sim_node.PARAMS,
          'web': web_node.PARAMS}


def load(path=CONFIG):
    with open(path) as f:
        return {name: body['ros__parameters'] for name, body in yaml.safe_load(f).items()}


def make(name, params_file):
    return NODES[name](cli_args=['--ros-args', '--params-file', str(params_file)])


def write(tmp_path, config):
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump({n: {'ros__parameters': p} for n, p in config.items()}))
    return path


def test_config_lists_every_parameter_of_every_node_with_its_default():
    config = load()
    assert set(config) == set(NODES)
    for name, params in PARAMS.items():
        assert set(config[name]) == {p.name for p in params}, name
        for p in params:
            assert config[name][p.name] == p.default, f'{name}.{p.name}'


def test_config_file_is_applied_to_real_nodes(rclpy_init, tmp_path):
    config = load()
    # Any free port: a demo (or anything) already on the config's 8080 must not fail this.
    config['web']['port'] = 0
    path = write(tmp_path, config)
    for name in NODES:
        node = make(name, path)
        try:
            for key, value in config[name].items():
                assert node.get_parameter(key).value == value, f'{name}.{key}'
                assert node.describe_parameter(key).description, f'{name}.{key} undocumented'
        finally:
            node.destroy_node()


def test_changed_values_take_effect(rclpy_init, tmp_path):
    config = load()
    config['vla_node'].update(qos_reliability='reliable', qos_depth=3, caption_rate=4.0,
                              image_transport='raw', max_frame_age=7.5)
    config['vqa_service'].update(image_transport='compressed')
    config['image_source'].update(source='scenes', rate=5.0, frame_id='cam9',
                                  publish_compressed=True, publish_raw=False)
    path = write(tmp_path, config)
    vla, vqa, source = (make(n, path) for n in ('vla_node', 'vqa_service', 'image_source'))
    try:
        (sub,) = vla.camera.subscriptions
        assert sub.topic_name == '/image'
        assert (sub.qos_profile.reliability, sub.qos_profile.depth) == (
            ReliabilityPolicy.RELIABLE, 3)
        assert vla.caption_timer.timer_period_ns == 250_000_000
        assert vla.get_parameter('max_frame_age').value == 7.5
        assert [s.topic_name for s in vqa.camera.subscriptions] == ['/image/compressed']
        assert vqa.camera.subscriptions[0].qos_profile.reliability == \
            ReliabilityPolicy.BEST_EFFORT
        assert source.raw_pub is None and source.compressed_pub is not None
        assert source.timer.timer_period_ns == 200_000_000 and source.source.name == 'scenes'
    finally:
        for node in (vla, vqa, source):
            node.destroy_node()


@pytest.mark.parametrize('name, key, value, words', [
    ('vla_node', 'qos_depth', 0, 'out of range'),
    ('vla_node', 'caption_rate', 1, "expecting type 'DOUBLE'"),
    ('vla_node', 'image_transport', 'udp', 'not one of raw, compressed, both'),
    ('vqa_service', 'max_frame_age', -1.0, 'out of range'),
    ('image_source', 'source', 'webcam', 'not one of easy_vqa'),
    ('image_source', 'width', 320, 'set both or neither'),
])
def test_invalid_config_values_are_refused_at_startup(rclpy_init, tmp_path, name, key, value,
                                                      words):
    config = load()
    config[name][key] = value
    with pytest.raises(ParameterException, match=re.escape(words)):
        make(name, write(tmp_path, config))


def test_run_time_changes_are_validated(rclpy_init):
    node = vla_node.VLANode(parameter_overrides=[Parameter('caption_rate', value=2.0)])
    try:
        assert node.caption_timer is not None
        rejected = node.set_parameters([Parameter('caption_rate', value=-1.0),
                                        Parameter('qos_depth', value=5)])
        assert [r.successful for r in rejected] == [False, False]
        assert node.caption_timer.timer_period_ns == 500_000_000
        assert node.set_parameters([Parameter('caption_rate', value=0.0)])[0].successful
        assert node.caption_timer is None
        assert node.set_parameters([Parameter('caption_rate', value=10.0)])[0].successful
        assert node.caption_timer.timer_period_ns == 100_000_000
    finally:
        node.destroy_node()


def _cmake_node_names():
    with open(os.path.join(ROOT, 'CMakeLists.txt')) as f:
        block = re.search(r'set\(VLA_ROS_NODES(.*?)\)', f.read(), re.S).group(1)
    return set(re.findall(r'"([^"=]+)=', block))


def test_launch_file_is_valid_python_and_starts_the_installed_executables():
    path = os.path.join(ROOT, 'launch', 'demo.launch.py')
    py_compile.compile(path, doraise=True)
    calls = [n for n in ast.walk(ast.parse(open(path).read()))
             if isinstance(n, ast.Call) and getattr(n.func, 'id', '') == 'Node']
    args = [{k.arg: k.value.value for k in c.keywords if isinstance(k.value, ast.Constant)}
            for c in calls]
    # model_node('vla_node') chooses managed_vla_node or vla_node (launch argument `managed`)
    for call, a in zip(calls, args):
        for k in call.keywords:
            if k.arg == 'executable' and isinstance(k.value, ast.Call):
                assert k.value.func.id == 'model_node'
                a['executable'] = k.value.args[0].value
                a['managed'] = True
    assert {a['executable'] for a in args} == set(NODES) <= _cmake_node_names()
    assert {f"managed_{a['executable']}" for a in args if a.get('managed')} == \
        {'managed_vla_node', 'managed_vqa_service'} <= _cmake_node_names()
    assert all(a['package'] == 'vla_ros' and a['name'] == a['executable'] for a in args)
    assert "'vla_ros.yaml'" in open(path).read()
