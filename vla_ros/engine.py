"""Inference engine: the one place where frames and text become answers, captions, actions.

Pure Python + torch, no ROS. Load a checkpoint once and share the engine between
threads (a lock serialises the model; torch's own threads are capped because on a
small robot computer oversubscribed threads are far slower than one).
"""
import os
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import tokenizer as tok
from .model.checkpoint import load_checkpoint
from .preprocess import to_model_input

PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))  # the source tree under symlink installs
DEFAULT_MODEL = 'vla_tiny'


class QuestionError(ValueError):
    """A question or instruction the engine refuses; the message says why."""


@dataclass
class TextResult:
    text: str
    confidence: float      # probability of the generated token sequence
    latency_ms: float


@dataclass
class ActionResult:
    linear: float          # forward speed in [-1, 1] of the maximum
    angular: float         # turn rate in [-1, 1] of the maximum (positive = left)
    done: float            # probability that the goal is reached
    latency_ms: float


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
    for prefix in (os.environ.get('VIRTUAL_ENV'), os.sys.prefix):
        if prefix:
            candidates.append(os.path.join(prefix, 'share', 'vla_ros', 'models'))
    for c in candidates:
        if os.path.isdir(os.path.join(c, DEFAULT_MODEL)):
            return os.path.join(c, DEFAULT_MODEL)
    return os.path.join(candidates[-1], DEFAULT_MODEL)


class InferenceEngine:
    def __init__(self, checkpoint: str = None, threads: int = 1, max_question_chars: int = 500):
        if threads < 1:
            raise ValueError(f'threads must be >= 1, got {threads}')
        torch.set_num_threads(threads)
        self.checkpoint = checkpoint or default_checkpoint()
        self.model, self.tokenizer = load_checkpoint(self.checkpoint)
        self.image_size = self.model.cfg.image_size
        self.max_question_chars = max_question_chars
        self._lock = threading.Lock()

    # -- inputs ---------------------------------------------------------------------------
    def prepare_image(self, image: np.ndarray, bgr: bool = False) -> torch.Tensor:
        """Any-size uint8 frame -> (1, S, S, 3) tensor. Raises preprocess.ImageError."""
        return torch.from_numpy(to_model_input(image, self.image_size, bgr))[None]

    def _prompt(self, lead: int, text: str, what: str, tail=()) -> torch.Tensor:
        if not isinstance(text, str):
            raise QuestionError(f'{what} must be text, got {type(text).__name__}')
        stripped = text.strip()
        if not stripped:
            raise QuestionError(f'{what} is empty')
        if len(stripped) > self.max_question_chars:
            raise QuestionError(f'{what} is {len(stripped)} characters long; '
                                f'the limit is {self.max_question_chars}')
        ids = [lead] + self.tokenizer.encode(stripped) + list(tail)
        room = self.model.cfg.max_text_len - 12   # leave room for the reply
        if len(ids) > room:
            raise QuestionError(f'{what} is {len(ids)} tokens long; the model reads at most '
                                f'{room} (fewer, longer words are fine)')
        return torch.tensor([ids])

    # -- the three things the model does -----------------------------------------------------
    def answer(self, image: np.ndarray, question: str, bgr: bool = False) -> TextResult:
        """Answer a question about an image. Raises ImageError / QuestionError."""
        prompt = self._prompt(tok.QUESTION, question, 'question', (tok.ANSWER,))
        return self._generate(self.prepare_image(image, bgr), prompt)

    def caption(self, image: np.ndarray, bgr: bool = False) -> TextResult:
        """Describe an image in one sentence. Raises ImageError."""
        return self._generate(self.prepare_image(image, bgr), torch.tensor([[tok.CAPTION]]))

    def act(self, image: np.ndarray, instruction: str, bgr: bool = False) -> ActionResult:
        """Velocity command for following an instruction. Raises ImageError / QuestionError."""
        pixels = self.prepare_image(image, bgr)
        prompt = self._prompt(tok.ACTION, instruction, 'instruction')
        start = time.perf_counter()
        with self._lock, torch.inference_mode():
            velocity, done = self.model.act(self.model.encode_image(pixels), prompt)
        v = [float(x) if np.isfinite(float(x)) else 0.0 for x in velocity[0]]
        d = float(torch.sigmoid(done[0]))
        return ActionResult(v[0], v[1], d if np.isfinite(d) else 0.0,
                            (time.perf_counter() - start) * 1000)

    def _generate(self, pixels: torch.Tensor, prompt: torch.Tensor) -> TextResult:
        start = time.perf_counter()
        with self._lock, torch.inference_mode():
            visual = self.model.encode_image(pixels)
            tokens, probs = self.model.generate(visual, prompt, eos=tok.EOS)
        text = self.tokenizer.decode(tokens[0].tolist())
        return TextResult(text, float(probs[0].prod()), (time.perf_counter() - start) * 1000)
