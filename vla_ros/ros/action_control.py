"""Instruction following for the VLA node: `instruction` in, `cmd_vel` and `action_status`
out, a `stop` service, all behind the ROS-free ActionLoop (vla_ros/control/).

- `instruction` (std_msgs/String) starts following it (or refuses it, with the reason);
  a new instruction replaces the running one; "stop" stops.
- `cmd_vel` (geometry_msgs/Twist) at `control_rate` Hz while running: the policy's
  output for the newest camera frame, clamped to `max_linear` / `max_angular`, zero for
  non-finite outputs; zero once when the episode ends (done, refused, timed out, stopped).
- The watchdog zeroes `cmd_vel` within `frame_timeout` of the last camera frame. It runs
  on its own thread, not on the executor, so a slow or stuck model call cannot delay it
  (a stuck call also stops frames from being taken, so they go stale and it fires).
- `stop` (std_srvs/Trigger) halts at once.
- `instruction_keepalive` > 0 turns `instruction` into a deadman (see ActionLoop): the
  robot stops when the running instruction is not re-sent in time.
- `action_status` (vla_ros/ActionStatus) on every state change.
- `follow_instruction` (vla_ros/action/FollowInstruction): the same loop as an action,
  with feedback and cancel (instruction_goals.py).

Policy injection point: `policy` is a callable (rgb frame, instruction) -> (linear,
angular, done) with velocities as fractions of the maximum speeds, by default the
model's InferenceEngine.act. Tests and the simulated demo replace it (e.g. with a policy
returning huge or NaN values) to check the safety properties independent of the model.
"""
import math
import threading
import time

from geometry_msgs.msg import Twist
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger

from ..control.action_loop import ActionLoop, REFUSED, RUNNING
from ..control.velocity_safety import VelocityLimits, WATCHDOG_PERIOD_S
from ..engine import QuestionError
from ..msg import ActionStatus
from ..preprocess import ImageError
from ..control.instructions import InstructionRefused
from .camera_input import LOG_THROTTLE_S
from .instruction_goals import InstructionGoals
from .params import LATCHED_QOS, Param, param_values

ACTION_PARAMS = (
    Param('control_rate', 10.0, 'cmd_vel commands per second while following an instruction',
          range=(1.0, 100.0)),
    Param('max_linear', 0.5, 'm/s: forward speed at the policy\'s full output, and the clamp '
          '(0.5 is the simulated robot the model is trained on)', range=(0.0, 2.0), dynamic=True),
    Param('max_angular', 1.5, 'rad/s: turn rate at the policy\'s full output, and the clamp',
          range=(0.0, 6.0), dynamic=True),
    Param('frame_timeout', 0.5, 'seconds: zero velocity is published within this time after '
          'camera frames stop or go stale', range=(0.05, 10.0), dynamic=True),
    Param('action_timeout', 60.0, 'seconds: an instruction not done by then times out',
          range=(1.0, 3600.0), dynamic=True),
    Param('done_threshold', 0.5, 'done probability at which the goal counts as reached',
          range=(0.0, 1.0), dynamic=True),
    Param('instruction_keepalive', 0.0, 'seconds; > 0 makes `instruction` a deadman: the '
          'running instruction must be re-sent this often or the robot stops (0 = off)',
          range=(0.0, 60.0), dynamic=True),
)


