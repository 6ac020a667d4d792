"""The instruction-following loop as a state machine, without ROS (the VLA node wires it).

    idle --instruction--> running --done--> done
                             |-----------> timed_out   (episode longer than episode_timeout)
                             |-----------> stopped     (stop service, "stop", internal error,
                             |                          instruction not renewed in time)
    any --bad instruction--> refused                   (never acted on)

Every method returns an Output: a command to publish now ((m/s, rad/s), or None for
nothing) and a Status to publish (or None when nothing changed). Every transition out of
running commands zero. While running, a control tick is split in two so the slow policy
call happens outside the lock: `before_act` says whether to call the policy (not when the
frame is stale: zero instead), `after_act` turns its output into a safe command, unless
the episode ended meanwhile (a stop during inference wins). `watchdog` zeroes the command
when frames stop, even while a policy call is stuck. Thread-safe.

Keepalive (deadman): with `keepalive` > 0 the running instruction must be re-sent (the
same text) at least every `keepalive` seconds, as an operator console or teleop panel
does; a repeat renews the episode instead of restarting it. When the sender dies (even
killed with SIGKILL, which DDS notices only after a lease of many seconds) the episode
stops with zero velocity within `keepalive` plus one watchdog period. Off (0) by
default, because a one-shot `ros2 topic pub --once` instruction must keep working.
"""
import math
import threading
from dataclasses import dataclass
from typing import NamedTuple, Optional

from .instructions import InstructionRefused, parse_instruction, words
from .velocity_safety import FrameWatchdog, safe_velocity, VelocityLimits

RUNNING, DONE, REFUSED, TIMED_OUT, STOPPED = 'running', 'done', 'refused', 'timed_out', 'stopped'
ZERO = (0.0, 0.0)


@dataclass(frozen=True)
class Status:
    instruction: str
    state: str
    reason: str = ''
    elapsed: float = 0.0     # seconds since the instruction arrived


class Output(NamedTuple):
    command: Optional[tuple] = None   # (linear m/s, angular rad/s) to publish now
    status: Optional[Status] = None   # to publish when not None


