"""The torch backend of the inference engine: the trained model run eagerly by PyTorch.

Training and evaluation need it; serving can use the ONNX export instead
(onnxruntime_backend.py), which gives the same answers without loading torch. torch's own
thread count is capped because on a small robot computer oversubscribed threads are far
slower than one.
"""
import numpy as np
import torch

from .. import tokenizer as tok
from .api import sigmoid
from .bundled import BundledEngine
from ..model.checkpoint import load_checkpoint


class InferenceEngine(BundledEngine):
    """Load a checkpoint once; answer, caption and act with the torch model."""
    backend = 'torch'

    def __init__(self, checkpoint: str = None, threads: int = 1, max_question_chars: int = 500):
        super().__init__(checkpoint, threads, max_question_chars)
        torch.set_num_threads(threads)
        self.model, self.tokenizer = load_checkpoint(self.checkpoint)
        self.config = self.model.cfg
        self.image_size = self.config.image_size

    def prepare_image(self, image: np.ndarray, bgr: bool = False) -> torch.Tensor:
        """Any-size uint8 frame -> (1, S, S, 3) tensor. Raises preprocess.ImageError."""
        return torch.from_numpy(np.require(self.pixels(image, bgr), requirements='W'))

    def _encode(self, pixels) -> torch.Tensor:
        with torch.inference_mode():
            if isinstance(pixels, np.ndarray):   # read-only camera frames: torch wants to own
                pixels = torch.from_numpy(np.require(pixels, requirements='W'))
            return self.model.encode_image(pixels)

    def _join(self, parts: list) -> torch.Tensor:
        return torch.cat(parts)

    def _decode(self, visual: torch.Tensor, rows: list, prompts: list) -> list:
        with torch.inference_mode():
            tokens, probs = self.model.generate(visual[rows], torch.tensor(prompts), eos=tok.EOS)
        replies = []
        for ids, p in zip(tokens.tolist(), probs.numpy()):   # rows done early are eos-padded
            n = ids.index(tok.EOS) + 1 if tok.EOS in ids else len(ids)
            replies.append((ids[:n], p[:n]))
        return replies

    def _act(self, pixels: torch.Tensor, prompt: list):
        with torch.inference_mode():
            visual, patches = self.model.encode(pixels)
            out = self.model.act(visual, torch.tensor([prompt]), patches=patches,
                                 with_pointer=self.has_pointer)
        velocity, done = out[:2]
        pointer = out[2][0].numpy() if self.has_pointer else None
        return float(velocity[0, 0]), float(velocity[0, 1]), sigmoid(float(done[0])), pointer
