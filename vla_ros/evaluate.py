"""Evaluation: batched greedy decoding of answers and captions, accuracy per question type."""
import dataclasses
from collections import defaultdict

import numpy as np
import torch

from . import tokenizer as tok
from .data.questions import generate_qa, question_type
from .preprocess import to_model_input


@torch.no_grad()
def encode_images(model, images, batch: int = 256) -> torch.Tensor:
    """(N, S, S, 3) uint8 RGB (or a list of such frames of any size) -> visual tokens
    (N, Q, dim); frames not at the model's input size are letterboxed to it."""
    size = model.cfg.image_size
    out = [torch.zeros(0, model.cfg.visual_tokens, model.cfg.dim)]
    for i in range(0, len(images), batch):
        chunk = np.stack([to_model_input(img, size) for img in images[i:i + batch]])
        out.append(model.encode_image(torch.from_numpy(chunk)))
    return torch.cat(out)


@torch.no_grad()
def generate_batched(model, tokenizer, visual: torch.Tensor, prompts, batch: int = 512):
    """prompts: [(token ids, row of visual)] -> [(text, confidence)] in the same order.

    Prompts are grouped by length so every batch decodes equal-length prompts.
    """
    results = [None] * len(prompts)
    by_length = defaultdict(list)
    for n, (ids, _row) in enumerate(prompts):
        by_length[len(ids)].append(n)
    for members in by_length.values():
        for s in range(0, len(members), batch):
            chunk = members[s:s + batch]
            ids = torch.tensor([prompts[n][0] for n in chunk])
            rows = torch.tensor([prompts[n][1] for n in chunk])
            tokens, probs = model.generate(visual[rows], ids, eos=tok.EOS)
            for n, t, p in zip(chunk, tokens.tolist(), probs):
                results[n] = (tokenizer.decode(t), float(p.prod()))
    return results


def accuracy_report(questions, predictions) -> dict:
    """questions [(question, answer, _)], predictions [text] -> accuracy, n, per type."""
    per_type = defaultdict(lambda: [0, 0])
    correct = 0
    for (q, a, _), pred in zip(questions, predictions):
        ok = pred.strip() == a.strip().lower()
        correct += ok
        t = per_type[question_type(q)]
        t[0] += ok
        t[1] += 1
    return {'accuracy': correct / max(1, len(questions)), 'n': len(questions),
            'correct': correct,
            'per_type': {k: {'accuracy': c / n, 'n': n} for k, (c, n) in sorted(per_type.items())}}


def camera_images(images, rng, size: int) -> np.ndarray:
    """Each image as a 640x480 JPEG-like camera frame (data/camera.py) letterboxed to the
    model's input `size`: what `vla-ros eval --camera` scores."""
    from .data.camera import camera_frame
    return np.stack([to_model_input(camera_frame(img, rng), size) for img in images])


def paraphrased(split, rng):
    """A copy of `split` (loaded with labels) asking 3 held-out paraphrased questions about
    each of its images instead of its own: what `vla-ros eval --paraphrases` scores."""
    rows = sorted({i for _q, _a, i in split.questions})
    return dataclasses.replace(split, questions=[
        (q, a, i) for i in rows
        for q, a, _f in generate_qa(split.objects[i], rng, 3, held_out=True)])


def evaluate_split(model, tokenizer, split, rows=None, images=None) -> dict:
    """VQA accuracy on a VQASplit (optionally only the questions of image `rows`).

    `images` replaces split.images (e.g. camera-like versions of the same images).
    """
    was_training = model.training
    model.eval()
    keep = None if rows is None else set(int(r) for r in rows)
    questions = [x for x in split.questions if keep is None or x[2] in keep]
    images = split.images if images is None else images
    used = sorted({i for _q, _a, i in questions})          # encode only the asked images
    row = {i: n for n, i in enumerate(used)}
    visual = encode_images(model, [images[i] for i in used])
    prompts = [(tokenizer.question_prompt(q), row[i]) for q, _a, i in questions]
    predictions = [text for text, _c in generate_batched(model, tokenizer, visual, prompts)]
    model.train(was_training)
    report = accuracy_report(questions, predictions)
    report['errors'] = [{'question': q, 'answer': a, 'predicted': p, 'image': int(i)}
                        for (q, a, i), p in zip(questions, predictions) if p != a][:50]
    return report


def evaluate_captions(model, tokenizer, split, images=None) -> dict:
    """Caption accuracy against the captions written from each image's labels.

    `exact`: the whole sentence matches; `objects`: every "<colour> <shape>" is named.
    """
    from .data.questions import caption
    was_training = model.training
    model.eval()
    visual = encode_images(model, split.images if images is None else images)
    prompts = [([tok.CAPTION], i) for i in range(len(split.images))]
    predicted = [text for text, _c in generate_batched(model, tokenizer, visual, prompts)]
    model.train(was_training)
    expected = [caption(objs) for objs in split.objects]
    objects_ok = [all(f'{o.color} {o.shape}' in p for o in objs)
                  for p, objs in zip(predicted, split.objects)]
    return {'exact': sum(p == e for p, e in zip(predicted, expected)) / len(expected),
            'objects': sum(objects_ok) / len(expected), 'n': len(expected),
            'examples': [{'expected': e, 'predicted': p}
                         for p, e in zip(predicted, expected) if p != e][:10]}
