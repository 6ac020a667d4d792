"""One InferenceEngine per (checkpoint, threads) per process.

Nodes composed into one process (the demo, a component container) ask for the engine
here, so the model is loaded once and its weights are held once. The engine serialises
model calls with its own lock, so sharing it between nodes and threads is safe.
"""
import os
import threading

from ..engine import default_checkpoint, InferenceEngine, QuestionError
from ..preprocess import ImageError
from .params import Param

# The parameters of every node that runs the model.
ENGINE_PARAMS = (
    Param('checkpoint', '', "model checkpoint directory ('' = the bundled models/vla_tiny)"),
    Param('threads', 1, 'torch threads for inference (process-wide; keep small on a robot)',
          range=(1, 64)),
)

_engines = {}
_lock = threading.Lock()


def get_engine(checkpoint: str = '', threads: int = 1) -> InferenceEngine:
    """The process's engine for `checkpoint` ('' = the bundled model) and `threads`.

    Raises vla_ros.model.checkpoint.CheckpointError when the checkpoint is missing or bad.
    torch's thread count is process-wide: engines with different `threads` overwrite it.
    """
    path = os.path.realpath(checkpoint or default_checkpoint())
    with _lock:   # held while loading, so two nodes starting together load once
        key = (path, threads)
        if key not in _engines:
            _engines[key] = InferenceEngine(path, threads=threads)
        return _engines[key]


def answer_or_error(engine: InferenceEngine, image, question: str):
    """(TextResult, '') or (None, reason) for the refusals a client can fix."""
    try:
        return engine.answer(image, question), ''
    except (ImageError, QuestionError) as e:
        return None, str(e)


def answer_latest(engine: InferenceEngine, camera, question: str):
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
