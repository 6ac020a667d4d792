"""Web node: the operator page (web_page.py) over HTTP, wired to the other nodes' topics.

    ros2 run vla_ros web            # then open http://127.0.0.1:8080

Serves, on `bind_address`:`port` (localhost by default; 0.0.0.0 exposes it to the
network, which has no authentication: put it behind your robot's access control):

    GET  /            the page
    GET  /frame.jpg   the latest `annotated` frame (the VLA node draws it while we listen)
    GET  /state.json  caption, action status, whether frames arrive, /diagnostics
    POST /ask         {"question"} -> calls `vqa`; {"success", "answer", "confidence",
                      "error", "attention": PNG data URL (where the model looked) or null}
    POST /instruct    {"instruction"} -> publishes it on `instruction`
    POST /ground      {"phrase"} -> publishes it on `ground` and waits for its `groundings`
                      message: {"success", "boxes": [{"box", "point", "score"}], "error"}
                      (the annotated frame shows the boxes)
    POST /stop        calls the `stop` service

Every request gets a JSON answer; a failing one says why (`error`), never a traceback.
The attention map needs torch (it re-runs the model with hooks, vla_ros/explain.py) and
the raw camera frame (`image`); without either the page shows the answer alone.
"""
import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.exceptions import InvalidParameterValueException
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ..msg import ActionStatus, Caption, Grounding
from ..preprocess import ImageError
from ..srv import VQA
from .camera_input import CameraInput, INPUT_PARAMS
from .image_conversion import image_to_rgb
from .params import CLIENT_QOS, declare_parameters, OUTPUT_QOS, Param
from .runner import call_and_wait, run_node
from .web_page import PAGE

PARAMS = (
    Param('bind_address', '127.0.0.1', 'address the HTTP server listens on (0.0.0.0 = all)'),
    Param('port', 8080, 'HTTP port (0 = any free port; the log says which)', range=(0, 65535)),
    Param('checkpoint', '', "model for attention maps ('' = the bundled models/vla_tiny)"),
    Param('attention_maps', True, 'draw where the model looked for each question (torch)'),
) + INPUT_PARAMS
CALL_TIMEOUT_S = 10.0
MAX_BODY_BYTES = 10_000


