"""The `ask` action (vla_ros/action/Ask): a question whose reply streams back as feedback
and whose generation stops when the goal is canceled. Made for slow models (the
transformers backend streams token by token; the bundled model replies in a few ms, so
its feedback is the whole reply, once).

Each goal generates on a worker thread, so the executor stays free to take cancel
requests, other goals and `vqa` calls (which wait for the model's lock). The worker
hands its result back through a Handoff (handoff.py), so every action-server call except
feedback happens on the executor thread.
"""
import threading

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.task import Future

from ..action import Ask
from .handoff import Handoff

CANCELED = 'canceled'


class AskGoal:
    def __init__(self, handle):
        self.handle = handle
        self.cancel = threading.Event()
        self.finished = Future()


class AskGoals:
    """Serves `ask` on `node`; `reply(request, result, on_text)` fills an Ask.Result (the
    same fields as the VQA service's response) and may call `on_text` as the text grows."""

    def __init__(self, node, reply):
        self.node, self.reply = node, reply
        self._lock = threading.Lock()
        self._running = {}       # goal id bytes -> AskGoal
        self._results = Handoff(node)
        self.closed = False      # after close(): new goals are rejected
        self.server = ActionServer(node, Ask, 'ask', self._execute,
                                   goal_callback=self._on_goal,
                                   cancel_callback=self._on_cancel)

    def close(self, reason: str):
        """Running goals end now with `reason` as their error (their generation is told to
        stop) and new goals are rejected; the server stays, so those results go out."""
        self.closed = True
        with self._lock:
            running = list(self._running.values())
        for goal in running:
            goal.cancel.set()
            if not goal.finished.done():
                goal.finished.set_result(Ask.Result(success=False, error=reason))

    def _on_goal(self, request) -> GoalResponse:
        if self.closed:
            self.node.get_logger().warning('ask goal rejected: the node is not active')
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_cancel(self, handle) -> CancelResponse:
        with self._lock:
            goal = self._running.get(bytes(handle.goal_id.uuid))
        if goal is not None:
            goal.cancel.set()
        return CancelResponse.ACCEPT

    async def _execute(self, handle):
        goal = AskGoal(handle)
        with self._lock:
            self._running[bytes(handle.goal_id.uuid)] = goal
        threading.Thread(target=self._work, args=(goal,), daemon=True,
                         name=f'{self.node.get_name()}_ask').start()
        result = await goal.finished
        with self._lock:
            self._running.pop(bytes(handle.goal_id.uuid), None)
        if result.success:
            handle.succeed()
        elif goal.cancel.is_set() and handle.is_cancel_requested:
            handle.canceled()
        else:
            handle.abort()
        return result

    def _work(self, goal: AskGoal):
        def on_text(text: str, tokens: int) -> bool:
            if not goal.cancel.is_set():
                try:
                    goal.handle.publish_feedback(Ask.Feedback(partial_answer=text,
                                                              tokens=tokens))
                except Exception:  # noqa: BLE001 - the server went away (node shutting down)
                    goal.cancel.set()
            return not goal.cancel.is_set()

        result = Ask.Result()
        if goal.cancel.is_set():
            result.error = CANCELED           # canceled before it started
        else:
            self.reply(goal.handle.request, result, on_text)
        if goal.cancel.is_set() and not result.success:
            result.error = CANCELED
        self._results.post([(goal.finished, result)])
