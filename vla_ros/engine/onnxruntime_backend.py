"""The ONNX Runtime backend of the inference engine: the export of `vla-ros export`, no torch.

Same API and answers as the torch engine (torch_backend.py), at a fraction of the memory:
onnxruntime instead of libtorch in the process. Three graphs (onnx_manifest.py):
  image_encoder  uint8 pixels (B, S, S, 3) -> visual tokens (B, Q, dim), patches (B, N, dim)
  decoder_step   new token ids (B, T), visual tokens, the latent KV cache of the text
                 seen so far (layers, B, past, rank) -> logits (B, T, vocab), the last
                 hidden state (B, dim) and the grown cache (layers, B, past + T, rank)
  action_head    last hidden state (and patches, for a pointer head) -> velocity (B, 2),
                 done logit (B,)
Greedy decoding is incremental as in torch: one decoder_step call for the prompt, then
one per generated token, each feeding the previous call's cache back in.

Threads: `threads` sets ONNX Runtime's intra-op pool (per session; inter-op is 1, and
pool threads sleep rather than spin when idle, which matters on a 2-core robot shared
with other nodes).
"""
import numpy as np
import onnxruntime as ort

from .. import tokenizer as tok
from .api import sigmoid
from .bundled import BundledEngine
from ..model.files import read_config_and_tokenizer
from ..errors import CheckpointError
from ..onnx_manifest import default_onnx_dir, read_manifest


def session_options(threads: int, batch: int = None) -> ort.SessionOptions:
    """Sequential execution on `threads` intra-op threads that never busy-wait; `batch`
    fixes the graphs' symbolic batch axis ('batch' in onnx_export.DYNAMIC_AXES; see
    OnnxEngine)."""
    options = ort.SessionOptions()
    if batch is not None:
        options.add_free_dimension_override_by_name('batch', batch)
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    options.add_session_config_entry('session.inter_op.allow_spinning', '0')
    options.log_severity_level = 3   # errors only: no warnings on stderr in nodes
    return options


def load_session(path: str, options: ort.SessionOptions, inputs, outputs):
    """An InferenceSession for `path` whose I/O names are `inputs` and `outputs`."""
    try:
        session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    except Exception as e:  # noqa: BLE001 - ORT raises private pybind types (Fail, InvalidGraph)
        raise CheckpointError(f'{path}: ONNX Runtime cannot load it ({e})') from e
    names = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
    if names != (list(inputs), list(outputs)):
        raise CheckpointError(f'{path}: graph has inputs/outputs {names}, the manifest says '
                              f'{(list(inputs), list(outputs))}')
    return session


class OnnxEngine(BundledEngine):
    """Load a checkpoint's ONNX export once; answer, caption and act with ONNX Runtime."""
    backend = 'onnxruntime'

    def __init__(self, checkpoint: str = None, threads: int = 1, max_question_chars: int = 500,
                 onnx_dir: str = None):
        super().__init__(checkpoint, threads, max_question_chars)
        self.config, self.tokenizer = read_config_and_tokenizer(self.checkpoint)
        self.image_size = self.config.image_size
        self.onnx_dir = onnx_dir or default_onnx_dir(self.checkpoint)
        self.manifest = read_manifest(self.onnx_dir, self.checkpoint)
        graphs = self.manifest['graphs']
        # Each graph twice: for any batch, and for batch 1 (one frame: every act, most
        # answers), where ONNX Runtime folds the graph's shape arithmetic at load: ~10%
        # faster answers and acts for ~5 MB more memory (README, "Edge runtime").

        def load(batch):
            options = session_options(threads, batch)
            return {name: load_session(g['path'], options, g['inputs'], g['outputs'])
                    for name, g in graphs.items()}
        self.sessions, self.single_sessions = load(None), load(1)
        self.pointer_output = 'pointer' in graphs['action_head']['outputs']
        cache = self.manifest['kv_cache']
        self._no_past = np.zeros((cache['layers'], 1, 0, cache['width']), np.float32)

    @property
    def has_pointer(self) -> bool:
        return self.pointer_output

    @property
    def no_pointer_reason(self) -> str:
        if self.config.action_pointer:
            return (f"its ONNX export's action head has no pointer output (exported before "
                    f"grounding existed): re-export with `vla-ros export --checkpoint "
                    f"{self.checkpoint}`")
        return 'its action head has no pointer (config action_pointer: false)'

    # -- the graphs -----------------------------------------------------------------------
    def encode(self, pixels: np.ndarray):
        """uint8 (B, S, S, 3) -> (visual tokens (B, Q, dim), patch features (B, N, dim))."""
        return self._graph('image_encoder', pixels).run(None, {'pixels': pixels})

    def encode_image(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (B, S, S, 3) -> visual tokens (B, Q, dim)."""
        return self._graph('image_encoder', pixels).run(['visual'], {'pixels': pixels})[0]

    def decoder_step(self, ids: np.ndarray, visual: np.ndarray, past: np.ndarray = None):
        """(logits (B, T, vocab), last hidden (B, dim), cache (layers, B, past + T, rank))."""
        if past is None:
            past = np.zeros(self._no_past.shape[:1] + (ids.shape[0],) + self._no_past.shape[2:],
                            np.float32)
        feeds = {'ids': ids, 'visual': visual, 'past': past}
        return self._graph('decoder_step', ids).run(None, feeds)

    def _graph(self, name: str, batched: np.ndarray):
        """The session of graph `name` for an input whose first axis is the batch."""
        return (self.single_sessions if len(batched) == 1 else self.sessions)[name]

    # -- EngineBase ---------------------------------------------------------------------------
    def _encode(self, pixels: np.ndarray) -> np.ndarray:
        return self.encode_image(pixels)

    def _join(self, parts: list) -> np.ndarray:
        return np.concatenate(parts)

    def _decode(self, visual: np.ndarray, rows: list, prompts: list) -> list:
        """Greedy decoding with the KV cache, all prompts in lockstep (as VLAModel.generate);
        a row stops growing at its EOS."""
        visual = visual[rows]
        ids, past = np.array(prompts, np.int64), None
        replies = [([], []) for _ in prompts]
        running = np.ones(len(prompts), bool)
        for _ in range(self.max_new_tokens(len(prompts[0]))):
            logits, _, past = self.decoder_step(ids, visual, past)
            last = logits[:, -1]                                        # (B, vocab)
            nxt = last.argmax(-1)
            chosen = last[np.arange(len(nxt)), nxt][:, None]
            probs = 1.0 / np.exp(last - chosen).sum(-1)                 # softmax at the argmax
            for b in np.flatnonzero(running):
                replies[b][0].append(int(nxt[b]))
                replies[b][1].append(float(probs[b]))
            running &= nxt != tok.EOS
            if not running.any():
                break
            ids = nxt[:, None].astype(np.int64)
        return replies

    def _act(self, pixels: np.ndarray, prompt: list):
        visual, patches = self.encode(pixels)
        _, hidden, _ = self.decoder_step(np.array([prompt], np.int64), visual, self._no_past)
        head = self._graph('action_head', hidden)
        feeds = {'last_hidden': hidden, 'patches': patches}
        outputs = dict(zip([o.name for o in head.get_outputs()],
                           head.run(None, {i.name: feeds[i.name] for i in head.get_inputs()})))
        velocity, done, pointer = outputs['velocity'], outputs['done_logit'], \
            outputs.get('pointer')
        return (float(velocity[0, 0]), float(velocity[0, 1]), sigmoid(float(done[0])),
                None if pointer is None else pointer[0])
