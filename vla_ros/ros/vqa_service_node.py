"""VQA service node: `vqa` (vla_ros/srv/VQA) answers a question about an image; the `ask`
action (vla_ros/action/Ask) does the same with the reply streamed as feedback and a
cancel that stops generation (ask_goals.py).

The request's image is used when it has one (width > 0); otherwise the latest frame from
this node's own `image` / `image/compressed` subscriptions. Every failure (empty question,
no frame, frame older than `max_frame_age`, undecodable image) is a response with
`success: false` and the reason in `error`; the call never hangs waiting for a frame.

Threading: one single-threaded executor (runner.py): `vqa` requests are answered one at
a time, in arrival order, and frames that arrive meanwhile wait in the depth-1 camera
queue. `ask` goals generate on worker threads; the model runs one call at a time.
"""
import time

from rclpy.node import Node

from ..preprocess import ImageError
from ..srv import VQA
from .ask_goals import AskGoals
from .camera_input import CameraInput, INPUT_PARAMS, LOG_THROTTLE_S
from .diagnostics import frame_status, NodeDiagnostics, request_status, worst
from .image_conversion import image_to_rgb
from .managed import LifecycleNode, Managed, MANAGED_PARAMS
from .params import declare_parameters, param_values, request_qos, REQUEST_PARAMS
from .runner import run_node
from .shared_engine import (answer_latest, answer_or_error, engine_from_params,
                            ENGINE_PARAMS)

PARAMS = ENGINE_PARAMS + INPUT_PARAMS + REQUEST_PARAMS


class VQAServiceNode(Node):
    """The plain node: loads the model and serves from its constructor on. managed.py
    makes the lifecycle version from the same pieces (load_model, serve, quiet)."""
    NODE_NAME = 'vqa_service'
    PARAMS = PARAMS
    engine = ask = None      # until load_model / serve (destroy_node checks)

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        declare_parameters(self, self.PARAMS)
        self.start_up()

    def start_up(self):
        self.load_model()
        self.serve()

    def load_model(self):
        self.engine = engine_from_params(param_values(self, ENGINE_PARAMS))

    def serve(self):
        """The camera subscriptions, `vqa`, `ask` and diagnostics."""
        p = param_values(self, PARAMS)
        self.camera = CameraInput(self)
        # Relative name: `/vqa` at the root namespace, remappable with `vqa:=...`.
        self.service = self.create_service(
            VQA, 'vqa', self._on_request, qos_profile=request_qos(p['request_queue_depth']))
        self.diagnostics = NodeDiagnostics(self, self._diagnostic_report)
        self.ask = AskGoals(self, self._reply)
        self.get_logger().info(f'serving {self.service.service_name} and the ask action with '
                               f'model {self.engine.checkpoint}; frames from '
                               f'{self.camera.topics()}')

    def quiet(self, reason: str):
        """Running `ask` goals canceled and their server gone."""
        ask, self.ask = self.ask, None
        if ask is not None:
            ask.destroy()

    def destroy_node(self):
        self.quiet('node destroyed')
        return super().destroy_node()

    def _on_request(self, request, response):
        return self._reply(request, response)

    def _reply(self, request, response, on_text=None):
        """Fill a VQA response (or an Ask result: the same fields) for `request`."""
        start = time.perf_counter()
        try:
            stamp, result, error = self._answer(request, on_text)
            if stamp is not None:
                response.frame_stamp = stamp
        except Exception as e:  # noqa: BLE001 - reply with the reason rather than raise
            result, error = None, f'internal error: {type(e).__name__}: {e}'
            self.get_logger().error(error, throttle_duration_sec=LOG_THROTTLE_S)
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
        return worst(frame_status(self.camera, values),
                     request_status(self.diagnostics, 'vqa calls', 'vqa errors'))

    def _answer(self, request, on_text=None):
        """(stamp of the frame used or None, TextResult or None, error)."""
        image = request.image
        if image.width == 0 and image.height == 0 and len(image.data) == 0:
            header, result, error = answer_latest(self.engine, self.camera, request.question,
                                                  on_text)
            return (header.stamp if header else None), result, error
        if not request.question.strip():
            return None, None, 'question is empty'
        try:
            rgb = image_to_rgb(image)
        except ImageError as e:
            return image.header.stamp, None, f'request image: {e}'
        result, error = answer_or_error(self.engine, rgb, request.question, on_text)
        return image.header.stamp, result, error


class ManagedVQAServiceNode(Managed, VQAServiceNode, LifecycleNode):
    """The lifecycle version (managed.py): configure loads the model, activate serves."""
    PARAMS = PARAMS + MANAGED_PARAMS


def main(args=None):
    return run_node(VQAServiceNode, args)


def main_managed(args=None):
    return run_node(ManagedVQAServiceNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
