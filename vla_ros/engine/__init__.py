"""Inference engine: the one place where frames and text become answers, captions, actions.

No ROS. One API (api.Engine: answer, caption, ground, act; TextResult, GroundingResult,
ActionResult; QuestionError / UnsupportedError, preprocess.ImageError and
GenerationTimeout refusals; GenerationCanceled; `checkpoint`, `backend`, `capabilities`),
grounding.py turns what each model says about where things are (the bundled pointer
head, PaliGemma's <loc> tokens, Qwen's boxes) into GroundingResults, and acts by
grounding + visual servo for models without an action head. One module per backend:
  torch         torch_backend.InferenceEngine: the bundled model's format, run eagerly
  onnxruntime   onnxruntime_backend.OnnxEngine: its ONNX export (`vla-ros export`), no torch
  transformers  transformers_backend.TransformersEngine: a local Hugging Face
                image-text-to-text model directory (SmolVLM/Idefics3, PaliGemma, LLaVA,
                Qwen2-VL, Qwen2.5-VL)
  openai        openai_backend.OpenAIEngine: an OpenAI-compatible chat-completions server
                (`model` is its URL, e.g. http://gpu-box:8000/v1)
  llamacpp      llamacpp_backend.LlamaCppEngine: GGUF weights + mmproj through
                llama-cpp-python (an opt-in install: scripts/setup.sh --with llamacpp)
`make_engine` picks one for a model directory.

Importing this package does not import torch or transformers: each backend is loaded on
first use (and `InferenceEngine` through PEP 562 `__getattr__`), so nodes that only need
QuestionError or the ONNX backend never map libtorch into their process.
"""
import importlib.util
import os

from .api import (ActionResult, DEFAULT_MODEL, default_checkpoint, Engine,  # noqa: F401
                  GenerationCanceled, GenerationTimeout, GroundingResult, is_server_url,
                  PACKAGE_DIR, QuestionError, ServerError, TextResult, UnsupportedError)
from .hf_families import hf_model_type
from .llamacpp_backend import is_gguf_model
from ..errors import CheckpointError
from ..model.files import WEIGHTS

BACKENDS = ('auto', 'torch', 'onnxruntime', 'transformers', 'openai', 'llamacpp')
# The options each backend takes: node parameter (and `vla-ros` option) name -> the
# engine's keyword argument.
BACKEND_OPTIONS = {
    'transformers': {'max_new_tokens': 'max_new_tokens', 'image_max_side': 'image_max_side',
                     'image_splitting': 'image_splitting', 'generation_timeout': 'timeout_s',
                     'trust_remote_code': 'trust_remote_code', 'weights': 'dtype'},
    'openai': {'max_new_tokens': 'max_new_tokens', 'image_max_side': 'image_max_side',
               'generation_timeout': 'timeout_s', 'remote_model': 'remote_model'},
    'llamacpp': {'max_new_tokens': 'max_new_tokens', 'image_max_side': 'image_max_side',
                 'generation_timeout': 'timeout_s'},
}
BUNDLED_BACKENDS = ('torch', 'onnxruntime')


def torch_available() -> bool:
    """True when torch can be imported (checked without importing it)."""
    return importlib.util.find_spec('torch') is not None


def onnx_export_is_fresh(checkpoint: str) -> bool:
    """True when onnxruntime is installed and `checkpoint`'s ONNX export matches its files."""
    if importlib.util.find_spec('onnxruntime') is None:
        return False
    from ..onnx_manifest import default_onnx_dir, read_manifest
    try:
        read_manifest(default_onnx_dir(checkpoint), checkpoint)
        return True
    except CheckpointError:
        return False


def resolve_backend(backend: str = 'auto', model: str = None) -> str:
    """'torch', 'onnxruntime', 'transformers' or 'openai' for a requested backend and model
    directory (or server URL: 'auto' is openai for an http(s) URL).

    'auto' is transformers for a Hugging Face model directory (its config.json names a
    `model_type`), llamacpp for a .gguf file or a directory holding one. For the bundled
    format it is onnxruntime when the checkpoint has a fresh ONNX export (the same
    answers, measured 2-3x faster on one thread and under half the memory: README, "Edge
    runtime"); else torch when it is installed and the
    checkpoint has its weights (a retrained model not exported yet); else onnxruntime,
    whose loader then says what is missing.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend != 'auto':
        return backend
    if is_server_url(model):
        return 'openai'
    model = model or default_checkpoint()
    if os.path.isdir(model) and hf_model_type(model):
        return 'transformers'
    if is_gguf_model(model):
        return 'llamacpp'
    if onnx_export_is_fresh(model):
        return 'onnxruntime'
    weights = os.path.join(model, WEIGHTS)
    return 'torch' if torch_available() and os.path.isfile(weights) else 'onnxruntime'


def make_engine(model: str = None, threads: int = 1, backend: str = 'auto', **kwargs):
    """An engine for the model directory `model` ('' or None = the bundled model) on
    `backend`. `kwargs` go to the backend (e.g. transformers: max_new_tokens,
    image_max_side, image_splitting, timeout_s, trust_remote_code).

    Raises errors.CheckpointError when the model directory (or its ONNX export) is
    missing, stale, corrupt or of a kind the backend does not run; the message names the
    file.
    """
    resolved = resolve_backend(backend, model)
    if resolved in BUNDLED_BACKENDS and model and os.path.isdir(model):
        model_type = hf_model_type(model)
        if model_type:
            raise CheckpointError(
                f"{os.path.join(model, 'config.json')}: a Hugging Face model (model_type "
                f"{model_type!r}); the {resolved} backend runs the bundled model's format "
                'only: use backend transformers (or auto)')
    if resolved == 'openai':
        from .openai_backend import OpenAIEngine
        return OpenAIEngine(model, threads=threads, **kwargs)
    if resolved == 'llamacpp':
        from .llamacpp_backend import LlamaCppEngine
        return LlamaCppEngine(model, threads=threads, **kwargs)
    if resolved == 'transformers':
        from .transformers_backend import TransformersEngine
        return TransformersEngine(model, threads=threads, **kwargs)
    if resolved == 'torch':
        from .torch_backend import InferenceEngine as TorchEngine
        return TorchEngine(model or None, threads=threads, **kwargs)
    from .onnxruntime_backend import OnnxEngine
    return OnnxEngine(model or None, threads=threads, **kwargs)


def __getattr__(name):
    if name == 'InferenceEngine':
        from .torch_backend import InferenceEngine
        return InferenceEngine
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
