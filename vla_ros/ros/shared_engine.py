"""One inference engine per (model, threads, backend, options) per process.

Nodes composed into one process (the demo, a component container) ask for the engine
here, so the model is loaded once and its weights are held once. The engine serialises
model calls with its own lock, so sharing it between nodes and threads is safe.

`model` names the model directory and `backend` what runs it (vla_ros/engine/):
  model ''        the bundled models/vla_tiny (or `checkpoint`, the older name of `model`)
  backend auto    transformers for a Hugging Face directory (config.json has a
                  model_type), else onnxruntime when the ONNX export is fresh, else torch
An explicit backend must fit the directory (torch / onnxruntime: the bundled format;
transformers: a Hugging Face image-text-to-text model); a mismatch fails at startup with
the file and the reason. The transformers-only parameters (max_new_tokens ...
trust_remote_code) are ignored by the other backends. Nothing here imports torch: a node
with `backend: onnxruntime` never maps libtorch into its process.
"""
import os
import threading

from rclpy.exceptions import ParameterException

from ..engine import (BACKEND_OPTIONS, BACKENDS, default_checkpoint, GenerationCanceled,
                      GenerationTimeout, is_server_url, make_engine, QuestionError,
                      resolve_backend, ServerError)
from ..preprocess import ImageError
from .params import Param

# The parameters of every node that runs the model.
ENGINE_PARAMS = (
    Param('model', '', "model directory: the bundled format (backends torch, onnxruntime) or "
          "a Hugging Face image-text-to-text model (backend transformers); or the http(s) "
          "URL of an OpenAI-compatible server (backend openai); '' = `checkpoint`, itself "
          "'' for the bundled models/vla_tiny"),
    Param('checkpoint', '', 'older name of `model` (a bundled-format checkpoint directory); '
          "setting both to different directories is refused"),
    Param('threads', 1, 'inference threads (torch, transformers: process-wide; onnxruntime: '
          'per session; keep small on a robot)', range=(1, 64)),
    Param('backend', 'auto', "inference backend: torch, onnxruntime (the checkpoint's ONNX "
          'export; no torch in the process), transformers (a Hugging Face model directory), '
          'openai (a chat-completions server), llamacpp (GGUF + mmproj; opt-in install) or '
          'auto (openai for a URL, transformers for a Hugging Face directory, llamacpp for '
          'GGUF; else onnxruntime when the export is fresh, else torch)',
          choices=BACKENDS),
    Param('max_new_tokens', 32, 'transformers, openai, llamacpp: longest reply, in tokens',
          range=(1, 4096)),
    Param('image_max_side', 512, 'transformers, openai: frames are scaled down to this '
          'longest side (px) before the processor; image tokens dominate CPU latency (0 = '
          'no limit)',
          range=(0, 8192)),
    Param('image_splitting', False, 'transformers, Idefics3/SmolVLM: split the frame into '
          'tiles covering image_max_side, plus a global view (more image tokens); off: one '
          'tile'),
    Param('generation_timeout', 30.0, 'transformers, openai: seconds a reply may take; '
          'later ones are stopped and reported as errors', range=(0.001, 3600.0)),
    Param('weights', 'float32', 'transformers: the weights\' type: float32, bfloat16, '
          'float16, or int8 (every Linear layer quantized at load, activations scaled on '
          'the fly: the fastest on a CPU; see the README\'s speed table)',
          choices=('float32', 'bfloat16', 'float16', 'int8')),
    Param('trust_remote_code', False, "transformers: run Python code shipped in the model "
          'directory (auto_map); only for directories you trust'),
    Param('remote_model', '', "openai: the model name to ask the server for ('' = the "
          "server's default)"),
)

_engines = {}
_lock = threading.Lock()


def model_directory(p: dict) -> str:
    """The model directory the `model` / `checkpoint` parameters name ('' = bundled).
    Raises ParameterException when they name different directories."""
    model, checkpoint = p['model'], p['checkpoint']
    if model and checkpoint and os.path.realpath(model) != os.path.realpath(checkpoint):
        raise ParameterException(f'model={model!r} and checkpoint={checkpoint!r} name '
                                 'different directories: set only `model`',
                                 ['model', 'checkpoint'])
    return model or checkpoint


def engine_from_params(p: dict):
    """The process's engine for a node's ENGINE_PARAMS values `p`."""
    model = model_directory(p)
    backend = resolve_backend(p['backend'], model or None)
    options = {key: p[name] for name, key in BACKEND_OPTIONS.get(backend, {}).items()}
    return get_engine(model, p['threads'], backend, **options)


def get_engine(model: str = '', threads: int = 1, backend: str = 'auto', **options):
    """The process's engine for `model` ('' = the bundled model), `threads`, `backend`;
    `options` (TransformersEngine's keyword arguments) only for the transformers backend.
    Each call counts a user; `release_engine` uncounts one (a managed node's cleanup).

    Raises vla_ros.errors.CheckpointError when the model directory (or, for onnxruntime,
    its ONNX export) is missing, stale, bad or of the wrong kind for `backend`. torch's
    thread count is process-wide: engines with different `threads` overwrite it.
    """
    path = model if is_server_url(model) else os.path.realpath(model or default_checkpoint())
    resolved = resolve_backend(backend, path)
    if resolved not in BACKEND_OPTIONS:
        options = {}
    with _lock:   # held while loading, so two nodes starting together load once
        key = (path, threads, resolved, tuple(sorted(options.items())))
        if key not in _engines:
            _engines[key] = [make_engine(path, threads=threads, backend=resolved, **options), 0]
        _engines[key][1] += 1
        return _engines[key][0]


def release_engine(engine) -> None:
    """One user less of `engine`; the last one's release drops it from the process's
    cache, so the model is freed once nothing else holds it."""
    with _lock:
        for key, entry in list(_engines.items()):
            if entry[0] is engine:
                entry[1] -= 1
                if entry[1] <= 0:
                    del _engines[key]
                return


def answer_or_error(engine, image, question: str, on_text=None):
    """(TextResult, '') or (None, reason) for the refusals a client can fix, and for a
    reply stopped at its deadline or canceled through `on_text` (engine/api.py)."""
    try:
        return engine.answer(image, question, on_text=on_text), ''
    except (ImageError, QuestionError, GenerationTimeout, GenerationCanceled, ServerError) as e:
        return None, str(e)


def question_frame(camera, question: str, what: str = 'question'):
    """(the latest fresh frame of `camera`, '') to answer `question` about, or (None,
    reason): an empty question (`what` names it), no frame yet, a stale frame."""
    if not question.strip():
        return None, f'{what} is empty'
    return camera.usable_frame()


def answer_latest(engine, camera, question: str, on_text=None):
    """Answer about `camera`'s latest frame: (header or None, TextResult or None, error).

    Refusals (empty question, no or stale frame, undecodable frame, question the model
    cannot read) come back as an error string; the header is the frame's when there was one.
    """
    frame, error = question_frame(camera, question)
    if frame is None:
        return None, None, error
    try:
        image = frame.rgb()
    except ImageError as e:
        return frame.header, None, f'{UNUSABLE_FRAME}: {e}'
    result, error = answer_or_error(engine, image, question, on_text)
    return frame.header, result, error


UNUSABLE_FRAME = 'latest camera frame is unusable'
