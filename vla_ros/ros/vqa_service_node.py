"""VQA service node: `vqa` (vla_ros/srv/VQA) answers a question about an image; the `ask`
action (vla_ros/action/Ask) does the same with the reply streamed as feedback and a
cancel that stops generation (ask_goals.py).

The request's image is used when it has one (width > 0); otherwise the latest frame from
this node's own `image` / `image/compressed` subscriptions. Every failure (empty question,
no frame, frame older than `max_frame_age`, undecodable image) is a response with
`success: false` and the reason in `error`; the call never hangs waiting for a frame.

Threading: one single-threaded executor (runner.py) takes requests and frames; the model
runs on worker threads: `vqa` requests that queue while it is busy are answered together
in one batched call (answer_batcher.py), `ask` goals generate on threads of their own.
The model runs one call at a time (the engine's lock).
"""
import time


from ..preprocess import ImageError
from ..srv import VQA
from .answer_batcher import AnswerBatcher
from .ask_goals import AskGoals
from .camera_input import CameraInput, INPUT_PARAMS, LOG_THROTTLE_S
from .diagnostics import frame_status, NodeDiagnostics, request_status, worst
from .image_conversion import image_to_rgb
from .managed import LifecycleNode, Managed, MANAGED_PARAMS
from .model_node import ModelNode
from .params import param_values, request_qos, REQUEST_PARAMS
from .runner import run_node
from .shared_engine import (answer_or_error, ENGINE_PARAMS,
                            question_frame, UNUSABLE_FRAME)

PARAMS = ENGINE_PARAMS + INPUT_PARAMS + REQUEST_PARAMS


class VQAServiceNode(ModelNode):
    """The plain node: loads the model and serves from its constructor on (model_node.py);
    managed.py makes the lifecycle version from the same pieces (load_model, serve, quiet)."""
    NODE_NAME = 'vqa_service'
    PARAMS = PARAMS
    ask = batcher = None      # until serve (quiet checks)

    def serve(self):
        """The camera subscriptions, `vqa`, `ask` and diagnostics."""
        p = param_values(self, PARAMS)
        self.camera = CameraInput(self)
        # Relative name: `/vqa` at the root namespace, remappable with `vqa:=...`.
        self.batcher = AnswerBatcher(self, self.engine, p['max_batch'])
        self.service = self.create_service(
            VQA, 'vqa', self._on_request, qos_profile=request_qos(p['request_queue_depth']),
            callback_group=self.batcher.group)
        self.diagnostics = NodeDiagnostics(self, self._diagnostic_report)
        self.ask = AskGoals(self, self._reply)
        self.get_logger().info(f'serving {self.service.service_name} and the ask action with '
                               f'model {self.engine.checkpoint}; frames from '
                               f'{self.camera.topics()}')

    def quiet(self, reason: str):
        """Running `ask` goals ended with `reason`; queued `vqa` calls answered 'node
        shutting down', the batcher's thread stopped."""
        ask, self.ask = self.ask, None
        if ask is not None:
            ask.close(reason)
        batcher, self.batcher = self.batcher, None
        if batcher is not None:
            batcher.close()

    async def _on_request(self, request, response):
        """A `vqa` call: queued for the batcher (answer_batcher.py); awaits its answer."""
        start = time.perf_counter()
        stamp = result = None
        try:
            stamp, image, what, error = self._frame_for(request)
            if image is not None:
                result, error = await self.batcher.answer(image, request.question, what)
        except Exception as e:  # noqa: BLE001 - reply with the reason rather than raise
            error = self._internal_error(e)
        return self._fill(response, stamp, result, error, start)

    def _reply(self, request, response, on_text=None):
        """Fill an Ask result (the VQA response's fields) for `request`, here and now."""
        start = time.perf_counter()
        stamp = result = None
        try:
            stamp, image, what, error = self._frame_for(request)
            if image is not None:
                result, error = self._answer_now(image, request.question, what, on_text)
        except Exception as e:  # noqa: BLE001 - reply with the reason rather than raise
            error = self._internal_error(e)
        return self._fill(response, stamp, result, error, start)

    def _internal_error(self, e: Exception) -> str:
        error = f'internal error: {type(e).__name__}: {e}'
        self.get_logger().error(error, throttle_duration_sec=LOG_THROTTLE_S)
        return error

    def _fill(self, response, stamp, result, error: str, start: float):
        if stamp is not None:
            response.frame_stamp = stamp
        response.success = result is not None
        if result is not None:
            response.answer, response.confidence = result.text, result.confidence
        else:
            response.error = error
        response.latency_ms = (time.perf_counter() - start) * 1000
        self.diagnostics.request('vqa calls', 'vqa errors', 'vqa', response.latency_ms,
                                 ok=result is not None)
        return response

    def _diagnostic_report(self, values: dict):
        values['model'] = self.engine.checkpoint
        values['backend'] = self.engine.backend
        values['vqa batches (by size)'] = str(self.batcher.batch_sizes())
        return worst(frame_status(self.camera, values),
                     request_status(self.diagnostics, 'vqa calls', 'vqa errors'))

    def _frame_for(self, request):
        """(stamp of the frame or None, image() -> RGB or None, what the image is, error).
        The request's image when it has one, else the latest fresh camera frame."""
        image = request.image
        if not request.question.strip():
            return None, None, '', 'question is empty'
        if image.width == 0 and image.height == 0 and len(image.data) == 0:
            frame, error = question_frame(self.camera, request.question)
            if frame is None:
                return None, None, '', error
            return frame.header.stamp, frame.rgb, UNUSABLE_FRAME, ''
        return image.header.stamp, lambda: image_to_rgb(image), 'request image', ''

    def _answer_now(self, image, question: str, what: str, on_text=None):
        """(TextResult or None, error), on this thread (an Ask goal's worker)."""
        try:
            rgb = image()
        except ImageError as e:
            return None, f'{what}: {e}'
        return answer_or_error(self.engine, rgb, question, on_text)


class ManagedVQAServiceNode(Managed, VQAServiceNode, LifecycleNode):
    """The lifecycle version (managed.py): configure loads the model, activate serves."""
    PARAMS = PARAMS + MANAGED_PARAMS


def main(args=None):
    return run_node(VQAServiceNode, args)


def main_managed(args=None):
    return run_node(ManagedVQAServiceNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
