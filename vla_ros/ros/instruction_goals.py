"""The `follow_instruction` action (vla_ros/action/FollowInstruction) of the VLA node.

A goal is an instruction for the same ActionLoop the `instruction` topic drives, so it
gets the same safety layer (speed clamps, frame watchdog, zero velocity at every end):

- accepted goals start at once; a new goal, an `instruction` message or the `stop`
  service ends the running goal (outcome `preempted`, or `stopped` for the service);
- feedback on every control tick: the loop's state and reason, the command published
  last, the policy's done probability, the elapsed time;
- cancel stops the loop in the cancel callback itself, so zero velocity goes out before
  the cancel is even acknowledged; the goal then ends `canceled`;
- the result's outcome is the loop's end state (`done` succeeds the goal; the rest abort).
- a node that stops serving (a lifecycle deactivate or shutdown) ends the running goal
  `stopped` with its reason and refuses new goals; its server stays until the node serves
  again or is destroyed, so that result still reaches the client (managed.py);
- the node's `instruction_keepalive` deadman does not apply to goals: the action client
  is their liveness (a client that disappears leaves the goal to its time limit, which
  `time_limit` bounds per goal).

Everything here runs on the node's executor thread: ActionControl calls `update()` after
the control tick and the callbacks that change the loop; the execute callback is a
coroutine that awaits the goal's end without blocking the executor.
"""
import time

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.task import Future

from ..action import FollowInstruction
from ..control.action_loop import RUNNING

Result = FollowInstruction.Result


class RunningGoal:
    """A goal, the loop instruction it started, and the future its execution awaits."""

    def __init__(self, handle, instruction_id: int, started: float):
        self.handle = handle
        self.instruction_id = instruction_id
        self.finished = Future()
        self.canceled = False
        self.started = started     # read before the loop's own start: elapsed >= its limit


class InstructionGoals:
    """Serves `follow_instruction` for an ActionControl (see the module doc)."""

    def __init__(self, node, control):
        self.node, self.control = node, control
        self.goal = None            # the RunningGoal, or None
        self.closed = False         # after close(): new goals are rejected
        self.server = ActionServer(
            node, FollowInstruction, 'follow_instruction', self._execute,
            goal_callback=self._on_goal, cancel_callback=self._on_cancel)

    def close(self, reason: str):
        """End the running goal (`stopped`, `reason`) and reject goals from now on; the
        server stays, so the goal's result is still sent."""
        self.closed = True
        self._finish(Result.STOPPED, reason)

    # -- server callbacks ---------------------------------------------------------------------
    def _on_goal(self, request) -> GoalResponse:
        if self.closed:
            self.node.get_logger().warning(
                f'goal {request.instruction!r} rejected: the node is not active')
            return GoalResponse.REJECT
        if not (request.time_limit >= 0.0):   # NaN fails this too
            self.node.get_logger().warning(
                f'goal {request.instruction!r} rejected: time_limit must be >= 0 seconds, '
                f'got {request.time_limit}')
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_cancel(self, handle) -> CancelResponse:
        goal = self.goal
        if goal is None or goal.handle is not handle:
            return CancelResponse.ACCEPT    # already ended: its result is on its way
        goal.canceled = True
        self.control.stop('goal canceled')  # zero velocity now, then update() ends it
        return CancelResponse.ACCEPT

    async def _execute(self, handle):
        request = handle.request
        limit = request.time_limit if request.time_limit > 0 else None
        self._finish(Result.PREEMPTED, f'preempted by the goal {request.instruction!r}')
        started = time.monotonic()
        instruction_id = self.control.start(request.instruction, limit, deadman=False)
        goal = self.goal = RunningGoal(handle, instruction_id, started)
        self.update()                        # a refusal ends it right here
        outcome, reason, elapsed = await goal.finished
        if outcome == Result.CANCELED and handle.is_cancel_requested:
            handle.canceled()
        elif outcome == Result.DONE:
            handle.succeed()
        else:
            handle.abort()
        return Result(outcome=outcome, reason=reason, elapsed=elapsed)

    # -- called by ActionControl on the executor thread ----------------------------------------
    def update(self):
        """Feedback for the running goal, or its result once its instruction ended."""
        goal, loop = self.goal, self.control.loop
        if goal is None:
            return
        if loop.instruction_id != goal.instruction_id:
            self._finish(Result.PREEMPTED, f'preempted by the instruction {loop.instruction!r}')
        elif loop.state != RUNNING:
            if goal.canceled:
                self._finish(Result.CANCELED, 'canceled')
            else:
                self._finish(loop.state, loop.reason)
        else:
            linear, angular = loop.last_command
            goal.handle.publish_feedback(FollowInstruction.Feedback(
                state=loop.state, reason=loop.reason, linear=linear, angular=angular,
                done_probability=self.control.last_done,
                elapsed=time.monotonic() - goal.started))

    def _finish(self, outcome: str, reason: str):
        goal, self.goal = self.goal, None
        if goal is not None:
            goal.finished.set_result((outcome, reason, time.monotonic() - goal.started))
