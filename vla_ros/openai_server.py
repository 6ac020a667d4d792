"""`vla-ros serve`: any vla_ros engine behind an OpenAI-compatible chat-completions API, so
robots without the model (their nodes on `backend: openai`) share one machine that has it.

    vla-ros serve --model DIR --port 8000          # then, on a robot:
    ros2 run vla_ros vqa_service --ros-args -p model:=http://gpu-box:8000/v1

POST /v1/chat/completions takes the last user message: its image (a base64 data URL)
and its text; the text "Describe the image in one sentence." asks for a caption (what
the openai backend sends for captions), any other text is a question. The reply is
greedy; `logprobs` carries the engine's confidence as one entry. GET /v1/models lists the
one model. Refusals are HTTP 400 with the reason, a reply past its deadline 504. Binds
127.0.0.1 unless told otherwise; there is no authentication, so expose it only on a
network you trust. No ROS.
"""
import base64
import json
import math
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from .engine import GenerationTimeout, QuestionError
from .engine.openai_backend import CAPTION_PROMPT
from .preprocess import ImageError


class RequestError(ValueError):
    """A request this server cannot read; the message says why (HTTP 400)."""


def decode_data_url(url: str) -> np.ndarray:
    """'data:image/...;base64,...' -> RGB uint8. Raises RequestError."""
    if not isinstance(url, str) or not url.startswith('data:image/') or ',' not in url:
        raise RequestError('images must be base64 data URLs (data:image/...;base64,...); '
                           'this server fetches nothing')
    try:
        data = np.frombuffer(base64.b64decode(url.split(',', 1)[1], validate=True), np.uint8)
    except ValueError as e:
        raise RequestError(f'image data URL is not valid base64: {e}') from None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise RequestError('image data URL does not decode as an image')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def parse_chat(body: dict):
    """(RGB image, text) of the last user message. Raises RequestError."""
    messages = body.get('messages') if isinstance(body, dict) else None
    users = [m for m in messages or [] if isinstance(m, dict) and m.get('role') == 'user']
    if not users:
        raise RequestError("'messages' has no user message")
    content = users[-1].get('content')
    parts = [{'type': 'text', 'text': content}] if isinstance(content, str) else content
    if not isinstance(parts, list):
        raise RequestError('message content must be a string or a list of parts')
    images = [p.get('image_url', {}).get('url') for p in parts
              if isinstance(p, dict) and p.get('type') == 'image_url']
    text = ' '.join(p.get('text', '') for p in parts
                    if isinstance(p, dict) and p.get('type') == 'text').strip()
    if len(images) != 1:
        raise RequestError(f'the user message needs exactly one image, got {len(images)}')
    return decode_data_url(images[0]), text


def completion(engine, body: dict, model_name: str) -> dict:
    """The chat-completions reply to `body`. Raises RequestError, ImageError,
    QuestionError, GenerationTimeout."""
    image, text = parse_chat(body)
    result = engine.caption(image) if text == CAPTION_PROMPT else engine.answer(image, text)
    logprob = math.log(result.confidence) if result.confidence > 0 else -1e9
    return {
        'id': f'chatcmpl-{time.time_ns()}', 'object': 'chat.completion',
        'created': int(time.time()), 'model': model_name,
        'choices': [{'index': 0, 'finish_reason': 'stop',
                     'message': {'role': 'assistant', 'content': result.text},
                     'logprobs': {'content': [{'token': result.text, 'logprob': logprob}]}}],
        'usage': {'completion_tokens': result.tokens},
    }


def make_server(engine, host: str = '127.0.0.1', port: int = 8000,
                model_name: str = 'vla_ros') -> ThreadingHTTPServer:
    """An HTTP server (not started: call serve_forever) answering with `engine`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.rstrip('/') == '/v1/models':
                self._send(200, {'object': 'list', 'data': [
                    {'id': model_name, 'object': 'model', 'owned_by': 'vla_ros'}]})
            else:
                self._send(404, _error(f'no route {self.path}'))

        def do_POST(self):
            if self.path.rstrip('/') != '/v1/chat/completions':
                self._send(404, _error(f'no route {self.path}'))
                return
            try:
                length = int(self.headers.get('Content-Length', 0))
                body = json.loads(self.rfile.read(length) or b'{}')
                self._send(200, completion(engine, body, model_name))
            except (RequestError, ImageError, QuestionError, json.JSONDecodeError) as e:
                self._send(400, _error(str(e)))
            except GenerationTimeout as e:
                self._send(504, _error(str(e), 'timeout'))
            except Exception as e:  # noqa: BLE001 - a reason for the client, the server lives
                self._send(500, _error(f'{type(e).__name__}: {e}', 'server_error'))

        def _send(self, status: int, payload: dict):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):   # one line per request is noise at 100 requests/s
            pass

    return ThreadingHTTPServer((host, port), Handler)


def _error(message: str, kind: str = 'invalid_request_error') -> dict:
    return {'error': {'message': message, 'type': kind}}
