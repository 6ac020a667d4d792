"""`vla-ros explain`: where the model looks, drawn next to what it says (seed 002's idea).

For a question: the Q-Former's cross-attention (each query token over the image patches,
averaged over heads and queries) and the answer's view of the image, i.e. the decoder's
attention from the answer position to the query tokens (averaged over layers and heads)
carried through to the patches by the queries' own attention ("attention rollout"). For
an instruction with the pointer action head: the pointer over the patches, the "not in
view" probability and the velocity command.

Attention weights are recomputed from each attention module's inputs, captured with
forward hooks, with the module's own projections: the model code is not changed.
"""
import math

import cv2
import numpy as np
import torch

from . import tokenizer as tok

PANEL = 256                  # pixels per square panel
BAND = 56                    # text band under the panels


def _weights(module, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """Cross-attention weights (B, T, S) of a LatentAttention, averaged over heads."""
    B, T, _ = x.shape
    k, _ = module.keys_values(module.compress(context))
    q = module.query(x).view(B, T, module.heads, module.head_dim).transpose(1, 2)
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(module.head_dim), -1).mean(1)


class CrossAttentionRecorder:
    """Records the weights of every cross-attention call of the given modules."""

    def __init__(self, modules):
        self.weights = []
        self._hooks = [m.register_forward_hook(self._hook, with_kwargs=True) for m in modules]

    def _hook(self, module, args, kwargs, output):
        context = kwargs.get('context')
        if context is not None:
            self.weights.append(_weights(module, args[0], context).detach())

    def close(self):
        for h in self._hooks:
            h.remove()


def _heatmap(values: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """(side, side) weights over the patch grid -> a PANEL-sized overlay on the image."""
    side = int(round(math.sqrt(values.size)))
    grid = values.reshape(side, side)
    grid = (grid - grid.min()) / max(float(grid.max() - grid.min()), 1e-9)
    heat = cv2.resize(grid.astype(np.float32), (PANEL, PANEL), interpolation=cv2.INTER_CUBIC)
    colour = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)[..., ::-1]
    base = cv2.resize(rgb, (PANEL, PANEL), interpolation=cv2.INTER_NEAREST)
    return np.uint8(0.55 * base + 0.45 * colour)


def _panel_title(panel: np.ndarray, title: str) -> np.ndarray:
    out = panel.copy()
    cv2.rectangle(out, (0, 0), (PANEL, 20), (255, 255, 255), -1)
    cv2.putText(out, title, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def _image_panel(rgb: np.ndarray) -> np.ndarray:
    """The model's input, scaled up crisply, titled 'image'."""
    return _panel_title(cv2.resize(rgb, (PANEL, PANEL), interpolation=cv2.INTER_NEAREST),
                        'image')


def _figure(panels, lines) -> np.ndarray:
    top = np.concatenate(panels, axis=1)
    band = np.full((BAND, top.shape[1], 3), 255, np.uint8)
    for i, line in enumerate(lines[:2]):
        cv2.putText(band, line[:110], (6, 22 + 24 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([top, band], axis=0)


def explain_question(model, tokenizer, rgb64: np.ndarray, question: str):
    """(figure RGB, answer text, confidence, qformer map (N,), answer map (N,))."""
    pixels = torch.from_numpy(np.require(rgb64, requirements='W'))[None]   # frames are read-only
    qformer_cross = [layer.cross_attn for layer in model.qformer.layers]
    decoder_cross = [layer.attn.visual for layer in model.decoder.layers]
    with torch.inference_mode():
        recorder = CrossAttentionRecorder(qformer_cross)
        visual, patches = model.encode(pixels)
        recorder.close()
        query_to_patch = recorder.weights[-1][0]                        # (Q, N)
        prompt = torch.tensor([tokenizer.question_prompt(question)])
        recorder = CrossAttentionRecorder(decoder_cross)
        hidden, _ = model.decoder(prompt, visual)
        recorder.close()
        answer_to_query = torch.stack([w[0, -1] for w in recorder.weights]).mean(0)   # (Q,)
        tokens, probs = model.generate(visual, prompt, eos=tok.EOS)
    answer = tokenizer.decode(tokens[0].tolist())
    qformer_map = query_to_patch.mean(0).numpy()
    answer_map = (answer_to_query @ query_to_patch).numpy()
    confidence = float(probs[0].prod())
    figure = _figure([_image_panel(rgb64),
                      _panel_title(_heatmap(qformer_map, rgb64), 'Q-Former queries look at'),
                      _panel_title(_heatmap(answer_map, rgb64), 'the answer looks at')],
                     [f'Q: {question}', f'A: {answer}  (confidence {confidence:.2f})'])
    return figure, answer, confidence, qformer_map, answer_map


def explain_instruction(model, tokenizer, rgb64: np.ndarray, instruction: str):
    """(figure RGB, velocity (linear, angular), done probability, pointer map (N,))."""
    if not model.cfg.action_pointer:
        raise ValueError('this checkpoint has no pointer action head to show')
    pixels = torch.from_numpy(np.require(rgb64, requirements='W'))[None]   # frames are read-only
    ids = torch.tensor([[tok.ACTION] + tokenizer.encode(instruction)])
    with torch.inference_mode():
        visual, patches = model.encode(pixels)
        velocity, done, logits = model.act(visual, ids, patches=patches, with_pointer=True)
    p = logits[0].softmax(-1).numpy()
    v, w, d = float(velocity[0, 0]), float(velocity[0, 1]), float(torch.sigmoid(done[0]))
    figure = _figure([_image_panel(rgb64),
                      _panel_title(_heatmap(p[:-1], rgb64),
                                   f'pointer (not in view {p[-1]:.2f})')],
                     [f'instruction: {instruction}',
                      f'linear {v:+.2f}  angular {w:+.2f} (of max)  done {d:.2f}'])
    return figure, (v, w), d, p[:-1]


def main(args) -> int:
    from .engine import default_checkpoint
    from .model.checkpoint import load_checkpoint
    from .preprocess import ImageError, to_model_input
    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f'error: cannot read an image from {args.image}')
    model, tokenizer = load_checkpoint(args.checkpoint or default_checkpoint())
    try:
        rgb64 = to_model_input(image, model.cfg.image_size, bgr=True)
    except ImageError as e:
        raise SystemExit(f'error: {args.image}: {e}')
    if args.instruction:
        figure, velocity, done, _ = explain_instruction(model, tokenizer, rgb64,
                                                        args.instruction)
        print(f'{args.instruction!r}: linear {velocity[0]:+.2f}, angular {velocity[1]:+.2f}, '
              f'done {done:.2f}')
    else:
        figure, answer, confidence, _, _ = explain_question(model, tokenizer, rgb64,
                                                            args.question)
        print(f'{args.question!r}: {answer} ({confidence:.2f})')
    if not cv2.imwrite(args.out, figure[..., ::-1]):
        raise SystemExit(f'error: cannot write {args.out}')
    print(f'wrote {args.out} ({figure.shape[1]}x{figure.shape[0]})')
    return 0
