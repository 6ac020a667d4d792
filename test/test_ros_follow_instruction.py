"""The VLA node's `follow_instruction` action over real DDS: feedback, result, cancel,
preemption by goals, by the `instruction` topic and by the `stop` service, refusals.

Policies are injected at the node's injection point (`node.actions.policy`), so these
tests check the action's contract independent of the model. Every wait is an upper bound
against hangs, not a timing assertion.
"""
import time

import pytest

rclpy = pytest.importorskip('rclpy')

from action_msgs.msg import GoalStatus  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402

from vla_ros.action import FollowInstruction  # noqa: E402
from test_ros_sim_actions import Probe, resolved, TIMEOUT_S, vla_node, wait_for  # noqa: E402

pytestmark = [pytest.mark.filterwarnings('error::pytest.PytestUnhandledThreadExceptionWarning')]


class GoalClient:
    """An ActionClient on a node of its own that records feedback. The client is made
    before its node is spun: rclpy's ActionClient registers itself with the node before
    its constructor has finished, so an executor spinning that node meanwhile can call it
    half-made (AttributeError in the executor thread, which then stops)."""

    def __init__(self, executor):
        self.node = rclpy.create_node('goal_client')
        self.client = ActionClient(self.node, FollowInstruction, 'follow_instruction')
        executor.add_node(self.node)
        self.feedback = []

    def send(self, instruction, time_limit=0.0):
        assert self.client.wait_for_server(timeout_sec=TIMEOUT_S), 'no action server'
        goal = FollowInstruction.Goal(instruction=instruction, time_limit=time_limit)
        handle = resolved(self.client.send_goal_async(
            goal, feedback_callback=lambda m: self.feedback.append(m.feedback)),
            f'the goal {instruction!r} to be accepted or rejected')
        return handle

    def result(self, handle):
        """(status, result) once the goal has ended."""
        response = resolved(handle.get_result_async(), 'the result')
        return response.status, response.result


@pytest.fixture
def rig(executor_pair):
    """A VLA node whose policy returns `rig.output` (linear, angular, done), a streaming
    camera probe and a goal client."""
    class Rig:
        output = (0.8, -3.0, 0.1)
    rig = Rig()
    rig.vla = vla_node(executor_pair[0], lambda frame, text: rig.output, max_linear=0.3)
    rig.probe = Probe(executor_pair[1])
    rig.probe.streaming = True
    rig.goals = GoalClient(executor_pair[1])
    return rig


def test_goal_gives_clamped_feedback_and_succeeds_when_done(rig):
    handle = rig.goals.send('go to the red circle')
    assert handle.accepted
    wait_for(lambda: any(f.linear > 0 for f in rig.goals.feedback), 'moving feedback')
    moving = next(f for f in rig.goals.feedback if f.linear > 0)
    assert moving.state == 'running'
    # Fractions of max_linear (0.3) and max_angular (1.5), clamped to [-1, 1].
    assert (moving.linear, moving.angular) == pytest.approx((0.24, -1.5))
    assert moving.done_probability == pytest.approx(0.1)
    assert moving.elapsed >= 0.0
    rig.output = (0.0, 0.0, 0.95)
    status, result = rig.goals.result(handle)
    assert status == GoalStatus.STATUS_SUCCEEDED
    assert (result.outcome, result.reason) == (FollowInstruction.Result.DONE, '')
    assert result.elapsed >= moving.elapsed
    assert rig.probe.commands_after(0)[-1] == (0.0, 0.0)
    assert rig.probe.statuses[-1].state == 'done'


def test_cancel_sends_zero_velocity_before_it_is_acknowledged(rig):
    published = []        # what the node publishes on cmd_vel, recorded in its process
    publisher = rig.vla.actions.cmd_pub

    class Recorder:
        def publish(self, twist):
            published.append((time.monotonic(), (twist.linear.x, twist.angular.z)))
            publisher.publish(twist)
    rig.vla.actions.cmd_pub = Recorder()
    handle = rig.goals.send('go to the blue triangle')
    wait_for(lambda: any(c != (0.0, 0.0) for _t, c in published), 'cmd_vel')
    response = resolved(handle.cancel_goal_async(), 'the cancel response')
    acknowledged = time.monotonic()
    assert len(response.goals_canceling) == 1
    # The zero went out from the cancel callback, before the response was sent.
    assert published[-1][1] == (0.0, 0.0) and published[-1][0] <= acknowledged
    status, result = rig.goals.result(handle)
    assert status == GoalStatus.STATUS_CANCELED
    assert result.outcome == FollowInstruction.Result.CANCELED
    wait_for(lambda: rig.probe.statuses[-1].state == 'stopped', 'the stopped status')
    assert rig.probe.statuses[-1].reason == 'goal canceled'
    wait_for(lambda: rig.probe.commands_after(0)[-1] == (0.0, 0.0), 'the zero over DDS')
    assert {c for t, c in published if t > acknowledged} <= {(0.0, 0.0)}


def test_a_new_goal_or_an_instruction_preempts_the_running_goal(rig):
    first = rig.goals.send('go to the red circle')
    wait_for(lambda: rig.goals.feedback, 'feedback for the first goal')
    second = rig.goals.send('face the green rectangle')
    status, result = rig.goals.result(first)
    assert status == GoalStatus.STATUS_ABORTED
    assert result.outcome == FollowInstruction.Result.PREEMPTED
    assert "'face the green rectangle'" in result.reason
    wait_for(lambda: rig.vla.actions.loop.instruction == 'face the green rectangle',
             'the second goal to run')
    rig.probe.instruct('go to the blue triangle', rig.vla)
    status, result = rig.goals.result(second)
    assert (status, result.outcome) == (GoalStatus.STATUS_ABORTED,
                                        FollowInstruction.Result.PREEMPTED)
    assert "instruction 'go to the blue triangle'" in result.reason
    assert rig.vla.actions.loop.state == 'running'      # the topic's instruction goes on


def test_the_stop_service_ends_a_goal_as_stopped(rig):
    handle = rig.goals.send('go to the red circle')
    wait_for(lambda: rig.goals.feedback, 'feedback')
    assert rig.probe.call(rig.probe.stop).success
    status, result = rig.goals.result(handle)
    assert (status, result.outcome, result.reason) == (
        GoalStatus.STATUS_ABORTED, FollowInstruction.Result.STOPPED, 'stop service')


def test_refusals_time_limits_and_bad_goals(rig):
    status, result = rig.goals.result(rig.goals.send('go to the purple hexagon'))
    assert (status, result.outcome) == (GoalStatus.STATUS_ABORTED,
                                        FollowInstruction.Result.REFUSED)
    assert "unknown colour 'purple'" in result.reason
    # A goal's own time limit replaces the node's action_timeout (60 s).
    status, result = rig.goals.result(rig.goals.send('go to the red circle', time_limit=0.5))
    assert (status, result.outcome) == (GoalStatus.STATUS_ABORTED,
                                        FollowInstruction.Result.TIMED_OUT)
    assert result.reason == 'no goal reached within 0.5 s' and result.elapsed >= 0.5
    assert rig.probe.commands_after(0)[-1] == (0.0, 0.0)
    for bad in (-1.0, float('nan')):
        assert not rig.goals.send('go to the red circle', time_limit=bad).accepted
