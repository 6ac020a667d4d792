"""Batching under load: questions that queue while the model is busy are answered together.

    batcher = AnswerBatcher(node, engine)            # a worker thread and a guard condition
    result, error = await batcher.answer(frame.rgb, question, 'latest camera frame')

`answer` is awaited from a coroutine callback (a `vqa` request, a `question` message) in
`batcher.group`, a reentrant callback group, so the single-threaded executor goes on
taking requests while earlier ones wait. One worker thread runs the model: each batch is
every request that arrived while the previous one ran (up to `max_batch`), answered in one
`engine.answer_batch` call (each distinct frame encoded once, equal-length prompts decoded
together), so a burst of N requests costs a few model calls instead of N. Engines without
answer_batch (transformers) answer the batch's requests one by one on the same thread,
which still keeps slow generations off the executor. Results go back to the executor
thread through a Handoff (handoff.py), so futures are only touched there.

Every request gets an answer or a reason: refusals (unusable frame, question the model
cannot read, a reply past its deadline) are per request and do not fail the others; an
unexpected error answers the whole batch with it; closing answers what is still queued.
"""
import threading

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.task import Future

from ..engine import GenerationCanceled, GenerationTimeout, QuestionError, ServerError
from ..preprocess import ImageError
from .handoff import Handoff

REFUSALS = (ImageError, QuestionError, GenerationTimeout, GenerationCanceled, ServerError)


class Pending:
    """One queued question: `image()` gives its frame (or raises ImageError, reported
    as '<what>: <reason>')."""

    def __init__(self, image, question: str, what: str):
        self.image, self.question, self.what = image, question, what
        self.future = Future()


class AnswerBatcher:
    """See the module doc. `sizes` counts batches by size (read it with batch_sizes())."""

    def __init__(self, node, engine, max_batch: int = 64):
        self.engine, self.max_batch = engine, max_batch
        self.group = ReentrantCallbackGroup()
        self.sizes = {}
        self._cv = threading.Condition()
        self._queue = []
        self._closed = False
        self._results = Handoff(node, self.group)
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f'{node.get_name()}_batcher')
        self._thread.start()

    async def answer(self, image, question: str, what: str):
        """(TextResult, '') or (None, reason) for `question` about `image()`."""
        pending = Pending(image, question, what)
        with self._cv:
            if self._closed:
                return None, 'node shutting down'
            self._queue.append(pending)
            self._cv.notify()
        return await pending.future

    def batch_sizes(self) -> dict:
        """{batch size: batches answered}, a copy (the worker thread adds to it)."""
        with self._cv:
            return dict(sorted(self.sizes.items()))

    def close(self):
        """Stop the worker; requests still queued are answered 'node shutting down'."""
        with self._cv:
            self._closed = True
            left, self._queue = self._queue, []
            self._cv.notify()
        self._thread.join(timeout=5.0)
        for pending in left:
            if not pending.future.done():
                pending.future.set_result((None, 'node shutting down'))

    # -- worker thread ------------------------------------------------------------------------
    def _run(self):
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                batch = self._queue[:self.max_batch]
                del self._queue[:self.max_batch]
            outcomes = self._answer(batch)
            with self._cv:
                self.sizes[len(batch)] = self.sizes.get(len(batch), 0) + 1
            self._results.post((p.future, outcome) for p, outcome in zip(batch, outcomes))

    def _answer(self, batch) -> list:
        outcomes, asked = [None] * len(batch), []
        for n, pending in enumerate(batch):
            try:
                asked.append((n, pending.image(), pending.question))
            except ImageError as e:
                outcomes[n] = (None, f'{pending.what}: {e}')
        try:
            replies = self._replies([(image, question) for _n, image, question in asked])
        except Exception as e:  # noqa: BLE001 - the batch gets the reason, the node lives on
            replies = [RuntimeError(f'internal error: {type(e).__name__}: {e}')] * len(asked)
        for (n, _image, _question), reply in zip(asked, replies):
            outcomes[n] = (None, str(reply)) if isinstance(reply, Exception) else (reply, '')
        return outcomes

    def _replies(self, requests) -> list:
        batched = getattr(self.engine, 'answer_batch', None)
        if batched is not None:
            return batched(requests)
        replies = []
        for image, question in requests:
            try:
                replies.append(self.engine.answer(image, question))
            except REFUSALS as e:
                replies.append(e)
        return replies