class WebNode(Node):
    NODE_NAME = 'web'
    server = None       # until the port is bound (destroy_node checks)

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        self.p = declare_parameters(self, PARAMS)
        self.camera = CameraInput(self)                  # raw frames, for attention maps
        self._lock = threading.Lock()
        self.annotated = None
        self.caption = ''
        self.action = None
        self.diagnostics = {}
        self.create_subscription(Image, 'annotated', self._on_annotated, 1)
        self.create_subscription(Caption, 'caption', self._on_caption, OUTPUT_QOS)
        self.create_subscription(ActionStatus, 'action_status', self._on_action, OUTPUT_QOS)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 20)
        self.instruction_pub = self.create_publisher(String, 'instruction', 10)
        self.ground_pub = self.create_publisher(String, 'ground', 10)
        self._groundings = {}                            # phrase -> [Event, Grounding or None]
        self.create_subscription(Grounding, 'groundings', self._on_grounding, OUTPUT_QOS)
        self.vqa = self.create_client(VQA, 'vqa', qos_profile=CLIENT_QOS)
        self.stop = self.create_client(Trigger, 'stop')
        self._model = None                               # (model, tokenizer), loaded lazily
        self._model_lock = threading.Lock()              # HTTP threads share the one model
        try:
            server = ThreadingHTTPServer((self.p['bind_address'], self.p['port']),
                                         _handler_for(self))
        except OSError as e:   # port taken, address not on this machine: say so, exit 1
            raise InvalidParameterValueException(
                'bind_address/port', f"{self.p['bind_address']}:{self.p['port']}",
                f'cannot listen there: {e}')
        server.daemon_threads = True
        self.server = server
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name='web_http')
        self._thread.start()
        self.get_logger().info(f"operator page on http://{self.p['bind_address']}:{self.port}/")

    # -- topics ---------------------------------------------------------------------------
    def _on_annotated(self, msg):
        with self._lock:
            self.annotated = msg

    def _on_caption(self, msg):
        self.caption = msg.caption

    def _on_action(self, msg):
        self.action = {'state': msg.state, 'instruction': msg.instruction,
                       'reason': msg.reason}

    def _on_grounding(self, msg):
        with self._lock:
            waiting = self._groundings.get(msg.phrase)
        if waiting is not None:
            waiting[1] = msg
            waiting[0].set()

    def _on_diagnostics(self, msg):
        for s in msg.status:
            self.diagnostics[s.name] = {
                'name': s.name, 'level': ord(s.level),    # a `byte` field: bytes of length 1
                'message': s.message, 'values': {kv.key: kv.value for kv in s.values}}

    # -- what the HTTP handler asks for ---------------------------------------------------
    def state(self) -> dict:
        with self._lock:
            frames = self.annotated is not None or self.camera.cache.latest() is not None
        return {'caption': self.caption, 'action': self.action, 'frames': frames,
                'diagnostics': [self.diagnostics[k] for k in sorted(self.diagnostics)]}

    def frame_jpeg(self):
        with self._lock:
            msg = self.annotated
        if msg is None:
            frame = self.camera.cache.latest()
            msg = frame.msg if frame is not None and hasattr(frame.msg, 'encoding') else None
        if msg is None:
            return None
        try:
            rgb = image_to_rgb(msg)
        except ImageError:
            return None
        ok, data = cv2.imencode('.jpg', rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
        return data.tobytes() if ok else None

    def _call(self, client, request):
        if not client.wait_for_service(timeout_sec=2.0):
            return None, f'service {client.srv_name} is not available'
        response = call_and_wait(client, request, CALL_TIMEOUT_S)
        if response is None:
            return None, f'no response from {client.srv_name} within {CALL_TIMEOUT_S:g} s'
        return response, ''

    def ask(self, question: str) -> dict:
        response, error = self._call(self.vqa, VQA.Request(question=question))
        if response is None:
            return {'success': False, 'error': error, 'attention': None}
        result = {'success': response.success, 'answer': response.answer,
                  'confidence': float(response.confidence), 'error': response.error,
                  'attention': None}
        if response.success and self.p['attention_maps']:
            result['attention'] = self._attention(question)
        return result

    def instruct(self, instruction: str) -> dict:
        self.instruction_pub.publish(String(data=instruction))
        return {'success': True, 'message': f'sent {instruction!r}'}

    def ground(self, phrase: str) -> dict:
        """Publish `phrase` on `ground`; the Grounding the VLA node answers with, as JSON."""
        phrase = phrase.strip()        # as the engine reads it (its reply names it so)
        if not phrase:
            return {'success': False, 'error': 'phrase is empty', 'boxes': []}
        if self.ground_pub.get_subscription_count() == 0:
            return {'success': False, 'error': 'nothing subscribes to `ground` (is vla_node '
                    'running?)', 'boxes': []}
        waiting = [threading.Event(), None]
        with self._lock:
            self._groundings[phrase] = waiting
        try:
            self.ground_pub.publish(String(data=phrase))
            if not waiting[0].wait(CALL_TIMEOUT_S):
                return {'success': False, 'boxes': [],
                        'error': f'no grounding of {phrase!r} within {CALL_TIMEOUT_S:g} s'}
        finally:
            with self._lock:
                if self._groundings.get(phrase) is waiting:
                    del self._groundings[phrase]
        msg = waiting[1]
        return {'success': msg.success, 'error': msg.error,
                'boxes': [{'box': [round(v, 1) for v in (b.x_min, b.y_min, b.x_max, b.y_max)],
                           'point': [round(b.x, 1), round(b.y, 1)], 'score': round(b.score, 3)}
                          for b in msg.boxes]}

    def stop_robot(self) -> dict:
        response, error = self._call(self.stop, Trigger.Request())
        if response is None:
            return {'success': False, 'message': error}
        return {'success': response.success, 'message': response.message}

    def _attention(self, question: str):
        """PNG data URL of explain_question on the latest raw frame, or None."""
        frame = self.camera.cache.latest()
        if frame is None:
            return None
        try:
            from ..explain import explain_question
            from ..preprocess import to_model_input
            with self._model_lock:
                if self._model is None:
                    from ..engine import default_checkpoint
                    from ..model.checkpoint import load_checkpoint
                    self._model = load_checkpoint(self.p['checkpoint'] or default_checkpoint())
                model, tokenizer = self._model
                rgb = to_model_input(frame.rgb(), model.cfg.image_size)
                figure = explain_question(model, tokenizer, rgb, question)[0]
        except ImportError:            # an ONNX-only install has no torch: answer only
            return None
        except Exception as e:  # noqa: BLE001 - the answer is still worth showing
            self.get_logger().warning(f'attention map failed: {type(e).__name__}: {e}',
                                      throttle_duration_sec=10.0)
            return None
        ok, png = cv2.imencode('.png', np.ascontiguousarray(figure[..., ::-1]))
        return 'data:image/png;base64,' + base64.b64encode(png.tobytes()).decode() if ok else None

    def destroy_node(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        return super().destroy_node()


def _handler_for(node: WebNode):
    class Handler(BaseHTTPRequestHandler):
        server_version = 'vla_ros'

        def log_message(self, fmt, *args):   # no per-request lines on stderr
            pass

        def _send(self, code: int, body: bytes, content_type: str):
            self.send_response(code)
            self.send_header('Content-Type', content_type)
            self.send_header('Content-Length', str(len(body)))
            self.send_header('Cache-Control', 'no-store')
            self.end_headers()
            self.wfile.write(body)

        def _json(self, data: dict, code: int = 200):
            self._send(code, json.dumps(data).encode(), 'application/json')

        def do_GET(self):
            path = self.path.split('?')[0]
            if path in ('/', '/index.html'):
                self._send(200, PAGE.encode(), 'text/html; charset=utf-8')
            elif path == '/frame.jpg':
                jpeg = node.frame_jpeg()
                if jpeg is None:
                    self._json({'error': 'no camera frame yet'}, 503)
                else:
                    self._send(200, jpeg, 'image/jpeg')
            elif path == '/state.json':
                self._json(node.state())
            else:
                self._json({'error': f'no such page: {path}'}, 404)

        def do_POST(self):
            path = self.path.split('?')[0]
            try:
                length = int(self.headers.get('Content-Length') or 0)
                if length > MAX_BODY_BYTES:
                    raise ValueError(f'request body over {MAX_BODY_BYTES} bytes')
                body = json.loads(self.rfile.read(length) or b'{}') if length else {}
                if not isinstance(body, dict):
                    raise ValueError('request body must be a JSON object')
            except (ValueError, UnicodeDecodeError) as e:
                self._json({'success': False, 'error': f'bad request: {e}'}, 400)
                return
            start = time.perf_counter()
            try:
                if path == '/ask':
                    result = node.ask(str(body.get('question', '')))
                elif path == '/instruct':
                    result = node.instruct(str(body.get('instruction', '')))
                elif path == '/ground':
                    result = node.ground(str(body.get('phrase', '')))
                elif path == '/stop':
                    result = node.stop_robot()
                else:
                    self._json({'success': False, 'error': f'no such action: {path}'}, 404)
                    return
            except Exception as e:  # noqa: BLE001 - answer with the reason, keep serving
                result = {'success': False, 'error': f'internal error: {type(e).__name__}: {e}'}
            result['ms'] = round((time.perf_counter() - start) * 1000, 1)
            self._json(result)
    return Handler


def main(args=None):
    return run_node(WebNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
