"""Batching under load: questions and captions that queue while the model is busy are
answered together, across every node of the process that shares the model.

    batcher = AnswerBatcher(node, engine)      # the node's side (a guard condition)
    result, error = await batcher.answer(frame.rgb, question, 'latest camera frame')
    result, error = await batcher.caption(frame.rgb, 'latest camera frame')

`answer` / `caption` are awaited from coroutine callbacks (a `vqa` request, a `question`
message, a caption tick) in `batcher.group`, a reentrant callback group, so the
single-threaded executor goes on taking requests while earlier ones wait.

Nodes composed into one process share their engine (shared_engine.py) and, through it,
one SharedBatcher: one worker thread runs the model, and each batch is every request
that arrived, from any of those nodes, while the previous batch ran (up to `max_batch`,
the smallest the nodes ask for). Its questions go to `engine.answer_batch` and its
captions to `engine.caption_batch` (each distinct frame encoded once, equal-length
prompts decoded together), so a burst of N requests, or the captions of several cameras
in one container, costs a few model calls instead of N. Engines without those methods
(transformers) serve the batch one request at a time on the same thread, which still
keeps slow generations off the executor. Results go back to each requesting node's
executor through its Handoff (handoff.py), so futures are only touched there.

Every request gets an answer or a reason: refusals (unusable frame, question the model
cannot read, a reply past its deadline) are per request and do not fail the others; an
unexpected error answers the whole batch with it; a node that closes answers what it
still has queued 'node shutting down'; the last node to close stops the worker.
"""
import threading

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.task import Future

from ..engine import GenerationCanceled, GenerationTimeout, QuestionError, ServerError
from ..preprocess import ImageError
from .handoff import Handoff

REFUSALS = (ImageError, QuestionError, GenerationTimeout, GenerationCanceled, ServerError)
SHUTTING_DOWN = 'node shutting down'


class Pending:
    """One queued request: `image()` gives its frame (or raises ImageError, reported as
    '<what>: <reason>'); `question` is None for a caption; `owner` is the AnswerBatcher
    whose Handoff gets the result."""

    def __init__(self, owner, image, question, what: str):
        self.owner, self.image, self.question, self.what = owner, image, question, what
        self.future = Future()


class SharedBatcher:
    """The worker thread and queue of one engine, shared by the process's nodes."""

    def __init__(self, engine):
        self.engine = engine
        self.limits = {}             # AnswerBatcher -> its max_batch
        self.sizes = {}              # batch size -> batches served
        self._cv = threading.Condition()
        self._queue = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True, name='vla_batcher')
        self._thread.start()

    def submit(self, pending: Pending) -> bool:
        with self._cv:
            if self._closed:
                return False
            self._queue.append(pending)
            self._cv.notify()
            return True

    def queued(self, owner=None) -> int:
        with self._cv:
            return sum(owner is None or p.owner is owner for p in self._queue)

    def withdraw(self, owner) -> list:
        """Remove and return `owner`'s queued requests."""
        with self._cv:
            mine = [p for p in self._queue if p.owner is owner]
            self._queue = [p for p in self._queue if p.owner is not owner]
            return mine

    def stop(self):
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout=5.0)

    # -- worker thread ------------------------------------------------------------------------
    def _run(self):
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                limit = max(1, min(self.limits.values(), default=64))
                batch, self._queue = self._queue[:limit], self._queue[limit:]
            outcomes = self._serve(batch)
            with self._cv:
                self.sizes[len(batch)] = self.sizes.get(len(batch), 0) + 1
            owners = {}
            for pending, outcome in zip(batch, outcomes):
                owners.setdefault(pending.owner, []).append((pending.future, outcome))
            for owner, pairs in owners.items():
                owner.deliver(pairs)

    def _serve(self, batch) -> list:
        outcomes, questions, captions = [None] * len(batch), [], []
        for n, pending in enumerate(batch):
            try:
                image = pending.image()
            except ImageError as e:
                outcomes[n] = (None, f'{pending.what}: {e}')
                continue
            if pending.question is None:
                captions.append((n, image))
            else:
                questions.append((n, (image, pending.question)))
        for asked, serve in ((questions, self._answers), (captions, self._captions)):
            if not asked:
                continue
            try:
                replies = serve([request for _n, request in asked])
            except Exception as e:  # noqa: BLE001 - the batch gets the reason, the node lives on
                replies = [RuntimeError(f'internal error: {type(e).__name__}: {e}')] * len(asked)
            for (n, _request), reply in zip(asked, replies):
                outcomes[n] = (None, str(reply)) if isinstance(reply, Exception) else (reply, '')
        return outcomes

    def _answers(self, requests) -> list:
        batched = getattr(self.engine, 'answer_batch', None)
        if batched is not None:
            return batched(requests)
        return [_or_refusal(self.engine.answer, image, question) for image, question in requests]

    def _captions(self, images) -> list:
        batched = getattr(self.engine, 'caption_batch', None)
        if batched is not None:
            return batched(images)
        return [_or_refusal(self.engine.caption, image) for image in images]


def _or_refusal(call, *args):
    try:
        return call(*args)
    except REFUSALS as e:
        return e


_shared = {}                  # id(engine) -> SharedBatcher
_shared_lock = threading.Lock()


class AnswerBatcher:
    """A node's side of its engine's SharedBatcher (see the module doc)."""

    def __init__(self, node, engine, max_batch: int = 64):
        self.group = ReentrantCallbackGroup()
        self.closed = False
        self._results = Handoff(node, self.group)
        with _shared_lock:
            shared = _shared.get(id(engine))
            if shared is None or shared.engine is not engine:
                shared = _shared[id(engine)] = SharedBatcher(engine)
            with shared._cv:
                shared.limits[self] = max_batch
        self.shared = shared

    async def answer(self, image, question: str, what: str):
        """(TextResult, '') or (None, reason) for `question` about `image()`."""
        return await self._submit(Pending(self, image, question, what))

    async def caption(self, image, what: str):
        """(TextResult, '') or (None, reason): a caption of `image()`."""
        return await self._submit(Pending(self, image, None, what))

    async def _submit(self, pending: Pending):
        if self.closed or not self.shared.submit(pending):
            return None, SHUTTING_DOWN
        return await pending.future

    def deliver(self, pairs):
        """[(future, outcome)] from the worker thread, to be set on this node's executor."""
        self._results.post(pairs)

    def queued(self) -> int:
        return self.shared.queued(self)

    def batch_sizes(self) -> dict:
        """{batch size: batches served} by the shared worker, a copy."""
        with self.shared._cv:
            return dict(sorted(self.shared.sizes.items()))

    def close(self):
        """This node's queued requests are answered 'node shutting down'; the last node of
        the engine stops the worker (after the batch it is running)."""
        self.closed = True
        shared = self.shared
        with _shared_lock:
            with shared._cv:
                shared.limits.pop(self, None)
                last = not shared.limits
            if last and _shared.get(id(shared.engine)) is shared:
                del _shared[id(shared.engine)]
        for pending in shared.withdraw(self):
            if not pending.future.done():
                pending.future.set_result((None, SHUTTING_DOWN))
        if last:
            shared.stop()
