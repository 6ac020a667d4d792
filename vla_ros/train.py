"""Training: easy-VQA + procedural scenes -> a checkpoint, metrics.json and a curve PNG.

Each step takes a batch of *images* and every question about each of them: the image
is encoded once and its ~10 questions share the features (the easy-VQA images carry
about ten questions each). Procedural scenes add unlimited exactly-labelled images,
captions, paraphrased questions and multi-object scenes; camera-like augmentation
(lighting, noise, JPEG, letterboxing) makes frames from a real camera familiar.
"""
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from . import tokenizer as tok
from .data.camera import camera_frame, objects_after_letterbox
from .data.corpus import vocabulary_texts
from .data.easy_vqa import load_split
from .data.questions import caption, generate_qa
from .data.scenes import random_scene, render
from .evaluate import evaluate_split
from .model import ModelConfig, VLAModel
from .model.checkpoint import load_checkpoint, save_checkpoint
from .preprocess import to_model_input


@dataclass
class TrainConfig:
    seed: int = 0
    steps: int = 1500
    easy_vqa_images_per_step: int = 48
    scene_images_per_step: int = 24
    max_scene_objects: int = 3
    paraphrases_per_image: int = 2       # extra generated questions per easy-VQA image
    where_per_image: int = 1             # extra "where is the ..." question per easy-VQA image
    scene_questions_per_image: int = 8
    # Behaviour-cloning samples from the simulator's expert per step. Off by default: mixed
    # into the first steps they held VQA at the question-only floor (67% after 750 steps),
    # so the action head is trained in later stages (config/train_action*.yaml).
    action_samples_per_step: int = 0
    action_loss_weight: float = 1.0
    pointer_loss_weight: float = 0.5     # pointer head: where the simulator drew the target
    # DAgger: this share of the action samples comes from rollouts the model being trained
    # drives itself (labelled by the expert), so it learns to recover from its own mistakes.
    dagger_fraction: float = 0.0
    # Train only the action head, on frozen features: the language side cannot change
    # (text batches are skipped, BatchNorm statistics stay), and a step costs a fraction.
    frozen_backbone: bool = False
    camera_augment_prob: float = 0.3
    unknown_word_prob: float = 0.1       # insert a made-up word into a generated question
    lr: float = 2e-3
    weight_decay: float = 0.02
    warmup_steps: int = 150
    val_images: int = 300                # easy-VQA *train* images held out for monitoring
    eval_every: int = 250
    threads: int = 2
    max_minutes: Optional[float] = None  # stop early (e.g. for a quick experiment)
    out: str = 'models/vla_tiny'
    init_from: Optional[str] = None      # start from this checkpoint (a second stage)
    model: dict = field(default_factory=dict)   # ModelConfig overrides

    @classmethod
    def from_yaml(cls, path: str) -> 'TrainConfig':
        with open(path) as f:
            data = yaml.safe_load(f) or {}
        return cls(**data)


def encode_example(tokenizer, prompt_token: int, prompt: str, target: str):
    """-> (input ids, labels): labels are -100 on the prompt, the target + <eos> after it."""
    tail = [tok.ANSWER] if prompt_token == tok.QUESTION else []
    p = [prompt_token] + tokenizer.encode(prompt) + tail
    t = tokenizer.encode(target) + [tok.EOS]
    full = p + t
    labels = [-100] * (len(p) - 1) + t
    return full[:-1], labels


