"""The openai backend: any OpenAI-compatible chat-completions server (vLLM, llama.cpp's
server, Ollama, `vla-ros serve`), which is how a fleet of robots shares one GPU machine.

    engine = OpenAIEngine('http://gpu-box:8000/v1', remote_model='Qwen2.5-VL-3B')
    engine.answer(frame, 'what is on the table?')

The frame goes as a PNG data URL (lossless: the server sees the robot's pixels; scaled
to `image_max_side` first) in one user message with the question; replies are greedy
(temperature 0) and at most `max_new_tokens` long.
Each request has a `timeout_s` deadline; a connection that fails or a 5xx/429 answer is
retried `retries` times (0.2 s, then 0.4 s ... apart) within that deadline. What the
server never answered raises ServerError naming the URL and the cause, which the nodes
report as the request's reason; a reply past the deadline raises GenerationTimeout.
Standard library only (urllib): no new dependency. `OPENAI_API_KEY` from the
environment is sent as a bearer token when set.
"""
import base64
import json
import os
import time
import urllib.error
import urllib.request

import cv2
import numpy as np

from ..preprocess import fit_within, to_rgb
from .api import Engine, GenerationTimeout, is_server_url, ServerError, TextResult

CAPTION_PROMPT = 'Describe the image in one sentence.'
RETRY_STATUS = {429, 500, 502, 503, 504}


class OpenAIEngine(Engine):
    backend = 'openai'
    capabilities = frozenset({'answer', 'caption'})

    def __init__(self, url: str, threads: int = 1, max_question_chars: int = 500,
                 remote_model: str = '', max_new_tokens: int = 32, image_max_side: int = 512,
                 timeout_s: float = 30.0, retries: int = 2, **_ignored):
        super().__init__(url, threads, max_question_chars)
        if not is_server_url(url):
            raise ServerError(f'{url!r} is not an http(s) URL of an OpenAI-compatible server')
        self.url = url.rstrip('/')
        self.remote_model = remote_model
        self.max_new_tokens, self.image_max_side = max_new_tokens, image_max_side
        self.timeout_s, self.retries = timeout_s, retries

    # -- the API ----------------------------------------------------------------------------
    def answer(self, image: np.ndarray, question: str, bgr: bool = False,
               on_text=None) -> TextResult:
        """Raises ImageError / QuestionError / ServerError / GenerationTimeout."""
        question = self.check_text(question, 'question')
        result = self._chat(self._data_url(image, bgr), question)
        if on_text is not None:
            on_text(result.text, result.tokens)
        return result

    def caption(self, image: np.ndarray, bgr: bool = False) -> TextResult:
        return self._chat(self._data_url(image, bgr), CAPTION_PROMPT)

    def ground(self, image, phrase: str, bgr: bool = False):
        self.unsupported('ground phrases', 'a chat-completions server returns text only')

    def act(self, image, instruction: str, bgr: bool = False):
        self.unsupported('follow instructions', 'a chat-completions server gives no velocities')

    # -- the request ------------------------------------------------------------------------
    def _data_url(self, image: np.ndarray, bgr: bool) -> str:
        return png_data_url(image, bgr, self.image_max_side)

    def _chat(self, data_url: str, text: str) -> TextResult:
        body = {'messages': chat_messages(data_url, text),
                'max_tokens': self.max_new_tokens, 'temperature': 0, 'logprobs': True}
        if self.remote_model:
            body['model'] = self.remote_model
        start = time.perf_counter()
        reply = self._post('/chat/completions', body, start)
        try:
            choice = reply['choices'][0]
            text = choice['message']['content'] or ''
            tokens = int((reply.get('usage') or {}).get('completion_tokens', 0))
            logprobs = [t['logprob'] for t in (choice.get('logprobs') or {}).get('content') or []]
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ServerError(f'{self.url}: not a chat-completions reply ({e!r} missing): '
                              f'{json.dumps(reply)[:200]}') from None
        # The probability of the reply where the server gives log-probabilities, else 0.
        confidence = float(np.exp(np.sum(logprobs))) if logprobs else 0.0
        return TextResult(text.strip(), confidence, (time.perf_counter() - start) * 1000,
                          tokens=tokens)

    def _post(self, path: str, body: dict, start: float) -> dict:
        headers = {'Content-Type': 'application/json'}
        if os.environ.get('OPENAI_API_KEY'):
            headers['Authorization'] = f"Bearer {os.environ['OPENAI_API_KEY']}"
        data = json.dumps(body).encode()
        problem = ''
        for attempt in range(self.retries + 1):
            left = self.timeout_s - (time.perf_counter() - start)
            if left <= 0:
                break
            request = urllib.request.Request(self.url + path, data=data, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=left) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as e:
                problem = f'HTTP {e.code}: {_error_message(e.read())}'
                if e.code not in RETRY_STATUS:
                    raise ServerError(f'{self.url}{path}: {problem}') from None
            except (TimeoutError, OSError, ValueError) as e:   # URLError is an OSError
                if _timed_out(e):
                    raise GenerationTimeout(
                        f'{self.url}{path}: no reply within the {self.timeout_s:g} s '
                        'deadline') from None
                problem = str(getattr(e, 'reason', e))
            time.sleep(min(0.2 * 2 ** attempt, max(0.0, left)))
        raise ServerError(f'{self.url}{path}: {problem or "no reply"} (after '
                          f'{self.retries + 1} attempts; is the server running?)')


def png_data_url(image: np.ndarray, bgr: bool, max_side: int) -> str:
    """A frame as a lossless PNG data URL, scaled to `max_side` first (0: as it is)."""
    rgb = to_rgb(image, bgr)
    if max_side:
        rgb = fit_within(rgb, max_side)
    _ok, png = cv2.imencode('.png', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return 'data:image/png;base64,' + base64.b64encode(png.tobytes()).decode()


def chat_messages(data_url: str, text: str) -> list:
    """One user message: the image, then the text (the chat-completions format, which
    llama-cpp-python's chat handlers take too)."""
    return [{'role': 'user', 'content': [{'type': 'image_url', 'image_url': {'url': data_url}},
                                         {'type': 'text', 'text': text}]}]


def _timed_out(e: Exception) -> bool:
    return isinstance(e, TimeoutError) or isinstance(getattr(e, 'reason', None), TimeoutError)


def _error_message(body: bytes) -> str:
    """The server's own reason ({"error": {"message": ...}}), else the body's start."""
    try:
        return str(json.loads(body)['error']['message'])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode(errors='replace')
