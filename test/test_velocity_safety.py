"""Safety between a policy and cmd_vel, without ROS: clamps, non-finite outputs, the frame
watchdog, timeouts, stop, refusals, and the action loop's states. Times are explicit
arguments, so nothing here sleeps."""
import math

import pytest

from vla_ros.control.action_loop import (ActionLoop, DONE, REFUSED, RUNNING, STOPPED,
                                         TIMED_OUT, ZERO)
from vla_ros.control.velocity_safety import FrameWatchdog, safe_velocity, VelocityLimits

LIMITS = VelocityLimits(0.5, 1.5)


@pytest.mark.parametrize('out, command', [
    ((0.5, -0.5), (0.25, -0.75)),
    ((1e9, -1e9), (0.5, -1.5)),               # huge outputs: clamped to the limits
    ((-3.0, 2.0), (-0.5, 1.5)),
    ((float('nan'), 0.3), ZERO),              # non-finite: zero, both components
    ((0.3, float('inf')), ZERO),
    ((float('-inf'), float('nan')), ZERO),
    ((None, 0.1), ZERO),
    (('fast', 0.1), ZERO),
])
def test_safe_velocity(out, command):
    assert safe_velocity(*out, LIMITS) == pytest.approx(command)


def test_zero_limits_mean_standing_still():
    assert safe_velocity(1.0, 1.0, VelocityLimits(0.0, 0.0)) == ZERO


def test_watchdog_declares_frames_stale_in_time_for_the_bound():
    dog = FrameWatchdog(timeout=0.5, check_period=0.02)
    # A stale frame is noticed at most one check period after stale_after, and the
    # remaining margin covers publishing: the zero goes out within the timeout.
    assert dog.stale_after + dog.check_period <= 0.5 - 0.1
    assert not dog.stale(0.0) and not dog.stale(0.3)
    assert dog.stale(0.35) and dog.stale(None) and dog.stale(float('nan'))
    assert FrameWatchdog(0.1).stale_after == pytest.approx(0.05)


def running(loop=None, text='go to the red circle', now=0.0):
    loop = loop or ActionLoop(LIMITS)
    out = loop.start(text, now)
    assert out.status.state == RUNNING and out.command is None
    return loop


def act(loop, now, output, age=0.05):
    episode, out = loop.before_act(now, age)
    assert episode is not None, out
    return loop.after_act(episode, now, age, *output)


def test_running_commands_are_clamped_and_done_stops_with_zero():
    loop = running()
    out = act(loop, 0.1, (1e6, -1e6, 0.0))
    assert out.command == (0.5, -1.5) and out.status is None   # no state change, no status
    out = act(loop, 0.2, (0.2, 0.1, 0.9))
    assert out.command == ZERO and out.status.state == DONE
    assert loop.before_act(0.3, 0.05) == (None, (None, None))   # finished: nothing more


def test_non_finite_outputs_become_zero_and_say_so():
    loop = running()
    out = act(loop, 0.1, (float('nan'), 0.5, 0.0))
    assert out.command == ZERO and out.status.reason == 'policy output is not finite; zero'
    out = act(loop, 0.2, (0.2, 0.0, float('nan')))            # NaN done: not done
    assert out.command == (0.1, 0.0) and out.status.reason == ''


def test_stale_frames_hold_zero_and_the_watchdog_fires_once_per_spell():
    loop = running()
    assert act(loop, 0.1, (1.0, 0.0, 0.0)).command == (0.5, 0.0)
    out = loop.watchdog(0.2, 0.1)
    assert out == (None, None)                                # fresh: nothing to do
    out = loop.watchdog(0.6, 0.5)
    assert out.command == ZERO and 'stale' in out.status.reason
    assert loop.watchdog(0.62, 0.52) == (None, None)          # already zero
    episode, out = loop.before_act(0.7, 0.6)                  # control tick: no policy call
    assert episode is None and out.command == ZERO
    assert loop.state == RUNNING
    out = act(loop, 0.8, (1.0, 0.0, 0.0))                     # frames are back
    assert out.command == (0.5, 0.0) and out.status.reason == ''


def test_no_frame_at_all_holds_zero():
    loop = running()
    episode, out = loop.before_act(0.1, None)
    assert episode is None and out.command == ZERO and 'no camera frame' in out.status.reason


