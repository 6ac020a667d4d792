"""VLA node: captions of the camera stream, answers to questions about it, and velocity
commands that follow an instruction.

Subscribes `image` / `image/compressed` (latest frame cached, see camera_input.py) and
`question` (std_msgs/String); publishes `caption` (vla_ros/Caption) at `caption_rate` Hz
and one `answer` (vla_ros/Answer) per question. Both carry the header of the frame they
describe. `ground` (std_msgs/String phrases) -> `groundings` (vla_ros/Grounding, boxes in
the frame's pixels) is groundings.py. Instruction following (`instruction` -> `cmd_vel`,
`action_status`, the `stop` service, speed clamps and the frame watchdog) is wired by
action_control.py.

Threading: one single-threaded executor (runner.py says why) runs the callbacks and the
control loop; the model runs one call at a time (the engine's lock). Captions and
questions are made on the batcher's thread, those that queued while it was busy in one
batched call, together with those of other nodes sharing the model (answer_batcher.py:
several cameras' captions in one container); each caption uses the newest frame, a
frame is captioned at most once (a still camera yields no new captions) and a tick that
comes while the last caption is still being made is skipped, so `caption_rate` is an
upper bound. The velocity watchdog has its own thread too.
"""
import time

from sensor_msgs.msg import Image
from std_msgs.msg import Header, String

from ..annotate import annotate, Overlay
from ..msg import Answer, Caption
from ..preprocess import ImageError
from .action_control import ACTION_PARAMS, ActionControl
from .answer_batcher import AnswerBatcher, SHUTTING_DOWN
from .camera_input import CameraInput, INPUT_PARAMS, LOG_THROTTLE_S
from .diagnostics import frame_status, NodeDiagnostics, request_status, worst
from .groundings import Groundings
from .image_conversion import rgb_to_image
from .managed import LifecycleNode, Managed, MANAGED_PARAMS
from .model_node import ModelNode
from .params import OUTPUT_QOS, Param, param_values, request_qos, REQUEST_PARAMS
from .runner import run_node
from .shared_engine import ENGINE_PARAMS, question_frame, UNUSABLE_FRAME

GROUNDING_SHOWN_S = 2.0    # a grounding stays drawn on `annotated` this long

PARAMS = ENGINE_PARAMS + (
    Param('caption_rate', 1.0, 'captions per second at most (0 = no captions)',
          range=(0.0, 100.0), dynamic=True),
    Param('annotated_rate', 5.0, '`annotated` images per second while someone subscribes '
          '(0 = never)', range=(0.0, 60.0)),
    Param('annotated_width', 480, 'width in pixels of `annotated` images', range=(64, 4096)),
) + INPUT_PARAMS + REQUEST_PARAMS + ACTION_PARAMS


