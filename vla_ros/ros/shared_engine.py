"""One inference engine per (checkpoint, threads, backend) per process.

Nodes composed into one process (the demo, a component container) ask for the engine
here, so the model is loaded once and its weights are held once. The engine serialises
model calls with its own lock, so sharing it between nodes and threads is safe.

The `backend` parameter picks torch or ONNX Runtime (vla_ros/engine.py). Nothing here
imports torch: a node with `backend: onnxruntime` never maps libtorch into its process.
"""
import os
import threading

from ..engine import BACKENDS, default_checkpoint, make_engine, QuestionError, resolve_backend
from ..preprocess import ImageError
from .params import Param

# The parameters of every node that runs the model.
ENGINE_PARAMS = (
    Param('checkpoint', '', "model checkpoint directory ('' = the bundled models/vla_tiny)"),
    Param('threads', 1, 'inference threads (torch: process-wide; onnxruntime: per session; '
          'keep small on a robot)', range=(1, 64)),
    Param('backend', 'auto', "inference backend: torch, onnxruntime (the checkpoint's ONNX "
          "export; no torch in the process) or auto (onnxruntime when the export is fresh, "
          'else torch)',
          choices=BACKENDS),
)

_engines = {}
_lock = threading.Lock()


def get_engine(checkpoint: str = '', threads: int = 1, backend: str = 'auto'):
    """The process's engine for `checkpoint` ('' = the bundled model), `threads`, `backend`.

    Raises vla_ros.errors.CheckpointError when the checkpoint (or, for onnxruntime, its
    ONNX export) is missing, stale or bad. torch's thread count is process-wide: torch
    engines with different `threads` overwrite it.
    """
    path = os.path.realpath(checkpoint or default_checkpoint())
    resolved = resolve_backend(backend, path)
    with _lock:   # held while loading, so two nodes starting together load once
        key = (path, threads, resolved)
        if key not in _engines:
            _engines[key] = make_engine(path, threads=threads, backend=resolved)
        return _engines[key]


def answer_or_error(engine, image, question: str):
    """(TextResult, '') or (None, reason) for the refusals a client can fix."""
    try:
        return engine.answer(image, question), ''
    except (ImageError, QuestionError) as e:
        return None, str(e)


def answer_latest(engine, camera, question: str):
    """Answer about `camera`'s latest frame: (header or None, TextResult or None, error).

    Refusals (empty question, no or stale frame, undecodable frame, question the model
    cannot read) come back as an error string; the header is the frame's when there was one.
    """
    if not question.strip():
        return None, None, 'question is empty'
    frame, error = camera.usable_frame()
    if frame is None:
        return None, None, error
    try:
        image = frame.rgb()
    except ImageError as e:
        return frame.header, None, f'latest camera frame is unusable: {e}'
    result, error = answer_or_error(engine, image, question)
    return frame.header, result, error
