"""The API every inference backend shares, without importing torch.

`Engine`: answer / caption / ground / act, their results (TextResult, GroundingResult,
ActionResult) and refusals (QuestionError for unusable text, UnsupportedError for what a
backend cannot do, preprocess.ImageError for frames, GenerationTimeout for a reply past
its deadline). `BundledEngine`: what the bundled model's two backends (torch_backend.py,
onnxruntime_backend.py) share: its prompts, one lock, the latency accounting; they only
say how pixels and token ids become tokens and velocities. Also where the bundled model
lives, and how to tell a Hugging Face model directory from the bundled format.

Importing this module (or tokenizer.py, preprocess.py, model/config.py) never imports
torch, so processes that serve the ONNX export stay small.
"""
import hashlib
import math
import os
import re
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .. import tokenizer as tok
from ..control.instructions import parse_instruction, words
from ..control.visual_servo import parse_open_instruction
from ..preprocess import ImageError, to_model_input
from .grounding import pointer_boxes

# vla_ros/ in the source tree (symlink installs resolve to it)
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
DEFAULT_MODEL = 'vla_tiny'
REPLY_ROOM = 12   # tokens kept free after a prompt for the reply
ENCODED_FRAMES = 4   # read-only frames whose encodings an engine remembers


class QuestionError(ValueError):
    """A question or instruction the engine refuses; the message says why."""


class UnsupportedError(QuestionError):
    """A request this backend or model cannot serve (e.g. `act` on a chat model)."""


class GenerationTimeout(TimeoutError):
    """Generation passed its deadline; the message says after how long and how many tokens."""


class ServerError(RuntimeError):
    """A model server (the openai backend's) did not answer: down, unreachable, or a reply
    that is not one; the message names the URL and the cause."""


class GenerationCanceled(RuntimeError):
    """The `on_text` callback asked generation to stop (e.g. an action goal was canceled)."""


# `on_text(text_so_far, tokens) -> bool`: called as a reply grows (by backends that
# generate slowly enough to watch: transformers) or once with the whole reply (the
# bundled model, a few ms); returning False stops generation with GenerationCanceled.


@dataclass
class TextResult:
    text: str
    confidence: float      # probability of the generated token sequence
    latency_ms: float
    first_token_ms: Optional[float] = None   # image + prompt to the first token, where known
    tokens: int = 0                          # tokens generated (0 where not counted)


@dataclass
class GroundingResult:
    phrase: str
    boxes: list            # [(x0, y0, x1, y1)] in pixels of the frame asked about; [] when
    points: list           # not visible. One (x, y) per box: its centre, or the pointer's
    scores: list           # one per box, in [0, 1]
    latency_ms: float
    frame_size: tuple = (0, 0)    # (height, width) of that frame

    @property
    def visible(self) -> bool:
        return bool(self.boxes)


@dataclass
class ActionResult:
    linear: float          # forward speed in [-1, 1] of the maximum
    angular: float         # turn rate in [-1, 1] of the maximum (positive = left)
    done: float            # probability that the goal is reached
    latency_ms: float
    grounding: Optional[GroundingResult] = None   # where the policy saw its target, if known


def default_checkpoint() -> str:
    """$VLA_ROS_MODEL, else the installed package's models/, else the source tree's."""
    if os.environ.get('VLA_ROS_MODEL'):
        return os.environ['VLA_ROS_MODEL']
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(os.path.join(get_package_share_directory('vla_ros'), 'models'))
    except Exception:  # not a ROS install, or vla_ros not in the ament index
        pass
    candidates.append(os.path.join(os.path.dirname(PACKAGE_DIR), 'models'))
    for prefix in (os.environ.get('VIRTUAL_ENV'), sys.prefix):
        if prefix:
            candidates.append(os.path.join(prefix, 'share', 'vla_ros', 'models'))
    for c in candidates:
        if os.path.isdir(os.path.join(c, DEFAULT_MODEL)):
            return os.path.join(c, DEFAULT_MODEL)
    return os.path.join(candidates[-1], DEFAULT_MODEL)