class BatchMaker:
    """Assembles (images, token ids, labels, image index per sequence) for one step."""

    def __init__(self, cfg: TrainConfig, tokenizer, split, train_rows, rng):
        self.cfg, self.tokenizer, self.split, self.rng = cfg, tokenizer, split, rng
        self.train_rows = train_rows
        self.questions_by_image = [[] for _ in range(len(split.images))]
        for q, a, i in split.questions:
            self.questions_by_image[i].append((q, a))
        self.order, self.cursor = [], 0

    def _next_easy_vqa(self):
        if self.cursor >= len(self.order):
            self.order, self.cursor = self.rng.permutation(self.train_rows), 0
        i = self.order[self.cursor]
        self.cursor += 1
        return i

    def _questions(self, objects, n, families=None):
        """n generated questions; a few get a made-up word the model must learn to ignore."""
        out = []
        for q, a, _family in generate_qa(objects, self.rng, n, families=families):
            if self.rng.random() < self.cfg.unknown_word_prob:
                words = q.split(' ')
                junk = ''.join(self.rng.choice(list('bcdfghklmnprstvz'), self.rng.integers(3, 8)))
                words.insert(int(self.rng.integers(len(words) + 1)), junk + 'o')
                q = ' '.join(words)
            out.append((tok.QUESTION, q, a))
        return out

    def _augment(self, img, objects):
        """Sometimes turn the image into a small camera-like frame, letterboxed back to a
        square; the objects move and shrink with it, so captions and positions stay true."""
        if self.rng.random() >= self.cfg.camera_augment_prob:
            return img, objects
        width = int(self.rng.integers(64, 112))
        left = int(self.rng.integers(0, width - 64 + 1))
        frame = camera_frame(img, self.rng, width=width, height=64, left=left)
        return to_model_input(frame), objects_after_letterbox(objects, width, 64, left)

    def make(self):
        images, seqs = [], []
        for _ in range(self.cfg.easy_vqa_images_per_step):
            i = self._next_easy_vqa()
            img, objects = self._augment(self.split.images[i], self.split.objects[i])
            pairs = [(tok.QUESTION, q, a) for q, a in self.questions_by_image[i]]
            pairs += self._questions(objects, self.cfg.paraphrases_per_image)
            # position is learnt late from captions alone: ask where the shape is, too
            pairs += self._questions(objects, self.cfg.where_per_image, families=['where'])
            pairs.append((tok.CAPTION, '', caption(objects)))
            seqs += [(len(images), p) for p in pairs]
            images.append(img)
        for k in range(self.cfg.scene_images_per_step):
            many = k % 2 == 1   # half easy-VQA-like single shapes, half richer scenes
            scene = random_scene(self.rng, self.cfg.max_scene_objects if many else 1,
                                 varied_background=many)
            img, objects = self._augment(render(scene), scene.objects)
            pairs = self._questions(objects, self.cfg.scene_questions_per_image)
            pairs.append((tok.CAPTION, '', caption(objects)))
            seqs += [(len(images), p) for p in pairs]
            images.append(img)
        encoded = [(i, encode_example(self.tokenizer, t, q, a)) for i, (t, q, a) in seqs]
        # two length buckets (questions, long captions) so short rows are not padded to 30
        short = [e for e in encoded if len(e[1][0]) <= 20]
        long = [e for e in encoded if len(e[1][0]) > 20]
        groups = [self._pad(g) for g in (short, long) if g]
        return torch.from_numpy(np.stack(images)), groups

    @staticmethod
    def _pad(encoded):
        """[(image index, (ids, labels))] -> (ids, labels, image index) tensors."""
        length = max(len(x) for _, (x, _) in encoded)
        ids = torch.full((len(encoded), length), tok.PAD, dtype=torch.long)
        labels = torch.full((len(encoded), length), -100, dtype=torch.long)
        for row, (_, (x, y)) in enumerate(encoded):
            ids[row, :len(x)] = torch.tensor(x)
            labels[row, :len(y)] = torch.tensor(y)
        return ids, labels, torch.tensor([i for i, _ in encoded])


def action_prompts(tokenizer, instructions):
    """`<act> instruction` token ids, right-padded: (ids (B, T), lengths (B,))."""
    prompts = [[tok.ACTION] + tokenizer.encode(t) for t in instructions]
    lengths = torch.tensor([len(p) for p in prompts])
    ids = torch.full((len(prompts), int(lengths.max())), tok.PAD, dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, :len(p)] = torch.tensor(p)
    return ids, lengths


def model_driver(model, tokenizer):
    """The model as a batched policy for DAgger rollouts:
    (frames, instructions) -> [(linear, angular, done)]."""
    def drive(frames, instructions):
        modes = [(m, m.training) for m in model.modules()]   # restored exactly afterwards
        model.eval()
        ids, lengths = action_prompts(tokenizer, instructions)
        with torch.no_grad():
            visual, patches = model.encode(torch.from_numpy(np.stack(frames)))
            velocity, done = model.act(visual, ids, lengths, patches=patches)
        for m, training in modes:
            m.training = training
        return [(float(v[0]), float(v[1]), float(d))
                for v, d in zip(velocity, torch.sigmoid(done))]
    return drive


def action_batch(tokenizer, rng, n: int, driver=None, driven: int = 0) -> dict:
    """Simulator demonstrations as tensors: images, ids, lengths, velocity, done,
    target_uv, target_seen (see sim/demonstrations.py). `driven` of the n samples come
    from rollouts that `driver` drives (DAgger)."""
    from .sim.demonstrations import sample_batch
    b = sample_batch(rng, n - driven)
    if driven:
        extra = sample_batch(rng, driven, driver=driver)
        b = {k: (v + extra[k]) if isinstance(v, list) else np.concatenate([v, extra[k]])
             for k, v in b.items()}
    ids, lengths = action_prompts(tokenizer, b['instructions'])
    batch = {k: torch.from_numpy(b[k]) for k in ('images', 'velocity', 'done', 'target_uv',
                                                 'target_seen')}
    return {**batch, 'ids': ids, 'lengths': lengths}


