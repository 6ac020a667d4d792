"""The API every inference backend shares, without importing torch.

`Engine`: answer / caption / ground / act, their results (TextResult, GroundingResult,
ActionResult) and refusals (QuestionError for unusable text, UnsupportedError for what a
backend cannot do, preprocess.ImageError for frames, GenerationTimeout for a reply past
its deadline); the bundled model's shared engine is bundled.py. Also where the bundled
model lives, and how to tell a server URL from a model directory.

Importing this module (or tokenizer.py, preprocess.py, model/config.py) never imports
torch, so processes that serve the ONNX export stay small.
"""
import hashlib
import math
import os
import sys
import threading
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..control.visual_servo import parse_open_instruction

# vla_ros/ in the source tree (symlink installs resolve to it)
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
DEFAULT_MODEL = 'vla_tiny'


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
