"""The llamacpp backend: GGUF weights and their vision projector (mmproj) run by llama.cpp
through llama-cpp-python's multimodal chat handler (libmtmd), as llama_ros does.

    engine = LlamaCppEngine('/models/SmolVLM-256M-GGUF')   # one model .gguf + mmproj*.gguf
    engine.answer(frame, 'what is on the table?')

`model` is a directory holding exactly one model GGUF and one file named mmproj*.gguf,
or the model's .gguf file with its mmproj beside it. The prompt is the model's own chat
template (the GGUF's tokenizer.chat_template) with the frame as the user message's image;
replies are greedy and at most `max_new_tokens` long, streamed token by token: `on_text`
sees the reply grow and may stop it (GenerationCanceled), and a reply still generating
after `timeout_s` is stopped (GenerationTimeout; the check runs after each token, so the
first one comes after the image and the prompt). The frame is scaled to `image_max_side`
first and passed losslessly (PNG); the mmproj then resizes it to its own resolution.

llama-cpp-python builds llama.cpp from source (about 13 minutes on 2 cores), so it is not
part of the default install: `scripts/setup.sh --with llamacpp`. Without it, this backend
refuses to start with that sentence.
"""
import glob
import importlib.util
import os
import threading
import time
import weakref

import numpy as np

from ..errors import CheckpointError
from .api import Engine, GenerationCanceled, GenerationTimeout, TextResult
from .openai_backend import chat_messages, png_data_url

CAPTION_PROMPT = 'Describe this image in one sentence.'
INSTALL_HINT = ('llama-cpp-python is not installed: run `scripts/setup.sh --with llamacpp` '
                '(it builds llama.cpp, about 13 minutes on 2 cores)')


def llamacpp_available() -> bool:
    return importlib.util.find_spec('llama_cpp') is not None


def is_gguf_model(model) -> bool:
    """True for a .gguf file or a directory that holds one (what `auto` gives llamacpp)."""
    if not isinstance(model, str) or not model:
        return False
    if os.path.isfile(model):
        return model.endswith('.gguf')
    return os.path.isdir(model) and bool(glob.glob(os.path.join(model, '*.gguf')))


def gguf_files(model: str) -> tuple:
    """(model GGUF, mmproj GGUF) for a directory or a model file; CheckpointError naming
    the path and what is missing or ambiguous."""
    directory = model if os.path.isdir(model) else os.path.dirname(model) or '.'
    if not os.path.exists(model):
        raise CheckpointError(f'{model}: no such file or directory')
    ggufs = sorted(glob.glob(os.path.join(directory, '*.gguf')))
    projectors = [g for g in ggufs if os.path.basename(g).lower().startswith('mmproj')]
    if os.path.isfile(model):
        if not model.endswith('.gguf'):
            raise CheckpointError(f'{model}: not a .gguf file')
        weights = [model]
    else:
        weights = [g for g in ggufs if g not in projectors]
    if len(weights) != 1:
        found = ', '.join(os.path.basename(w) for w in weights) or 'none'
        raise CheckpointError(f'{directory}: needs exactly one model .gguf (found: {found}); '
                              'name the file as the model to choose')
    if len(projectors) != 1:
        found = ', '.join(os.path.basename(p) for p in projectors) or 'none'
        raise CheckpointError(f'{directory}: needs exactly one vision projector named '
                              f'mmproj*.gguf beside the model (found: {found})')
    return weights[0], projectors[0]


class LlamaCppEngine(Engine):
    """Load a GGUF model and its mmproj once; answer and caption with them."""
    backend = 'llamacpp'
    capabilities = frozenset({'answer', 'caption'})

    def __init__(self, model: str, threads: int = 1, max_question_chars: int = 500,
                 max_new_tokens: int = 32, image_max_side: int = 512, timeout_s: float = 30.0,
                 context: int = 4096, **_ignored):
        if max_new_tokens < 1:
            raise ValueError(f'max_new_tokens must be >= 1, got {max_new_tokens}')
        if timeout_s <= 0:
            raise ValueError(f'timeout_s must be > 0, got {timeout_s}')
        weights, projector = gguf_files(model)
        if not llamacpp_available():
            raise CheckpointError(f'{weights}: {INSTALL_HINT}')
        super().__init__(os.path.realpath(weights), threads, max_question_chars)
        self.projector = os.path.realpath(projector)
        self.max_new_tokens, self.image_max_side = max_new_tokens, image_max_side
        self.timeout_s = timeout_s
        self._lock = threading.Lock()        # one llama.cpp context: one reply at a time
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import MTMDChatHandler
        try:
            handler = MTMDChatHandler(clip_model_path=self.projector, verbose=False,
                                      use_gpu=False)
            self.llm = Llama(model_path=self.checkpoint, chat_handler=handler, n_ctx=context,
                             n_threads=threads, n_threads_batch=threads, n_gpu_layers=0,
                             seed=0, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise CheckpointError(f'{self.checkpoint} (+ {self.projector}): llama.cpp could '
                                  f'not load it: {e}') from e
        # Free llama.cpp's model when the engine goes, or at exit while sys.stdout is still
        # open (Llama.__del__ at interpreter teardown prints a traceback: it redirects
        # stdout, already closed then, to silence llama.cpp).
        self.close = weakref.finalize(self, self.llm.close)

    # -- the API ----------------------------------------------------------------------------
    def answer(self, image: np.ndarray, question: str, bgr: bool = False,
               on_text=None) -> TextResult:
        """Raises ImageError / QuestionError / GenerationTimeout / GenerationCanceled."""
        question = self.check_text(question, 'question')
        return self._chat(self._data_url(image, bgr), question, on_text)

    def caption(self, image: np.ndarray, bgr: bool = False) -> TextResult:
        return self._chat(self._data_url(image, bgr), CAPTION_PROMPT, None)

    def ground(self, image, phrase: str, bgr: bool = False):
        self.unsupported('ground phrases', 'the llamacpp backend parses no box formats yet')

    def act(self, image, instruction: str, bgr: bool = False):
        self.unsupported('follow instructions', 'the llamacpp backend has no grounding yet')

    # -- the reply --------------------------------------------------------------------------
    def _data_url(self, image: np.ndarray, bgr: bool) -> str:
        return png_data_url(image, bgr, self.image_max_side)

    def _chat(self, data_url: str, text: str, on_text) -> TextResult:
        start = time.perf_counter()
        reply, tokens, first = '', 0, None
        with self._lock:
            stream = self.llm.create_chat_completion(
                messages=chat_messages(data_url, text), max_tokens=self.max_new_tokens,
                temperature=0.0, stream=True, seed=0)
            try:
                for chunk in stream:     # one chunk per token after the role's
                    delta = chunk['choices'][0]['delta']
                    if 'content' not in delta:
                        continue
                    piece = delta['content'] or ''   # '' for tokens with no text of their own
                    now = time.perf_counter()
                    first = first if first is not None else now - start
                    reply, tokens = reply + piece, tokens + 1
                    if on_text is not None and not on_text(reply.strip(), tokens):
                        raise GenerationCanceled(f'canceled after {tokens} tokens')
                    if now - start > self.timeout_s:
                        raise GenerationTimeout(
                            f'generation passed its {self.timeout_s:g} s deadline after '
                            f'{now - start:.2f} s and {tokens} tokens (first token after '
                            f'{first:.2f} s)')
            finally:
                stream.close()               # stops llama.cpp's generation loop
        return TextResult(reply.strip(), 0.0, (time.perf_counter() - start) * 1000,
                          first_token_ms=None if first is None else first * 1000,
                          tokens=tokens)