def step_demonstrations(model, tokenizer, cfg: 'TrainConfig', rng) -> dict:
    """One step's action_batch: `dagger_fraction` of it driven by the model itself."""
    n = cfg.action_samples_per_step
    return action_batch(tokenizer, rng, n, model_driver(model, tokenizer),
                        int(round(cfg.dagger_fraction * n)))


POINTER_SIGMA = 0.09   # target spread over the patch grid, as a fraction of the image


def pointer_target(grid: torch.Tensor, uv: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """(B, N + 1) distribution the pointer should match: a Gaussian around the target's
    centre over the patch centres `grid` (N, 2), or all mass on "not in view"."""
    d2 = ((grid[None] - uv[:, None]) ** 2).sum(-1)                      # (B, N)
    near = torch.softmax(-d2 / (2 * POINTER_SIGMA ** 2), dim=-1) * seen[:, None]
    return torch.cat([near, (1 - seen)[:, None]], dim=1)


def action_loss(model, visual, patches, batch: dict, pointer_weight: float = 0.0):
    """Behaviour cloning: MSE on the (tanh) velocities + BCE on the done logit, plus (for
    the pointer head) cross-entropy between its pointer and where the target was drawn."""
    ids, lengths = batch['ids'], batch['lengths']
    supervise_pointer = bool(pointer_weight) and model.cfg.action_pointer
    predicted, done_logit, *pointer = model.act(visual, ids, lengths, patches=patches,
                                                with_pointer=supervise_pointer)
    loss = (F.mse_loss(predicted, batch['velocity'])
            + F.binary_cross_entropy_with_logits(done_logit, batch['done']))
    if supervise_pointer:
        logits, = pointer
        target = pointer_target(model.action.grid, batch['target_uv'], batch['target_seen'])
        loss = loss + pointer_weight * -(target * logits.log_softmax(-1)).sum(-1).mean()
    return loss


def init_model(cfg: 'TrainConfig'):
    """(model, tokenizer): new, or from `cfg.init_from` with `cfg.model` overrides applied.

    Overriding a loaded checkpoint's config (e.g. `action_pointer: true`, `action_map:
    true`) keeps every weight that still fits: all of the backbone, and the action head's
    tensors whose shape did not change (none of them when the kind of head changes).
    """
    if not cfg.init_from:
        tokenizer = tok.Tokenizer.from_corpus(vocabulary_texts())
        return VLAModel(ModelConfig(**{**cfg.model, 'vocab_size': len(tokenizer)})), tokenizer
    model, tokenizer = load_checkpoint(cfg.init_from)
    if cfg.model:
        new = VLAModel(replace(model.cfg, **cfg.model))
        same_head = new.cfg.action_pointer == model.cfg.action_pointer
        fits = new.state_dict()
        kept = {k: v for k, v in model.state_dict().items()
                if k in fits and fits[k].shape == v.shape
                and (same_head or not k.startswith('action.'))}
        changed = [k for k in set(fits) ^ set(kept) if not k.startswith('action.')]
        if changed:
            raise ValueError(f'model overrides {cfg.model} change more than the action head: '
                             f'{sorted(changed)[:5]}')
        new.load_state_dict(kept, strict=False)
        model = new
    return model, tokenizer


def joint_step_loss(model, tokenizer, cfg: TrainConfig, rng, batches: BatchMaker,
                    history: dict) -> torch.Tensor:
    """Text loss on one VQA/caption batch, plus the action loss when the step has actions."""
    images, groups = batches.make()
    n_act = cfg.action_samples_per_step
    if n_act:
        act = step_demonstrations(model, tokenizer, cfg, rng)
        images = torch.cat([images, act['images']])
    visual, patches = model.encode(images)                   # (B_images + n_act, Q, dim)
    if n_act:
        visual, act_visual = visual[:-n_act], visual[-n_act:]
    loss_sum, count = 0.0, 0
    for ids, labels, index in groups:
        logits = model(visual[index], ids)                    # (N_seq, T, vocab)
        loss_sum = loss_sum + F.cross_entropy(logits.flatten(0, 1), labels.flatten(),
                                              ignore_index=-100, reduction='sum')
        count += int((labels != -100).sum())
    loss = loss_sum / count
    history['text_loss'].append(loss.item())
    if n_act:
        a_loss = action_loss(model, act_visual, patches[-n_act:], act, cfg.pointer_loss_weight)
        history['action_loss'].append(a_loss.item())
        loss = loss + cfg.action_loss_weight * a_loss
    return loss


def action_step_loss(model, tokenizer, cfg: TrainConfig, rng, history: dict) -> torch.Tensor:
    """The action loss alone, on features of the frozen backbone (`frozen_backbone`)."""
    act = step_demonstrations(model, tokenizer, cfg, rng)
    with torch.no_grad():
        visual, patches = model.encode(act['images'])
    loss = action_loss(model, visual, patches, act, cfg.pointer_loss_weight)
    history['action_loss'].append(loss.item())
    return cfg.action_loss_weight * loss


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Train from scratch; write the checkpoint, metrics.json and training_curve.png."""
    from tqdm import tqdm

    if cfg.frozen_backbone and cfg.action_samples_per_step <= 0:
        raise ValueError('frozen_backbone trains only the action head: '
                         'set action_samples_per_step > 0')
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    model, tokenizer = init_model(cfg)
    split = load_split('train')
    rows = rng.permutation(len(split.images))
    val_rows, train_rows = np.sort(rows[:cfg.val_images]), rows[cfg.val_images:]
    batches = BatchMaker(cfg, tokenizer, split, train_rows, rng)
    if cfg.frozen_backbone:
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith('action.'))
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trained if p.ndim >= 2 and 'pos' not in n]
    no_decay = [p for n, p in trained if p.ndim < 2 or 'pos' in n]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': cfg.weight_decay},
                             {'params': no_decay, 'weight_decay': 0.0}], lr=cfg.lr)
    history = {'loss': [], 'text_loss': [], 'action_loss': [], 'val_step': [], 'val_accuracy': []}
    start = time.time()
    bar = tqdm(range(cfg.steps), disable=not progress, desc='train', unit='step')
    step = 0
    for step in bar:
        for group in opt.param_groups:
            group['lr'] = lr_at(step, cfg)
        if cfg.frozen_backbone:
            model.eval()
            model.action.train()
            loss = action_step_loss(model, tokenizer, cfg, rng, history)
        else:
            model.train()
            loss = joint_step_loss(model, tokenizer, cfg, rng, batches, history)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history['loss'].append(loss.item())
        bar.set_postfix(loss=f'{loss.item():.4f}')
        minutes = (time.time() - start) / 60
        last = step == cfg.steps - 1 or (cfg.max_minutes is not None and minutes > cfg.max_minutes)
        if (step + 1) % cfg.eval_every == 0 or last:
            acc = evaluate_split(model, tokenizer, split, rows=val_rows)['accuracy']
            history['val_step'].append(step)
            history['val_accuracy'].append(acc)
            bar.write(f'step {step + 1}: loss {loss.item():.4f}  val accuracy {acc:.4f}  '
                      f'({minutes:.1f} min)')
        if last:
            break
    seconds = time.time() - start
    model.eval()
    save_checkpoint(model, tokenizer, cfg.out)
    metrics = {'train_config': asdict(cfg), 'steps_done': step + 1, 'train_seconds': seconds,
               'parameters': sum(p.numel() for p in model.parameters()),
               'val_accuracy': history['val_accuracy'][-1], 'torch': torch.__version__,
               'threads': cfg.threads, 'history': history}
    with open(os.path.join(cfg.out, 'metrics.json'), 'w') as f:
        f.write(metrics_json(metrics))
    plot_curves(history, os.path.join(cfg.out, 'training_curve.png'))
    return metrics


def metrics_json(metrics: dict) -> str:
    """Indented JSON, but each per-step history list on one line (it has 1000s of entries)."""
    head = json.dumps({k: v for k, v in metrics.items() if k != 'history'}, indent=1)
    rows = ',\n'.join(f'  "{k}": {json.dumps([round(x, 5) for x in v])}'
                      for k, v in metrics['history'].items())
    return head[:-2] + ',\n "history": {\n' + rows + '\n }\n}\n'


def plot_curves(history: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    for name in ('text_loss', 'action_loss'):
        loss = np.array(history[name])
        if len(loss) == 0:
            continue
        k = max(1, len(loss) // 100)
        smooth = np.convolve(loss, np.ones(k) / k, mode='valid')
        ax[0].plot(np.arange(len(smooth)) + k - 1, smooth, label=name.replace('_', ' '))
    ax[0].set(title='training loss', xlabel='step', yscale='log')
    ax[0].legend()
    ax[1].plot(np.array(history['val_step']) + 1, history['val_accuracy'], marker='o')
    ax[1].set(title='held-out train images: VQA accuracy', xlabel='step', ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