def test_a_frame_going_stale_during_inference_is_not_acted_on():
    loop = running()
    episode, _ = loop.before_act(0.1, 0.05)
    out = loop.after_act(episode, 0.6, 0.55, 1.0, 0.0, 0.0)   # a policy slower than the timeout
    assert out.command == ZERO
    assert 'the frame the policy acted on is stale' in out.status.reason


def test_stop_during_inference_wins():
    loop = running()
    episode, _ = loop.before_act(0.1, 0.05)
    stop = loop.stop(0.15)
    assert stop.command == ZERO and stop.status.state == STOPPED
    assert loop.after_act(episode, 0.2, 0.05, 1.0, 1.0, 0.0) == (None, None)


def test_stop_when_idle_still_commands_zero():
    loop = ActionLoop(LIMITS)
    out = loop.stop(0.0)
    assert out.command == ZERO and out.status is None


def test_episode_timeout():
    loop = running(ActionLoop(LIMITS, episode_timeout=5.0))
    assert act(loop, 4.9, (1.0, 0.0, 0.0)).command == (0.5, 0.0)
    episode, out = loop.before_act(5.1, 0.05)
    assert episode is None and out.command == ZERO and out.status.state == TIMED_OUT
    assert out.status.elapsed == pytest.approx(5.1) and '5 s' in out.status.reason


def test_refusals_are_never_acted_on_and_stop_a_running_episode():
    loop = running()
    out = loop.start('go to the purple hexagon', 1.0)
    assert out.command == ZERO and out.status.state == REFUSED
    assert "unknown colour 'purple'" in out.status.reason
    assert loop.before_act(1.1, 0.05)[0] is None
    out = loop.start('stop', 2.0)
    assert out.command == ZERO and out.status.state == STOPPED


def test_words_the_model_does_not_know_are_refused():
    loop = ActionLoop(LIMITS, known_words={'go', 'to', 'the', 'red', 'circle'})
    assert loop.start('go to the red circle', 0.0).status.state == RUNNING
    out = loop.start('go to the grey circle', 1.0)
    assert out.status.state == REFUSED and "'grey'" in out.status.reason


def test_a_new_instruction_replaces_the_running_one():
    loop = running()
    episode, _ = loop.before_act(0.1, 0.05)
    running(loop, 'turn towards the blue triangle', 0.2)
    assert loop.after_act(episode, 0.3, 0.05, 1.0, 0.0, 0.0) == (None, None)
    assert act(loop, 0.4, (0.0, 0.3, 0.0)).command == (0.0, pytest.approx(0.45))
    assert loop.instruction == 'turn towards the blue triangle'


def test_policy_failures_end_the_episode_with_the_reason():
    loop = running()
    episode, _ = loop.before_act(0.1, 0.05)
    out = loop.fail(episode, 0.2, 'instruction is 90 tokens long', REFUSED)
    assert out.command == ZERO and out.status.state == REFUSED
    loop = running()
    episode, _ = loop.before_act(0.1, 0.05)
    out = loop.hold(episode, 0.2, 'camera frame unusable')
    assert out.command == ZERO and loop.state == RUNNING
    assert math.isclose(out.status.elapsed, 0.2)


def test_keepalive_repeats_renew_and_silence_stops_even_during_inference():
    loop = running(ActionLoop(LIMITS, keepalive=0.3))
    assert act(loop, 0.1, (1.0, 0.0, 0.0)).command == (0.5, 0.0)
    assert loop.start('go to the red circle', 0.25) == (None, None)   # renewal, no restart
    assert loop.watchdog(0.5, 0.05) == (None, None)                  # renewed at 0.25
    assert act(loop, 0.5, (1.0, 0.0, 0.0)).command == (0.5, 0.0)
    episode, _ = loop.before_act(0.52, 0.05)                          # a policy call starts
    out = loop.watchdog(0.56, 0.05)                                   # 0.31 s of silence
    assert out.command == ZERO and out.status.state == STOPPED
    assert 'not renewed' in out.status.reason
    assert loop.after_act(episode, 0.6, 0.05, 1.0, 0.0, 0.0) == (None, None)
    assert loop.before_act(0.7, 0.05) == (None, (None, None))


def test_without_keepalive_a_repeat_restarts_and_silence_is_fine():
    loop = running()
    out = loop.start('go to the red circle', 5.0)
    assert out.status.state == RUNNING and out.status.elapsed == 0.0
    assert loop.watchdog(60.0, 0.05) == (None, None)
