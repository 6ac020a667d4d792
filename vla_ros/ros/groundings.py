"""`ground` in, `groundings` out: where a phrase's object is in the latest camera frame.

A phrase on `ground` (std_msgs/String, e.g. "red ball") is grounded in the newest usable
frame by the engine's `ground` (engine/grounding.py: the bundled model's pointer head,
PaliGemma's or Qwen's boxes) on a worker thread, so a slow model never holds up the
executor (captions, the control loop); the result comes back through a Handoff and is
published on `groundings` (vla_ros/Grounding) with the frame's header. Every phrase gets
a message: success=false with the reason when it cannot be grounded (no frame, unknown
words, a backend without grounding). While an instruction runs, the action policy's own
grounding (where it saw its target) is published there too (action_control.py).
"""
import threading
import time

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.task import Future
from std_msgs.msg import Header, String

from ..engine import QuestionError
from ..msg import BoundingBox2D, Grounding
from ..preprocess import ImageError
from .camera_input import LOG_THROTTLE_S
from .handoff import Handoff
from .params import OUTPUT_QOS
from .shared_engine import question_frame, UNUSABLE_FRAME


def grounding_message(header, result=None, phrase: str = '', error: str = '',
                      latency_ms: float = 0.0) -> Grounding:
    """A Grounding message for an engine GroundingResult, or for a failure (`error`)."""
    msg = Grounding(header=header, phrase=phrase, success=result is not None, error=error,
                    latency_ms=float(latency_ms))
    if result is not None:
        msg.phrase = result.phrase
        msg.height, msg.width = (int(v) for v in result.frame_size)
        msg.latency_ms = float(result.latency_ms)
        msg.boxes = [BoundingBox2D(x_min=float(b[0]), y_min=float(b[1]), x_max=float(b[2]),
                                   y_max=float(b[3]), x=float(p[0]), y=float(p[1]),
                                   score=float(s))
                     for b, p, s in zip(result.boxes, result.points, result.scores)]
    return msg


class Groundings:
    """Serves `ground` -> `groundings` for `node` with `camera` (a CameraInput) and
    `engine`; `publish(header, result)` publishes any GroundingResult."""

    def __init__(self, node, camera, engine, qos, on_result=None):
        self.node, self.camera, self.engine = node, camera, engine
        self.on_result = on_result    # every GroundingResult published (e.g. to draw it)
        self.group = ReentrantCallbackGroup()
        self.publisher = node.create_publisher(Grounding, 'groundings', OUTPUT_QOS)
        self._results = Handoff(node, self.group)
        self.count = 0
        self.errors = 0
        node.create_subscription(String, 'ground', self._on_ground, qos,
                                 callback_group=self.group)

    def publish(self, header, result):
        self.publisher.publish(grounding_message(header, result))
        if self.on_result is not None:
            self.on_result(result)

    async def _on_ground(self, msg: String):
        start = time.perf_counter()
        header, result, error = None, None, ''
        try:
            frame, error = question_frame(self.camera, msg.data, 'phrase')
            if frame is not None:
                header = frame.header
                done = Future()
                threading.Thread(target=self._work, args=(done, frame, msg.data), daemon=True,
                                 name=f'{self.node.get_name()}_ground').start()
                result, error = await done
        except Exception as e:  # noqa: BLE001 - reply with the reason rather than raise
            error = f'internal error: {type(e).__name__}: {e}'
        self.count += 1
        if result is None:
            self.errors += 1
            self.node.get_logger().warning(f'phrase {msg.data!r} not grounded: {error}',
                                           throttle_duration_sec=LOG_THROTTLE_S)
        header = header or Header(stamp=self.node.get_clock().now().to_msg())
        self.publisher.publish(grounding_message(
            header, result, msg.data, error, (time.perf_counter() - start) * 1000))
        if result is not None and self.on_result is not None:
            self.on_result(result)

    def _work(self, done: Future, frame, phrase: str):
        try:
            image = frame.rgb()
        except ImageError as e:
            self._results.post([(done, (None, f'{UNUSABLE_FRAME}: {e}'))])
            return
        try:
            outcome = (self.engine.ground(image, phrase), '')
        except (ImageError, QuestionError) as e:
            outcome = (None, str(e))
        except Exception as e:  # noqa: BLE001 - e.g. a model error: the reason goes back
            outcome = (None, f'internal error: {type(e).__name__}: {e}')
        self._results.post([(done, outcome)])
