"""Results from worker threads into futures awaited on the executor: `post(pairs)` from
any thread; a guard condition wakes the executor, which sets the futures' results on its
own thread, so coroutine callbacks resume there (answer_batcher.py, ask_goals.py)."""
import threading


class Handoff:
    def __init__(self, node, callback_group=None):
        self._lock = threading.Lock()
        self._ready = []       # (future, result) posted, not yet set
        self._wake = node.create_guard_condition(self._deliver, callback_group=callback_group)

    def post(self, pairs) -> None:
        """[(future, result)] to set on the executor thread. Harmless after the node is
        destroyed (its guard condition with it): nothing awaits them any more."""
        with self._lock:
            self._ready.extend(pairs)
        try:
            self._wake.trigger()
        except Exception:  # noqa: BLE001 - rclpy's InvalidHandle once the node is gone
            pass

    def _deliver(self):
        with self._lock:
            ready, self._ready = self._ready, []
        for future, result in ready:
            if not future.done():
                future.set_result(result)