class ActionLoop:
    """One instruction at a time: its state, and the commands it allows (see above)."""

    def __init__(self, limits: VelocityLimits, frame_timeout: float = 0.5,
                 episode_timeout: float = 60.0, done_threshold: float = 0.5,
                 known_words=None, keepalive: float = 0.0, parse=parse_instruction):
        """`known_words`: if given, instructions with any other word are refused (the
        model's vocabulary: a word it never saw cannot be grounded). `parse`: text -> a
        goal with a `kind` (goto, face, stop), raising InstructionRefused: the bundled
        model's strict parser, or visual_servo.parse_open_instruction for models that
        ground free-text targets."""
        self.parse = parse
        self.limits = limits
        self.frames = FrameWatchdog(frame_timeout)
        self.episode_timeout = episode_timeout
        self.done_threshold = done_threshold
        self.known_words = known_words
        self.keepalive = keepalive   # seconds; 0 = instructions need not be re-sent
        self._renewed = 0.0          # when the running instruction last arrived
        self._deadman = True         # keepalive applies to the running instruction
        self._timeout = None         # the running instruction's own time limit (s) or None
        self._instructions = 0       # incremented by every new instruction (not by repeats)
        self._lock = threading.Lock()
        self._episode = 0            # incremented by every instruction and stop
        self._instruction = ''
        self._state = None           # None = idle (nothing received yet)
        self._reason = ''
        self._started = 0.0
        self._last_command = ZERO

    def set_frame_timeout(self, timeout: float):
        self.frames = FrameWatchdog(timeout)

    # -- read-only views ------------------------------------------------------------------
    @property
    def instruction(self) -> str:
        return self._instruction

    @property
    def state(self) -> Optional[str]:
        return self._state

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def instruction_id(self) -> int:
        """Counts instructions: changes when a new one replaces the last (not on repeats)."""
        return self._instructions

    @property
    def last_command(self) -> tuple:
        return self._last_command

    # -- events -----------------------------------------------------------------------------
    def start(self, text: str, now: float, timeout: Optional[float] = None,
              deadman: bool = True) -> Output:
        """A new instruction: replaces any running one. Refusals command zero too.
        `timeout` (s) replaces episode_timeout for this instruction; `deadman=False`
        exempts it from the keepalive (an action goal: its client is the liveness)."""
        with self._lock:
            if deadman and self._deadman and self.keepalive > 0 and \
                    self._state == RUNNING and text == self._instruction:
                self._renewed = now       # the deadman repeat: keep going, do not restart
                return Output()
            self._episode += 1
            self._instructions += 1
            self._deadman, self._timeout = deadman, timeout
            self._instruction, self._started, self._renewed = text, now, now
            self._state = None   # so a status is published for this instruction
            try:
                goal = self.parse(text)
                unknown = [w for w in words(text) if self.known_words is not None
                           and w not in self.known_words]
                if unknown:
                    raise InstructionRefused('the model does not know the word(s) '
                                             + ', '.join(repr(w) for w in unknown))
            except InstructionRefused as e:
                return self._end(REFUSED, str(e), now)
            if goal.kind == 'stop':
                return self._end(STOPPED, 'stop instruction', now)
            return self._set(RUNNING, '', now)

    def stop(self, now: float, reason: str = 'stop requested') -> Output:
        """Halt now. Commands zero even when nothing is running (a stop is never ignored)."""
        with self._lock:
            self._episode += 1
            if self._state == RUNNING:
                return self._end(STOPPED, reason, now)
            return self._zero(None)

    def before_act(self, now: float, frame_age: Optional[float]):
        """(episode to pass to after_act, or None: do not call the policy; Output)."""
        with self._lock:
            if self._state != RUNNING:
                return None, Output()
            limit = self.episode_timeout if self._timeout is None else self._timeout
            if now - self._started > limit:
                return None, self._end(TIMED_OUT, f'no goal reached within {limit:g} s', now)
            if self._not_renewed(now):
                return None, self._end_not_renewed(now)
            if self.frames.stale(frame_age):
                return None, self._hold_zero(now, frame_age)
            return self._episode, Output()

    def after_act(self, episode: int, now: float, frame_age: Optional[float],
                  linear: float, angular: float, done: float) -> Output:
        """The policy's output for `episode` -> a safe command (or nothing if it ended).
        `frame_age`: the age, now, of the frame the policy acted on: a policy slower than
        the frame timeout (a pretrained model taking seconds) steers by an old view, and
        is held still like a stopped camera."""
        with self._lock:
            if episode != self._episode or self._state != RUNNING:
                return Output()    # stopped, replaced or timed out while the policy ran
            if self.frames.stale(frame_age):
                return self._hold_zero(now, frame_age, acted=True)
            if isinstance(done, (int, float)) and math.isfinite(done) and \
                    done >= self.done_threshold:
                return self._end(DONE, '', now)
            command = safe_velocity(linear, angular, self.limits)
            reason = '' if _finite(linear, angular) else 'policy output is not finite; zero'
            status = self._set(RUNNING, reason, now).status
            self._last_command = command
            return Output(command, status)

    def fail(self, episode: int, now: float, reason: str, state: str = STOPPED) -> Output:
        """The policy could not act (it raised): end `episode` in `state` with the reason."""
        with self._lock:
            if episode != self._episode or self._state != RUNNING:
                return Output()
            return self._end(state, reason, now)

    def hold(self, episode: int, now: float, reason: str) -> Output:
        """No action this tick (e.g. an undecodable frame): zero, but keep running."""
        with self._lock:
            if episode != self._episode or self._state != RUNNING:
                return Output()
            return self._zero(self._set(RUNNING, reason, now).status)

    def watchdog(self, now: float, frame_age: Optional[float]) -> Output:
        """Zero the command as soon as frames go stale or the instruction was not renewed
        in time (keepalive), whatever the control tick is doing."""
        with self._lock:
            if self._state == RUNNING and self._not_renewed(now):
                self._episode += 1        # an in-flight policy call must not act on it
                return self._end_not_renewed(now)
            if self._state == RUNNING and self.frames.stale(frame_age) and \
                    self._last_command != ZERO:
                return self._hold_zero(now, frame_age)
            return Output()

    # -- helpers (lock held) ----------------------------------------------------------------
    def _not_renewed(self, now: float) -> bool:
        return self._deadman and self.keepalive > 0 and now - self._renewed > self.keepalive

    def _end_not_renewed(self, now: float) -> Output:
        return self._end(STOPPED, f'instruction not renewed within {self.keepalive:g} s '
                         '(instruction_keepalive): its publisher stopped', now)

    def _status(self, now: float) -> Status:
        return Status(self._instruction, self._state, self._reason,
                      max(0.0, now - self._started))

    def _set(self, state: str, reason: str, now: float) -> Output:
        """Enter `state`; the Status is returned only when state or reason changed."""
        changed = (state, reason) != (self._state, self._reason)
        self._state, self._reason = state, reason
        return Output(None, self._status(now) if changed else None)

    def _zero(self, status: Optional[Status]) -> Output:
        self._last_command = ZERO
        return Output(ZERO, status)

    def _end(self, state: str, reason: str, now: float) -> Output:
        self._state, self._reason = state, reason
        return self._zero(self._status(now))

    def _hold_zero(self, now: float, frame_age: Optional[float], acted: bool = False) -> Output:
        if frame_age is None:
            reason = 'no camera frame yet; holding still'
        elif acted:
            reason = ('the frame the policy acted on is stale (camera stopped, or the model '
                      'is slower than frame_timeout); holding still')
        else:
            reason = 'camera frames stopped or are stale; holding still'
        return self._zero(self._set(RUNNING, reason, now).status)


def _finite(*xs) -> bool:
    try:
        return all(math.isfinite(float(x)) for x in xs)
    except (TypeError, ValueError):
        return False
