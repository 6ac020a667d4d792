"""Inference engine: the one place where frames and text become answers, captions, actions.

No ROS. Two backends with one API (answer, caption, act, prepare_image; TextResult,
ActionResult; QuestionError and preprocess.ImageError refusals; `checkpoint`,
`tokenizer`, `image_size`): `torch` (torch_engine.InferenceEngine, the trained model run
eagerly) and `onnxruntime` (ort_engine.OnnxEngine, the export written by `vla-ros
export`). `make_engine` picks one.

Importing this module does not import torch: `InferenceEngine` (the torch engine) is
loaded on first use (PEP 562 `__getattr__`), so nodes that only need QuestionError or
the ONNX backend never map libtorch into their process.
"""
import importlib.util
import os

from .engine_api import (ActionResult, DEFAULT_MODEL, default_checkpoint,  # noqa: F401
                         PACKAGE_DIR, QuestionError, TextResult)
from .errors import CheckpointError
from .model.files import WEIGHTS

BACKENDS = ('auto', 'torch', 'onnxruntime')


def torch_available() -> bool:
    """True when torch can be imported (checked without importing it)."""
    return importlib.util.find_spec('torch') is not None


def onnx_export_is_fresh(checkpoint: str) -> bool:
    """True when onnxruntime is installed and `checkpoint`'s ONNX export matches its files."""
    if importlib.util.find_spec('onnxruntime') is None:
        return False
    from .onnx_manifest import default_onnx_dir, read_manifest
    try:
        read_manifest(default_onnx_dir(checkpoint), checkpoint)
        return True
    except CheckpointError:
        return False


def resolve_backend(backend: str = 'auto', checkpoint: str = None) -> str:
    """'torch' or 'onnxruntime' for a requested backend.

    'auto' is onnxruntime when the checkpoint has a fresh ONNX export (the same answers,
    measured 2-3x faster on one thread and under half the memory: README, "Edge
    runtime"); else torch when it is installed and the checkpoint has its weights (a
    retrained model not exported yet); else onnxruntime, whose loader then says what is
    missing.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend != 'auto':
        return backend
    checkpoint = checkpoint or default_checkpoint()
    if onnx_export_is_fresh(checkpoint):
        return 'onnxruntime'
    weights = os.path.join(checkpoint, WEIGHTS)
    return 'torch' if torch_available() and os.path.isfile(weights) else 'onnxruntime'


def make_engine(checkpoint: str = None, threads: int = 1, backend: str = 'auto', **kwargs):
    """An engine for `checkpoint` ('' or None = the bundled model) on `backend`.

    Raises errors.CheckpointError when the checkpoint (or its ONNX export) is missing,
    stale or corrupt; the message names the file.
    """
    resolved = resolve_backend(backend, checkpoint)
    if resolved == 'torch':
        from .torch_engine import InferenceEngine as TorchEngine
        return TorchEngine(checkpoint or None, threads=threads, **kwargs)
    from .ort_engine import OnnxEngine
    return OnnxEngine(checkpoint or None, threads=threads, **kwargs)


def __getattr__(name):
    if name == 'InferenceEngine':
        from .torch_engine import InferenceEngine
        return InferenceEngine
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
