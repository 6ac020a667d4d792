"""The managed (lifecycle) VLA and VQA nodes, driven over DDS through their lifecycle
services as a lifecycle manager (nav2's, `ros2 lifecycle set`) drives them."""
import gc
import weakref

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from vla_ros.action import FollowInstruction  # noqa: E402
from vla_ros.ros.image_conversion import rgb_to_image  # noqa: E402
from vla_ros.ros.vla_node import ManagedVLANode  # noqa: E402
from vla_ros.ros.vqa_service_node import ManagedVQAServiceNode  # noqa: E402
from vla_ros.srv import VQA  # noqa: E402
from test_ros_follow_instruction import GoalClient  # noqa: E402
from test_ros_sim_actions import Probe, resolved, wait_for  # noqa: E402

pytestmark = [pytest.mark.filterwarnings('error::pytest.PytestUnhandledThreadExceptionWarning')]
UNCONFIGURED, INACTIVE, ACTIVE, FINALIZED = (State.PRIMARY_STATE_UNCONFIGURED,
                                             State.PRIMARY_STATE_INACTIVE,
                                             State.PRIMARY_STATE_ACTIVE,
                                             State.PRIMARY_STATE_FINALIZED)


class Manager:
    """Calls a node's ~/change_state and ~/get_state services."""

    def __init__(self, probe, node_name):
        self.change = probe.node.create_client(ChangeState, f'{node_name}/change_state')
        self.get = probe.node.create_client(GetState, f'{node_name}/get_state')
        for client in (self.change, self.get):
            assert client.wait_for_service(timeout_sec=20), 'no lifecycle services'

    def set(self, transition) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition))
        return resolved(self.change.call_async(request), f'transition {transition}').success

    def state(self) -> int:
        return resolved(self.get.call_async(GetState.Request()), 'the state').current_state.id


def graph(probe):
    """What the graph shows served: services by node (clients count as a topic's users),
    publishers by topic."""
    names = set()
    for node in ('vla_node', 'vqa_service'):
        try:
            names |= {n for n, _t in probe.node.get_service_names_and_types_by_node(node, '/')}
        except _rclpy.NodeNameNonExistentError:   # not discovered yet, or gone
            pass
    return {'stop': '/stop' in names, 'vqa': '/vqa' in names,
            'cmd_vel': probe.node.count_publishers('cmd_vel') > 0,
            'caption': probe.node.count_publishers('caption') > 0}


def managed_vla(executor, **params):
    params = {'autostart': False, 'caption_rate': 0.0, 'threads': 3, **params}
    node = ManagedVLANode(parameter_overrides=[Parameter(k, value=v)
                                               for k, v in params.items()])
    executor.add_node(node)
    return node