class VLANode(ModelNode):
    """The plain node: loads the model and serves from its constructor on (model_node.py);
    managed.py makes the lifecycle version from the same pieces (load_model, serve, quiet)."""
    NODE_NAME = 'vla_node'
    PARAMS = PARAMS
    actions = batcher = groundings = None      # until serve (quiet checks)
    _grounding_drawn = 0.0
    _captioning = False           # a caption is being made (ticks meanwhile are skipped)

    def serve(self):
        """Subscriptions, publishers, services, the action server and timers."""
        p = param_values(self, PARAMS)
        self.camera = CameraInput(self)
        self.caption_pub = self.create_publisher(Caption, 'caption', OUTPUT_QOS)
        self.answer_pub = self.create_publisher(Answer, 'answer', OUTPUT_QOS)
        # Questions are requests: reliable and queued, unlike camera frames; those that
        # arrive while the model is busy are answered together (answer_batcher.py).
        self.batcher = AnswerBatcher(self, self.engine, p['max_batch'])
        self.create_subscription(String, 'question', self._on_question,
                                 request_qos(p['request_queue_depth']),
                                 callback_group=self.batcher.group)
        self.caption_timer = None
        self._last_captioned = 0      # seq of the last frame captioned
        self._set_caption_rate(p['caption_rate'])
        self.add_post_set_parameters_callback(self._on_parameters_set)
        self.actions = ActionControl(self, self.camera, self.engine)
        # `ground` -> `groundings`; the policy's own groundings go there too
        self.groundings = Groundings(self, self.camera, self.engine,
                                     request_qos(p['request_queue_depth']),
                                     on_result=self._draw_grounding)
        self.actions.on_grounding = self.groundings.publish
        self.diagnostics = NodeDiagnostics(self, self._diagnostic_report)
        # The annotated view: drawn only while someone subscribes (rqt_image_view, Foxglove).
        self.overlay = Overlay()
        self.annotated_pub = self.create_publisher(Image, 'annotated', OUTPUT_QOS)
        if p['annotated_rate'] > 0:
            self.create_timer(1.0 / p['annotated_rate'], self._publish_annotated)
        self.get_logger().info(f"listening on {self.camera.topics()}, captions at "
                               f"{p['caption_rate']:g} Hz")

    def quiet(self, reason: str):
        """Zero velocity, the running goal ended, the watchdog and batcher threads stopped."""
        batcher, self.batcher = self.batcher, None
        if batcher is not None:
            batcher.close()
        self.groundings = None        # its subscription goes with the node's entities
        actions, self.actions = self.actions, None
        if actions is not None:
            try:
                actions.stop(reason)
            except Exception as e:  # noqa: BLE001 - e.g. the context is already gone
                self.get_logger().warning(f'could not send zero velocity: {e}')
            actions.close(reason)

    # -- captions ---------------------------------------------------------------------------
    def _set_caption_rate(self, rate: float):
        if self.caption_timer is not None:
            self.destroy_timer(self.caption_timer)
            self.caption_timer = None
        if rate > 0 and self.batcher is not None:
            self.caption_timer = self.create_timer(1.0 / rate, self._caption_latest,
                                                   callback_group=self.batcher.group)

    def _on_parameters_set(self, parameters):
        for param in parameters:
            if param.name == 'caption_rate':
                self._set_caption_rate(param.value)

    async def _caption_latest(self):
        """A caption of the newest frame not yet captioned, through the batcher (the
        captions of nodes sharing the model go into one batched call); a tick that comes
        while the previous caption is still being made is skipped."""
        batcher = self.batcher
        frame, _reason = self.camera.usable_frame()
        if batcher is None or frame is None or frame.seq == self._last_captioned \
                or self._captioning:
            return   # quiet, nothing new to describe, or still describing the last one
        self._last_captioned, self._captioning = frame.seq, True
        try:
            result, error = await batcher.caption(frame.rgb, UNUSABLE_FRAME)
        finally:
            self._captioning = False
        if result is None:
            if error != SHUTTING_DOWN:
                self.get_logger().warning(f'cannot caption frame: {error}',
                                          throttle_duration_sec=LOG_THROTTLE_S)
            return
        self.caption_pub.publish(Caption(header=frame.header, caption=result.text,
                                         confidence=result.confidence,
                                         latency_ms=result.latency_ms))
        self.overlay.caption = result.text
        self.diagnostics.count('captions')
        self.diagnostics.latency('caption model', result.latency_ms)
        self.diagnostics.latency('caption since frame stamp', self._since_stamp(frame.header))

    def _since_stamp(self, header) -> float:
        """ms from the frame's stamp to now (end to end; assumes the camera's clock)."""
        stamp = header.stamp.sec * 1e9 + header.stamp.nanosec
        return (self.get_clock().now().nanoseconds - stamp) / 1e6

    def _diagnostic_report(self, values: dict):
        values['model'] = self.engine.checkpoint
        values['backend'] = self.engine.backend
        values['caption_rate (max)'] = self.get_parameter('caption_rate').value
        loop = self.actions.loop
        values['action state'] = loop.state or 'idle'
        values['action instruction'] = loop.instruction
        if self.groundings is not None:
            g = self.groundings
            values['phrases grounded / refused'] = f'{g.count - g.errors} / {g.errors}'
        return worst(frame_status(self.camera, values),
                     request_status(self.diagnostics, 'questions', 'question errors'))

    def _publish_annotated(self):
        if self.annotated_pub.get_subscription_count() == 0:
            return                                   # nobody looks: draw nothing
        frame = self.camera.cache.latest()
        if frame is None:
            return
        try:
            rgb = frame.rgb()
        except ImageError:
            return
        loop = self.actions.loop
        self.overlay.action_state, self.overlay.instruction = loop.state or '', loop.instruction
        if time.monotonic() - self._grounding_drawn > GROUNDING_SHOWN_S:
            self.overlay.grounding = None
        self.overlay.command = self.actions.command_fractions()
        image = annotate(rgb, self.overlay, self.get_parameter('annotated_width').value)
        self.annotated_pub.publish(rgb_to_image(image, frame.header))
        self.diagnostics.count('annotated images')

    def _draw_grounding(self, result):
        """The latest grounding goes on `annotated` for GROUNDING_SHOWN_S."""
        self.overlay.grounding = (result.phrase, list(result.boxes), list(result.points),
                                  tuple(result.frame_size))
        self._grounding_drawn = time.monotonic()

    # -- questions --------------------------------------------------------------------------
    async def _on_question(self, msg: String):
        """A `question`: queued for the batcher (answer_batcher.py), answered on `answer`."""
        start = time.perf_counter()
        header, result, error = None, None, ''
        try:
            frame, error = question_frame(self.camera, msg.data)
            if frame is not None:
                header = frame.header
                result, error = await self.batcher.answer(frame.rgb, msg.data, UNUSABLE_FRAME)
        except Exception as e:  # noqa: BLE001 - answer with the reason rather than raise
            error = f'internal error: {type(e).__name__}: {e}'
            self.get_logger().error(error, throttle_duration_sec=LOG_THROTTLE_S)
        if result is None:
            self.get_logger().warning(f'question {msg.data!r} not answered: {error}',
                                      throttle_duration_sec=LOG_THROTTLE_S)
        # Without a frame there is no header to copy: stamp the reply now, empty frame_id.
        answer = Answer(header=header or Header(stamp=self.get_clock().now().to_msg()),
                        question=msg.data, success=result is not None, error=error)
        if result is not None:
            answer.answer, answer.confidence = result.text, result.confidence
        self.overlay.question = msg.data
        self.overlay.answer = answer.answer if result is not None else f'({error})'
        answer.latency_ms = (time.perf_counter() - start) * 1000
        self.answer_pub.publish(answer)
        self.diagnostics.request('questions', 'question errors', 'answer', answer.latency_ms,
                                 ok=result is not None)


class ManagedVLANode(Managed, VLANode, LifecycleNode):
    """The lifecycle version (managed.py): configure loads the model, activate serves."""
    PARAMS = PARAMS + MANAGED_PARAMS


def main(args=None):
    return run_node(VLANode, args)


def main_managed(args=None):
    return run_node(ManagedVLANode, args)


if __name__ == '__main__':
    raise SystemExit(main())