def file_sha256(path: str) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def sigmoid(x: float) -> float:
    """Logistic function without overflow for large |x|."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def finite_or_zero(x: float) -> float:
    return x if math.isfinite(x) else 0.0


def is_server_url(model) -> bool:
    """True for an http(s) URL: a model served by an OpenAI-compatible server."""
    return isinstance(model, str) and model.startswith(('http://', 'https://'))


class Engine:
    """What every backend offers: answer, caption, ground, act.

    `capabilities` names those a backend serves; the others raise UnsupportedError, a
    QuestionError, so nodes refuse them with the reason like any unusable request.
    `checkpoint` is the model directory, `backend` the backend's name. Model calls are
    serialised by one lock, so an engine can be shared between nodes and threads.
    """
    backend = ''
    capabilities = frozenset({'answer', 'caption', 'act'})
    known_words = None   # the words instructions may use (None: any; the model judges)
    # instruction text -> goal, raising InstructionRefused: any target text (the model
    # grounds it, control/visual_servo.py); the bundled model's parser is strict
    parse_instruction = staticmethod(parse_open_instruction)

    def __init__(self, checkpoint: str = None, threads: int = 1, max_question_chars: int = 500):
        if threads < 1:
            raise ValueError(f'threads must be >= 1, got {threads}')
        self.checkpoint = checkpoint or default_checkpoint()
        self.threads = threads
        self.max_question_chars = max_question_chars
        self._lock = threading.Lock()
        self._encoded = []   # [(frozen frame, bgr, its visual tokens)], newest last (Bundled)

    def check_text(self, text: str, what: str) -> str:
        """`text` stripped; QuestionError when it is not text, empty or too long."""
        if not isinstance(text, str):
            raise QuestionError(f'{what} must be text, got {type(text).__name__}')
        stripped = text.strip()
        if not stripped:
            raise QuestionError(f'{what} is empty')
        if len(stripped) > self.max_question_chars:
            raise QuestionError(f'{what} is {len(stripped)} characters long; '
                                f'the limit is {self.max_question_chars}')
        return stripped

    def unsupported(self, what: str, why: str = ''):
        raise UnsupportedError(f'the {self.backend} backend cannot {what}'
                               + (f': {why}' if why else ''))

    def answer(self, image: np.ndarray, question: str, bgr: bool = False,
               on_text=None) -> TextResult:
        """Answer a question about an image; `on_text` streams it (see above). Raises
        ImageError / QuestionError / GenerationCanceled."""
        self.unsupported('answer questions')

    def caption(self, image: np.ndarray, bgr: bool = False) -> TextResult:
        """Describe an image in one sentence. Raises ImageError."""
        self.unsupported('caption images')

    def ground(self, image: np.ndarray, phrase: str, bgr: bool = False) -> GroundingResult:
        """Boxes around what `phrase` names (none: not visible). Raises ImageError /
        QuestionError."""
        self.unsupported('ground phrases')

    def act(self, image: np.ndarray, instruction: str, bgr: bool = False) -> ActionResult:
        """Velocity command for following an instruction. Raises ImageError / QuestionError."""
        self.unsupported('follow instructions')


class BundledEngine(Engine):
    """The bundled model's answer / caption / act on top of a backend's `_encode`,
    `_decode` and `_act`.

    Subclasses set `config` (ModelConfig), `tokenizer` and `image_size` and implement
    `prepare_image`, `_encode(pixels) -> visual tokens`, `_decode(visual, rows, prompts)
    -> [(token ids, probabilities)]` and `_act(pixels, prompt_ids) -> (linear, angular,
    done probability)`.
    """

    parse_instruction = staticmethod(parse_instruction)   # colours and shapes it knows

    @property
    def known_words(self) -> set:
        """The tokenizer's words: an instruction with any other word is refused."""
        return set(self.tokenizer.index)

    @property
    def capabilities(self) -> frozenset:
        return frozenset({'answer', 'caption', 'act'} | ({'ground'} if self.has_pointer
                                                         else set()))

    # -- inputs ---------------------------------------------------------------------------
    def pixels(self, image: np.ndarray, bgr: bool = False) -> np.ndarray:
        """Any-size uint8 frame -> (1, S, S, 3) uint8 RGB array. Raises preprocess.ImageError."""
        return to_model_input(image, self.image_size, bgr)[None]

    def prepare_image(self, image: np.ndarray, bgr: bool = False):
        """Any-size uint8 frame -> the backend's (1, S, S, 3) input. Raises ImageError."""
        return self.pixels(image, bgr)

    def prompt_ids(self, lead: int, text: str, what: str, tail=()) -> list:
        """`lead text tail` as token ids; QuestionError when the text is unusable."""
        stripped = self.check_text(text, what)
        ids = [lead] + self.tokenizer.encode(stripped) + list(tail)
        room = self.config.max_text_len - REPLY_ROOM
        if len(ids) > room:
            raise QuestionError(f'{what} is {len(ids)} tokens long; the model reads at most '
                                f'{room} (fewer, longer words are fine)')
        return ids

    # -- the three things the model does -----------------------------------------------------
    def answer(self, image: np.ndarray, question: str, bgr: bool = False,
               on_text=None) -> TextResult:
        """Answer a question about an image; `on_text` gets the whole reply once. Raises
        ImageError / QuestionError / GenerationCanceled."""
        prompt = self.prompt_ids(tok.QUESTION, question, 'question', (tok.ANSWER,))
        result = self._text(image, prompt, bgr)
        if on_text is not None and not on_text(result.text, result.tokens):
            raise GenerationCanceled('canceled')
        return result

    def caption(self, image: np.ndarray, bgr: bool = False) -> TextResult:
        """Describe an image in one sentence. Raises ImageError."""
        return self._text(image, [tok.CAPTION], bgr)

    def act(self, image: np.ndarray, instruction: str, bgr: bool = False) -> ActionResult:
        """Velocity command for following an instruction, and where the pointer head saw
        its target (if the model has one). Raises ImageError / QuestionError."""
        start = time.perf_counter()
        pixels = self.prepare_image(image, bgr)
        prompt = self.prompt_ids(tok.ACTION, instruction, 'instruction')
        with self._lock:
            linear, angular, done, pointer = self._act(pixels, prompt)
        ms = (time.perf_counter() - start) * 1000
        grounding = None if pointer is None else \
            self._pointer_grounding(pointer, instruction, image.shape[:2], ms)
        return ActionResult(finite_or_zero(linear), finite_or_zero(angular),
                            finite_or_zero(done), ms, grounding)

    @property
    def has_pointer(self) -> bool:
        return bool(self.config.action_pointer)

    def ground(self, image: np.ndarray, phrase: str, bgr: bool = False) -> GroundingResult:
        """Where the pointer head looks for `phrase` ("red ball", "the blue cube"): it was
        trained on instructions, so it reads the phrase as "go to the <phrase>". Raises
        ImageError / QuestionError (also for words the model does not know) /
        UnsupportedError (no pointer head)."""
        if not self.has_pointer:
            self.unsupported('ground phrases', self.no_pointer_reason)
        phrase = self.check_text(phrase, 'phrase')
        unknown = [w for w in words(phrase) if w not in self.known_words]
        if unknown:
            raise QuestionError('the model does not know the word(s) '
                                + ', '.join(repr(w) for w in unknown))
        target = re.sub(r'^(the|a|an)\s+', '', phrase, flags=re.I)
        result = self.act(image, f'go to the {target}', bgr)
        grounding = result.grounding
        grounding.phrase = phrase
        return grounding

    no_pointer_reason = 'its action head has no pointer (config action_pointer: false)'

    def _pointer_grounding(self, logits, phrase: str, frame_hw, ms: float) -> GroundingResult:
        logits = np.asarray(logits, dtype=np.float64).reshape(-1)
        probs = np.exp(logits - logits.max())
        side = self.config.grid_side
        boxes, points, scores = pointer_boxes(probs / probs.sum(), side, self.image_size,
                                              frame_hw)
        return GroundingResult(phrase, boxes, points, scores, ms, tuple(frame_hw))

    def answer_batch(self, requests) -> list:
        """[(image, question)] -> per request, in order, its TextResult or the exception
        that refuses it (ImageError, QuestionError), from one batched model call: each
        distinct image object is encoded once, equal-length prompts are decoded together.
        The answers are answer()'s; latency_ms is the whole batch's."""
        prompts = []
        for image, question in requests:
            try:
                prompts.append(self.prompt_ids(tok.QUESTION, question, 'question',
                                               (tok.ANSWER,)))
            except QuestionError as e:
                prompts.append(e)
        return self._text_batch([image for image, _q in requests], prompts)

    def caption_batch(self, images) -> list:
        """[image] -> per image its caption() TextResult or ImageError, from one batched
        model call (the captions of several cameras at once)."""
        return self._text_batch(list(images), [[tok.CAPTION]] * len(images))

    def _text_batch(self, images: list, prompts: list) -> list:
        """Replies to prompt i (token ids, or the exception refusing it) about images[i]."""
        start = time.perf_counter()
        results = [None] * len(images)
        distinct, image_rows, asked = [], {}, {}
        for n, (image, prompt) in enumerate(zip(images, prompts)):
            if isinstance(prompt, Exception):
                results[n] = prompt
                continue
            if id(image) not in image_rows:
                image_rows[id(image)] = len(distinct)
                distinct.append(image)
            asked[n] = (prompt, image_rows[id(image)])
        by_length = defaultdict(list)
        for n, (prompt, _row) in asked.items():
            by_length[len(prompt)].append(n)
        with self._lock:
            visual, failed = self._visual(distinct)
            for members in by_length.values():
                members = [n for n in members if asked[n][1] not in failed]
                if not members:
                    continue
                decoded = self._decode(visual, [asked[n][1] for n in members],
                                       [asked[n][0] for n in members])
                for n, reply in zip(members, decoded):
                    results[n] = reply
        ms = (time.perf_counter() - start) * 1000
        for n, (_prompt, row) in asked.items():
            results[n] = failed[row] if row in failed else self._result(*results[n], ms)
        return results

    def _visual(self, images: list, bgr: bool = False):
        """(visual tokens, one row per image (a failed image's row is a placeholder),
        {row: ImageError}). Frames frozen read-only (as the nodes' camera frames are) are
        remembered with their encoding, so asking about the same frame again, in the next
        batch or for a caption, does not encode it again. Lock held."""
        rows, new, failed = [None] * len(images), [], {}
        for i, image in enumerate(images):
            rows[i] = next((v for frame, was_bgr, v in self._encoded
                            if frame is image and was_bgr == bgr), None)
            if rows[i] is None:
                try:
                    new.append((i, self.pixels(image, bgr)))
                except ImageError as e:
                    failed[i] = e
        if new:
            visual = self._encode(np.concatenate([p for _i, p in new]))
            for k, (i, _p) in enumerate(new):
                rows[i] = visual[k:k + 1]
                if isinstance(images[i], np.ndarray) and not images[i].flags.writeable:
                    self._encoded = (self._encoded + [(images[i], bgr, rows[i])])[-ENCODED_FRAMES:]
        present = [r for r in rows if r is not None]
        if not present:
            return None, failed
        rows = [r if r is not None else present[0] for r in rows]   # failed: never read
        return self._join(rows), failed

    def _text(self, image, prompt: list, bgr: bool = False) -> TextResult:
        start = time.perf_counter()
        with self._lock:
            visual, failed = self._visual([image], bgr)
            if failed:
                raise failed[0]
            tokens, probs = self._decode(visual, [0], [prompt])[0]
        return self._result(tokens, probs, (time.perf_counter() - start) * 1000)

    def _result(self, tokens, probs, ms: float) -> TextResult:
        confidence = float(np.prod(np.asarray(probs, dtype=np.float32)))
        return TextResult(self.tokenizer.decode(tokens), confidence, ms, tokens=len(tokens))

    def max_new_tokens(self, prompt_len: int, limit: int = 24) -> int:
        """Reply length cap: as model.generate, the text never outgrows max_text_len."""
        return min(limit, self.config.max_text_len - prompt_len + 1)

    # -- what a backend provides ------------------------------------------------------------
    def _encode(self, pixels):
        """uint8 (B, S, S, 3) -> the visual tokens (B, Q, dim) the decoder reads."""
        raise NotImplementedError

    def _join(self, parts: list):
        """Visual tokens of several images (each (1, Q, dim)) as one batch."""
        raise NotImplementedError

    def _decode(self, visual, rows: list, prompts: list) -> list:
        """Greedy replies to equal-length `prompts`, prompt i about visual[rows[i]]:
        [(token ids up to and including EOS, their probabilities)]."""
        raise NotImplementedError

    def _act(self, pixels, prompt: list):
        """(linear, angular, done probability, pointer logits (N + 1,) or None)."""
        raise NotImplementedError