class ActionControl:
    """Wires an ActionLoop into `node` (which must have declared ACTION_PARAMS)."""

    def __init__(self, node, camera, engine):
        self.node, self.camera = node, camera
        self._engine = engine
        self.on_grounding = None     # (frame header, GroundingResult): where the policy looked
        self._grounding = None       # the model policy's last grounding, not yet passed on
        p = param_values(node, ACTION_PARAMS)
        self.loop = ActionLoop(VelocityLimits(p['max_linear'], p['max_angular']),
                               p['frame_timeout'], p['action_timeout'], p['done_threshold'],
                               known_words=engine.known_words,
                               keepalive=p['instruction_keepalive'],
                               parse=engine.parse_instruction)
        self.policy = self._model_policy       # the injection point (see the module doc)
        self._lock = threading.Lock()   # a decision and its publication happen together
        self._frame_id = ''
        self.last_command = (0.0, 0.0)         # m/s, rad/s: what cmd_vel said last
        self.last_done = 0.0                   # the policy's last done probability
        self.cmd_pub = node.create_publisher(Twist, 'cmd_vel', 10)
        self.status_pub = node.create_publisher(ActionStatus, 'action_status', LATCHED_QOS)
        node.create_subscription(String, 'instruction', self._on_instruction, 10)
        self.stop_service = node.create_service(Trigger, 'stop', self._on_stop)
        node.create_timer(1.0 / p['control_rate'], self._control_tick)
        node.add_post_set_parameters_callback(self._on_parameters_set)
        self.goals = InstructionGoals(node, self)
        self._closed = threading.Event()
        self._watchdog_thread = threading.Thread(target=self._watch, daemon=True,
                                                 name=f'{node.get_name()}_watchdog')
        self._watchdog_thread.start()

    @property
    def policy(self):
        return self._policy

    @policy.setter
    def policy(self, policy):
        """Any policy but the model's judges instructions itself: the model's vocabulary
        then refuses no words (the expert knows 3D shapes the 2D model never read)."""
        self._policy = policy
        self.loop.known_words = (self._engine.known_words if policy == self._model_policy
                                 else None)

    def close(self, reason: str = 'node shutting down'):
        """End a running goal (its server then rejects goals; the node destroys it) and
        stop the watchdog thread (before the node and its publishers are destroyed)."""
        self.goals.close(reason)
        self._closed.set()
        self._watchdog_thread.join(timeout=1.0)

    # -- for the action server (executor thread) --------------------------------------------
    def start(self, text: str, timeout=None, deadman: bool = True) -> int:
        """Follow `text` (see ActionLoop.start); returns the loop's instruction id."""
        with self._lock:
            self.last_done = 0.0
            self._emit(self.loop.start(text, time.monotonic(), timeout, deadman))
            return self.loop.instruction_id

    def stop(self, reason: str):
        with self._lock:
            self._emit(self.loop.stop(time.monotonic(), reason))

    def command_fractions(self) -> tuple:
        """The last command as fractions of the speed limits (for drawing it)."""
        limits = self.loop.limits
        return tuple(v / m if m > 0 else 0.0 for v, m in
                     zip(self.last_command, (limits.max_linear, limits.max_angular)))

    def _model_policy(self, rgb, instruction):
        result = self._engine.act(rgb, instruction)
        self._grounding = result.grounding
        return result.linear, result.angular, result.done

    # -- publishing -------------------------------------------------------------------------
    def _emit(self, out):
        if out.command is not None:
            twist = Twist()
            twist.linear.x, twist.angular.z = out.command
            self.cmd_pub.publish(twist)
            self.last_command = out.command
        if out.status is not None:
            s = out.status
            header = Header(stamp=self.node.get_clock().now().to_msg(), frame_id=self._frame_id)
            self.status_pub.publish(ActionStatus(header=header, instruction=s.instruction,
                                                 state=s.state, reason=s.reason,
                                                 elapsed=s.elapsed))
            text = f'{s.instruction!r}: {s.state}' + (f' ({s.reason})' if s.reason else '')
            if s.state == REFUSED:   # (rclpy: one severity per logging call site)
                self.node.get_logger().warning(text)
            else:
                self.node.get_logger().info(text)

    def _frame_age(self, now):
        frame = self.camera.cache.latest()
        return frame, (frame.age(now) if frame is not None else None)

    # -- callbacks (none raises: a failure stops the episode with the reason) ------------------
    def _on_instruction(self, msg: String):
        self.start(msg.data)
        self.goals.update()

    def _on_stop(self, request, response):
        with self._lock:
            was = self.loop.instruction if self.loop.state == RUNNING else ''
            self._emit(self.loop.stop(time.monotonic(), 'stop service'))
        self.goals.update()
        response.success = True
        response.message = f'stopped {was!r}' if was else 'nothing running; zero velocity sent'
        return response

    def _watch(self):
        while not self._closed.wait(WATCHDOG_PERIOD_S):
            try:
                with self._lock:
                    now = time.monotonic()
                    self._emit(self.loop.watchdog(now, self._frame_age(now)[1]))
            except Exception as e:  # noqa: BLE001 - the watchdog must outlive any error
                self.node.get_logger().error(f'watchdog: {type(e).__name__}: {e}',
                                             throttle_duration_sec=LOG_THROTTLE_S)

    def _control_tick(self):
        try:
            self._tick()
        finally:
            self.goals.update()      # feedback, or the goal's result once it ended

    def _tick(self):
        with self._lock:
            now = time.monotonic()
            frame, age = self._frame_age(now)
            episode, out = self.loop.before_act(now, age)
            self._emit(out)
            instruction = self.loop.instruction
        if episode is None:
            return
        try:   # the slow part, outside the lock: stop and watchdog stay responsive
            self._grounding = None
            linear, angular, done = self.policy(frame.rgb(), instruction)
            if self._grounding is not None and self.on_grounding is not None:
                self.on_grounding(frame.header, self._grounding)
        except (QuestionError, InstructionRefused) as e:   # e.g. too many tokens: not acted on
            with self._lock:
                self._emit(self.loop.fail(episode, time.monotonic(), str(e), REFUSED))
            return
        except ImageError as e:      # this frame is unusable; the next one may be fine
            with self._lock:
                self._emit(self.loop.hold(episode, time.monotonic(),
                                          f'camera frame unusable: {e}; holding still'))
            return
        except Exception as e:  # noqa: BLE001 - a callback must not raise
            self.node.get_logger().error(f'policy failed: {type(e).__name__}: {e}',
                                         throttle_duration_sec=LOG_THROTTLE_S)
            with self._lock:
                self._emit(self.loop.fail(episode, time.monotonic(),
                                          f'internal error: {type(e).__name__}: {e}'))
            return
        with self._lock:
            now = time.monotonic()
            self._frame_id = frame.header.frame_id
            self.last_done = _probability(done)
            # the age of the frame acted on, not of the newest one: a slow model's command
            # is from an old view, and is held like a stale camera (action_loop.after_act)
            self._emit(self.loop.after_act(episode, now, frame.age(now),
                                           linear, angular, done))

    def _on_parameters_set(self, parameters):
        names = {p.name for p in parameters}
        p = param_values(self.node, ACTION_PARAMS)
        with self._lock:
            if names & {'max_linear', 'max_angular'}:
                self.loop.limits = VelocityLimits(p['max_linear'], p['max_angular'])
            if 'frame_timeout' in names:
                self.loop.set_frame_timeout(p['frame_timeout'])
            self.loop.episode_timeout = p['action_timeout']
            self.loop.done_threshold = p['done_threshold']
            self.loop.keepalive = p['instruction_keepalive']


def _probability(x) -> float:
    """`x` as a probability for feedback: 0 when it is not a finite number."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return 0.0
    return min(1.0, max(0.0, x)) if math.isfinite(x) else 0.0
