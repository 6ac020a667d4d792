"""`vla-ros export`: the trained torch model as three ONNX graphs, and the parity check.

The graphs (names and I/O in onnx_manifest.GRAPHS) are thin torch modules around the
model's own submodules, traced by torch.onnx's TorchScript exporter:
  ImageEncoderGraph  vision encoder + Q-Former, as VLAModel.encode_image;
  DecoderStepGraph   the text decoder with the latent KV cache passed in and out as one
                     (layers, B, past, rank) tensor. Positions start at `past`, so the
                     same graph runs the prompt (past = 0) and each generated token;
  ActionHeadGraph    the action head on the last hidden state (and the patches, which the
                     pointer head and its obstacle map read).
`parity_report` runs the torch and ONNX Runtime engines side by side on easy-VQA.
"""
import os
import shutil
import tempfile
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import tokenizer as tok
from .engine.api import default_checkpoint
from .model.files import CONFIG
from .model.checkpoint import load_checkpoint
from .onnx_manifest import default_onnx_dir, GRAPHS, read_manifest, write_manifest

OPSET = 17   # LayerNormalization is a single op from 17 on


class ImageEncoderGraph(nn.Module):
    """uint8 pixels (B, S, S, 3) -> visual tokens (B, Q, dim), patch features (B, N, dim)
    (the patches are what a pointer action head attends over)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixels):
        return self.model.encode(pixels)


def cached_self_attention(attn, x, past, mask):
    """LatentAttention self-attention over cached latents `past` (B, S, rank) and x (B, T, dim).

    Same maths as LatentAttention.forward with a cache, with the mask always explicit so
    one graph serves any number of new and cached tokens. Returns (output, latents).
    """
    B, T, D = x.shape
    latent = torch.cat([past, attn.compress(x)], dim=1)                     # (B, S + T, rank)
    k, v = attn.keys_values(latent)                                         # (B, h, S + T, hd)
    q = attn.query(x).view(B, T, attn.heads, attn.head_dim).transpose(1, 2)  # (B, h, T, hd)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)             # (B, h, T, hd)
    return attn.out(y.transpose(1, 2).reshape(B, T, D)), latent


class DecoderStepGraph(nn.Module):
    """ids (B, T), visual (B, Q, dim), past (layers, B, S, rank) ->
    logits (B, T, vocab), last hidden (B, dim), present (layers, B, S + T, rank)."""

    def __init__(self, model):
        super().__init__()
        assert model.cfg.decoder_window is None, \
            'export supports full causal decoder attention only (decoder_window must be None)'
        assert model.cfg.kv_rank is not None, 'export expects latent attention (kv_rank set)'
        self.decoder = model.decoder

    def forward(self, ids, visual, past):
        d = self.decoder
        T, S = ids.shape[1], past.shape[2]
        q_pos = torch.arange(T) + S                                       # (T,)
        k_pos = torch.arange(S + T)                                       # (S + T,)
        mask = k_pos[None, :] <= q_pos[:, None]                           # (T, S + T) causal
        x = d.embed(ids) + d.pos[0].index_select(0, q_pos)                # (B, T, dim)
        present = []
        for i, layer in enumerate(d.layers):
            h = layer.norm1(x)
            text, latent = cached_self_attention(layer.attn.text, h, past[i], mask)
            x = layer.add_image(x, h, text, visual)
            x = x + layer.ffn(layer.norm2(x))
            present.append(latent)
        hidden = d.norm(x)
        return d.logits(hidden), hidden[:, -1], torch.stack(present)


class ActionHeadGraph(nn.Module):
    """last hidden (B, dim), patches (B, N, dim) -> velocity (B, 2) in [-1, 1], done logit
    (B,), and a pointer head's logits (B, N + 1) (the engine's `ground`). A head that
    ignores the patches exports without that input or the pointer."""

    def __init__(self, model):
        super().__init__()
        self.action = model.action
        self.pointer = bool(model.cfg.action_pointer)

    def forward(self, last_hidden, patches):
        return self.action(last_hidden, patches, with_pointer=self.pointer)


def _example_inputs(model):
    """Tracing inputs; sizes differ from each other so no dimension is mistaken for another."""
    cfg = model.cfg
    B, T, S = 2, 3, 5
    pixels = torch.zeros(B, cfg.image_size, cfg.image_size, 3, dtype=torch.uint8)
    visual, patches = model.encode(pixels)
    return {
        'image_encoder': (pixels,),
        'decoder_step': (torch.ones(B, T, dtype=torch.long), visual,
                         torch.zeros(cfg.decoder_layers, B, S, cfg.kv_rank)),
        # traced at batch 1, the engine's (the graph still takes any batch: dynamic axes)
        'action_head': (torch.zeros(1, cfg.dim), patches[:1]),
    }


DYNAMIC_AXES = {
    'image_encoder': {'pixels': {0: 'batch'}, 'visual': {0: 'batch'}, 'patches': {0: 'batch'}},
    'decoder_step': {'ids': {0: 'batch', 1: 'new_tokens'}, 'visual': {0: 'batch'},
                     'past': {1: 'batch', 2: 'past_tokens'},
                     'logits': {0: 'batch', 1: 'new_tokens'}, 'last_hidden': {0: 'batch'},
                     'present': {1: 'batch', 2: 'all_tokens'}},
    'action_head': {'last_hidden': {0: 'batch'}, 'patches': {0: 'batch'}, 'velocity': {0: 'batch'},
                    'done_logit': {0: 'batch'}, 'pointer': {0: 'batch'}},
}
WRAPPERS = {'image_encoder': ImageEncoderGraph, 'decoder_step': DecoderStepGraph,
            'action_head': ActionHeadGraph}


def _graph_io(directory: str) -> dict:
    """{graph: (input names, output names)} as exported (the exporter drops inputs a graph
    never reads; only a pointer head has the `pointer` output)."""
    import onnx
    io = {}
    for name, (file, _, _) in GRAPHS.items():
        graph = onnx.load(os.path.join(directory, file)).graph
        io[name] = (tuple(i.name for i in graph.input), tuple(o.name for o in graph.output))
    return io


def source_directory(checkpoint: str) -> str:
    """Where the checkpoint's files really are: under a colcon --symlink-install the
    installed share/ directory holds links into the source tree, and the export belongs
    next to the real files (the installed tree links to it after the next build)."""
    config = os.path.join(checkpoint, CONFIG)
    return os.path.dirname(os.path.realpath(config)) if os.path.islink(config) else checkpoint


def export_onnx(checkpoint: str = None, out_dir: str = None, opset: int = OPSET) -> dict:
    """Export `checkpoint` (default: the bundled model) to `out_dir` (default
    <checkpoint>/onnx). Files are written to a temporary directory first and moved in
    together, so a failed export never leaves a half-written one. Returns the manifest."""
    checkpoint = source_directory(checkpoint or default_checkpoint())
    out_dir = out_dir or default_onnx_dir(checkpoint)
    model, _ = load_checkpoint(checkpoint)
    os.makedirs(os.path.dirname(os.path.abspath(out_dir)), exist_ok=True)
    staging = tempfile.mkdtemp(prefix='.onnx_export_', dir=os.path.dirname(
        os.path.abspath(out_dir)))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')   # tracer and deprecation chatter
            inputs = _example_inputs(model)
            for name, (file, input_names, output_names) in GRAPHS.items():
                if name == 'action_head' and not model.cfg.action_pointer:
                    output_names = [o for o in output_names if o != 'pointer']
                torch.onnx.export(WRAPPERS[name](model).eval(), inputs[name],
                                  os.path.join(staging, file), dynamo=False,
                                  input_names=list(input_names),
                                  output_names=list(output_names),
                                  dynamic_axes=DYNAMIC_AXES[name], opset_version=opset,
                                  do_constant_folding=True)
        extra = {'kv_cache': {'layers': model.cfg.decoder_layers, 'width': model.cfg.kv_rank},
                 'exported_with': {'torch': torch.__version__}}
        write_manifest(staging, checkpoint, opset, extra, _graph_io(staging))
        os.makedirs(out_dir, exist_ok=True)
        for entry in os.listdir(staging):
            os.replace(os.path.join(staging, entry), os.path.join(out_dir, entry))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return read_manifest(out_dir, checkpoint)


# -- parity: torch and ONNX Runtime side by side ---------------------------------------------
def _torch_step_logits(model, pixels: np.ndarray, sequence: list, prompt_len: int):
    """Logits (steps, vocab) the torch decoder gives, with its KV cache, at each step of
    decoding `sequence` (prompt, then one token at a time)."""
    with torch.inference_mode():
        visual = model.encode_image(torch.from_numpy(pixels))
        hidden, caches = model.decoder(torch.tensor([sequence[:prompt_len]]), visual)
        out = [model.decoder.logits(hidden[:, -1])]
        for pos in range(prompt_len, len(sequence)):
            hidden, caches = model.decoder(torch.tensor([[sequence[pos]]]), visual, caches, pos)
            out.append(model.decoder.logits(hidden[:, -1]))
    return torch.cat(out).numpy()


def _ort_step_logits(engine, pixels: np.ndarray, sequence: list, prompt_len: int):
    visual = engine.encode_image(pixels)
    logits, _, past = engine.decoder_step(np.array([sequence[:prompt_len]]), visual)
    out = [logits[:, -1]]
    for pos in range(prompt_len, len(sequence)):
        logits, _, past = engine.decoder_step(np.array([[sequence[pos]]]), visual, past)
        out.append(logits[:, -1])
    return np.concatenate(out)


def _logit_difference(torch_engine, ort_engine, pixels, prompt: list, reply: str) -> float:
    """Max |torch - ORT| logit over the decoding steps of `prompt` + the torch reply."""
    generated = torch_engine.tokenizer.encode(reply) + [tok.EOS]
    sequence = prompt + generated[:-1]   # the last step predicts the final token
    a = _torch_step_logits(torch_engine.model, pixels, sequence, len(prompt))
    b = _ort_step_logits(ort_engine, pixels, sequence, len(prompt))
    return float(np.abs(a - b).max())


def parity_report(checkpoint: str = None, onnx_dir: str = None, limit: int = None,
                  threads: int = 1) -> dict:
    """Torch vs ONNX Runtime on the easy-VQA test split (the first `limit` questions and
    the captions of the images they are about, or everything): identical answers and
    captions, and the largest logit difference along the way."""
    from .data.easy_vqa import load_split
    from .engine.onnxruntime_backend import OnnxEngine
    from .engine.torch_backend import InferenceEngine
    torch_engine = InferenceEngine(checkpoint, threads=threads)
    ort_engine = OnnxEngine(checkpoint, threads=threads, onnx_dir=onnx_dir)
    split = load_split('test')
    questions = split.questions[:limit] if limit else split.questions
    images = sorted({i for _, _, i in questions})
    start = time.time()
    answers_same, captions_same, max_diff, mismatches = 0, 0, 0.0, []
    for q, _a, i in questions:
        a, b = torch_engine.answer(split.images[i], q), ort_engine.answer(split.images[i], q)
        answers_same += a.text == b.text
        if a.text != b.text and len(mismatches) < 10:
            mismatches.append({'question': q, 'image': i, 'torch': a.text, 'ort': b.text})
        prompt = torch_engine.tokenizer.question_prompt(q)
        pixels = ort_engine.prepare_image(split.images[i])
        max_diff = max(max_diff, _logit_difference(torch_engine, ort_engine, pixels, prompt,
                                                   a.text))
    for i in images:
        a, b = torch_engine.caption(split.images[i]), ort_engine.caption(split.images[i])
        captions_same += a.text == b.text
        if a.text != b.text and len(mismatches) < 10:
            mismatches.append({'caption_of_image': i, 'torch': a.text, 'ort': b.text})
        pixels = ort_engine.prepare_image(split.images[i])
        max_diff = max(max_diff, _logit_difference(torch_engine, ort_engine, pixels,
                                                   [tok.CAPTION], a.text))
    return {'split': 'easy-VQA test', 'checkpoint': torch_engine.checkpoint,
            'onnx_dir': ort_engine.onnx_dir,
            'answers_identical': answers_same, 'answers_total': len(questions),
            'captions_identical': captions_same, 'captions_total': len(images),
            'max_abs_logit_diff': max_diff, 'mismatches': mismatches,
            'seconds': round(time.time() - start, 1)}