def test_configure_loads_activate_serves_deactivate_stops_cleanup_frees(executor_pair):
    # threads=3: an engine of its own (shared_engine caches one per model and threads),
    # so the test can see the model freed at cleanup.
    vla = managed_vla(executor_pair[0])
    probe = Probe(executor_pair[1])
    probe.streaming = True
    manager = Manager(probe, 'vla_node')
    assert manager.state() == UNCONFIGURED and vla.engine is None
    assert manager.set(Transition.TRANSITION_CONFIGURE)
    assert manager.state() == INACTIVE and vla.engine is not None
    assert not any(graph(probe).values())          # inactive: nothing served yet
    assert manager.set(Transition.TRANSITION_ACTIVATE) and manager.state() == ACTIVE
    wait_for(lambda: graph(probe)['stop'] and graph(probe)['cmd_vel'], 'the node to serve')
    vla.actions.policy = lambda frame, text: (1.0, 0.0, 0.0)
    goals = GoalClient(executor_pair[1]).client   # made before its node is spun
    assert goals.wait_for_server(timeout_sec=20)
    handle = resolved(goals.send_goal_async(FollowInstruction.Goal(
        instruction='go to the red circle')), 'acceptance')
    assert handle.accepted
    wait_for(lambda: (0.5, 0.0) in probe.commands_after(0), 'cmd_vel')
    assert manager.set(Transition.TRANSITION_DEACTIVATE) and manager.state() == INACTIVE
    # Zero velocity and the reason went out before the publishers were destroyed.
    wait_for(lambda: probe.statuses[-1].state == 'stopped', 'the stopped status')
    assert probe.statuses[-1].reason == 'node deactivated'
    assert probe.commands_after(0)[-1] == (0.0, 0.0)
    # The running goal got its result; goals sent while inactive are rejected.
    result = resolved(handle.get_result_async(), 'the result').result
    assert (result.outcome, result.reason) == ('stopped', 'node deactivated')
    late = resolved(goals.send_goal_async(FollowInstruction.Goal(
        instruction='go to the red circle')), 'the answer to a goal while inactive')
    assert not late.accepted
    wait_for(lambda: not any(graph(probe).values()), 'the node to go quiet')
    assert vla.actions is None
    # Active again: a fresh set of entities, the same model.
    engine = weakref.ref(vla.engine)
    assert manager.set(Transition.TRANSITION_ACTIVATE)
    wait_for(lambda: graph(probe)['stop'], 'the node to serve again')
    assert vla.engine is engine()
    assert manager.set(Transition.TRANSITION_DEACTIVATE)
    assert manager.set(Transition.TRANSITION_CLEANUP) and manager.state() == UNCONFIGURED
    assert vla.engine is None
    gc.collect()
    assert engine() is None, 'cleanup must let go of the model'
    assert manager.set(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert manager.state() == FINALIZED


def test_shutdown_from_active_stops_the_robot_and_ends_the_goal(executor_pair):
    vla = managed_vla(executor_pair[0], autostart=True)    # configured and active at once
    probe = Probe(executor_pair[1])
    probe.streaming = True
    manager = Manager(probe, 'vla_node')
    assert manager.state() == ACTIVE
    vla.actions.policy = lambda frame, text: (0.4, 0.2, 0.0)
    goals = GoalClient(executor_pair[1]).client   # made before its node is spun
    assert goals.wait_for_server(timeout_sec=20)
    handle = resolved(goals.send_goal_async(FollowInstruction.Goal(
        instruction='go to the blue triangle')), 'acceptance')
    wait_for(lambda: any(c != (0.0, 0.0) for c in probe.commands_after(0)), 'cmd_vel')
    assert manager.set(Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert manager.state() == FINALIZED
    assert vla.actions is None and vla.engine is None
    wait_for(lambda: probe.commands_after(0)[-1] == (0.0, 0.0), 'zero velocity')
    wait_for(lambda: not any(graph(probe).values()), 'the node to go quiet')
    result = resolved(handle.get_result_async(), 'the result').result
    assert (result.outcome, result.reason) == ('stopped', 'node shut down')


def test_a_model_that_cannot_load_fails_configure_and_the_node_stays_unconfigured(
        executor_pair, tmp_path):
    managed_vla(executor_pair[0], model=str(tmp_path))
    probe = Probe(executor_pair[1])
    manager = Manager(probe, 'vla_node')
    assert not manager.set(Transition.TRANSITION_CONFIGURE)
    assert manager.state() == UNCONFIGURED


def test_managed_vqa_service_answers_only_while_active(executor_pair):
    vqa = ManagedVQAServiceNode(parameter_overrides=[Parameter('autostart', value=True)])
    executor_pair[0].add_node(vqa)
    probe = Probe(executor_pair[1])
    manager = Manager(probe, 'vqa_service')
    client = probe.node.create_client(VQA, 'vqa')
    assert client.wait_for_service(timeout_sec=20)
    frame = np.full((64, 64, 3), 255, np.uint8)
    frame[20:44, 20:44] = (30, 30, 200)
    reply = resolved(client.call_async(VQA.Request(question='what color is the shape?',
                                                   image=rgb_to_image(frame))), '/vqa')
    assert reply.success and reply.answer
    assert manager.set(Transition.TRANSITION_DEACTIVATE)
    wait_for(lambda: not graph(probe)['vqa'], '/vqa to go away')
    assert manager.set(Transition.TRANSITION_INACTIVE_SHUTDOWN)
    assert manager.state() == FINALIZED and vqa.engine is None
