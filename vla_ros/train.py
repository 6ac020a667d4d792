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
from .data.corpus import vocabulary_texts
from .data.easy_vqa import load_split
from .evaluate import evaluate_split
from .model import ModelConfig, VLAModel
from .model.checkpoint import load_checkpoint, save_checkpoint
from .training.actions import (action_loss, pointer_loss, pointer_target,  # noqa: F401
                               step_demonstrations)
from .training.batches import BatchMaker


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
    # Robot-camera frames of the 3D arena (sim3d/training_frames.py), each with its
    # questions and caption.
    scene3d_images_per_step: int = 0
    scene3d_questions_per_image: int = 8
    # Render this many 3D frames once and draw from them (fresh questions every draw);
    # 0 renders every frame anew.
    scene3d_pool: int = 0
    # Busier training views: each 3D frame's viewpoint is the one with the most objects in
    # view of this many drawn (sim3d/training_frames.py, viewpoint); 1 = as evaluated.
    scene3d_busy_tries: int = 1
    val_scene3d_images: int = 0          # 3D frames (validation seeds) scored at each eval
    # Weight of the patch-label loss on the 3D frames: linear probes on the encoder's patch
    # features predict the colour and shape the segmentation shows in each patch
    # (training/patch_labels.py); 0 = off.
    patch_label_weight: float = 0.0
    # Grounding rows per 3D frame: "go to the <colour> <shape>" with the pointer action
    # head trained on where the camera sees that object, or on "not in view" for one it
    # does not (training/batches.py, grounding_rows); the pointer then learns to find
    # named objects where the frames are richest, not only from the action stages'
    # demonstrations. Needs model action_pointer. 0 = off.
    grounding_per_image: int = 0
    grounding_loss_weight: float = 0.5
    world: str = '2d'                    # the demonstrations' simulator: '2d' or '3d'
    # Behaviour-cloning samples from the simulator's expert per step. Off by default: mixed
    # into the first steps they held VQA at the question-only floor (67% after 750 steps),
    # so the action head is trained in later stages (config/train_action*.yaml).
    action_samples_per_step: int = 0
    action_loss_weight: float = 1.0
    pointer_loss_weight: float = 0.5     # pointer head: where the simulator drew the target
    # DAgger: this share of the action samples comes from rollouts the model being trained
    # drives itself (labelled by the expert), so it learns to recover from its own mistakes.
    dagger_fraction: float = 0.0
    # The demonstrations' phases per instruction kind, e.g. {goto: {search: 0.1, far: 0.3,
    # near: 0.2, done: 0.2, decoy: 0.1, lookalike: 0.1}}; None: sim/demonstrations.py's
    # PHASE_MIX. 'lookalike' (facing a look-alike, the target out of view) is only here.
    phase_mix: Optional[dict] = None
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


def init_model(cfg: 'TrainConfig'):
    """(model, tokenizer): new, or from `cfg.init_from` with `cfg.model` overrides applied.

    Overriding a loaded checkpoint's config (e.g. `action_pointer: true`, `action_map:
    true`) keeps every weight that still fits: all of the backbone, and the action head's
    tensors whose shape did not change (none of them when the kind of head changes).
    """
    if not cfg.init_from:
        tokenizer = tok.Tokenizer.from_corpus(vocabulary_texts())
        fields = {**cfg.model, 'vocab_size': len(tokenizer)}
        if fields.get('vision_encoder'):     # a frozen pretrained tower sets the input size
            from .model.pretrained_vision import describe
            tower = describe(fields['vision_encoder'])
            fields.update(vision_encoder=os.path.abspath(fields['vision_encoder']),
                          image_size=tower['image_size'],
                          vision_encoder_patch=tower['patch_size'],
                          vision_encoder_width=tower['width'])
        return VLAModel(ModelConfig(**fields)), tokenizer
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
                    history: dict, probe=None) -> torch.Tensor:
    """Text loss on one VQA/caption batch, plus the action loss when the step has actions
    and the patch-label loss when there is a probe."""
    images, groups, pixels, grounding = batches.make()
    n_act = cfg.action_samples_per_step
    if n_act:
        act = step_demonstrations(model, tokenizer, cfg, rng)
        images = torch.cat([images, act['images']])
    visual, patches = model.encode(images)                   # (B_images + n_act, Q, dim)
    if n_act:
        visual, act_visual = visual[:-n_act], visual[-n_act:]
    loss_sum, count = 0.0, 0
    for ids, labels, index in groups:
        scored = labels != -100                               # the answer tokens
        logits = model(visual, ids, index, where=scored)      # (N_scored, vocab)
        loss_sum = loss_sum + F.cross_entropy(logits, labels[scored], reduction='sum')
        count += int(scored.sum())
    loss = loss_sum / count
    history['text_loss'].append(loss.item())
    if n_act:
        a_loss = action_loss(model, act_visual, patches[-n_act:], act, cfg.pointer_loss_weight)
        history['action_loss'].append(a_loss.item())
        loss = loss + cfg.action_loss_weight * a_loss
    if grounding is not None:
        index = grounding['index']
        g_loss = pointer_loss(model, visual[index], patches[index], grounding)
        history['grounding_loss'].append(g_loss.item())
        loss = loss + cfg.grounding_loss_weight * g_loss
    if probe is not None and pixels is not None:
        index, classes = pixels
        p_loss = probe.loss(patches[index], classes, model.cfg.patch_pixels)
        history['patch_loss'].append(p_loss.item())
        loss = loss + cfg.patch_label_weight * p_loss
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
    if cfg.phase_mix is not None:
        from .sim.demonstrations import check_phase_mix
        check_phase_mix(cfg.phase_mix)   # a typo fails now, not at the first action step
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    model, tokenizer = init_model(cfg)
    split = load_split('train')
    rows = rng.permutation(len(split.images))
    val_rows, train_rows = np.sort(rows[:cfg.val_images]), rows[cfg.val_images:]
    batches = BatchMaker(cfg, tokenizer, split, train_rows, rng, model.cfg.image_size)
    val3d = None
    if cfg.val_scene3d_images:
        from .evaluate_scenes3d import eval_frames, evaluate_scenes3d, VALIDATION_SEED_START
        val3d = eval_frames(cfg.val_scene3d_images, VALIDATION_SEED_START,
                            image_size=model.cfg.image_size)
    if cfg.frozen_backbone:
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith('action.'))
    probe = None     # trained beside the model, not saved (training/patch_labels.py)
    if cfg.patch_label_weight > 0 and not cfg.frozen_backbone:
        from .training.patch_labels import PatchProbe
        probe = PatchProbe(model.cfg.dim)
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if probe is not None:
        trained += [(f'probe.{n}', p) for n, p in probe.named_parameters()]
    decay = [p for n, p in trained if p.ndim >= 2 and 'pos' not in n]
    no_decay = [p for n, p in trained if p.ndim < 2 or 'pos' in n]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': cfg.weight_decay},
                             {'params': no_decay, 'weight_decay': 0.0}], lr=cfg.lr)
    history = {'loss': [], 'text_loss': [], 'action_loss': [], 'patch_loss': [],
               'grounding_loss': [],
               'val_step': [], 'val_accuracy': [],
               'val3d_vqa': [], 'val3d_captions': []}
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
            loss = joint_step_loss(model, tokenizer, cfg, rng, batches, history, probe)
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
            line = f'step {step + 1}: loss {loss.item():.4f}  val accuracy {acc:.4f}'
            if val3d:
                r = evaluate_scenes3d(model, tokenizer, val3d)
                history['val3d_vqa'].append(r['vqa']['accuracy'])
                history['val3d_captions'].append(r['captions']['objects'])
                line += (f"  3D vqa {r['vqa']['accuracy']:.4f} captions "
                         f"{r['captions']['objects']:.4f}  ("
                         + ' '.join(f"{t} {v['accuracy']:.3f}"
                                    for t, v in r['vqa']['per_type'].items()) + ')')
            bar.write(f'{line}  ({minutes:.1f} min)')
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
    for name in ('text_loss', 'action_loss', 'patch_loss', 'grounding_loss'):
        loss = np.array(history[name])
        if len(loss) == 0:
            continue
        k = max(1, len(loss) // 100)
        smooth = np.convolve(loss, np.ones(k) / k, mode='valid')
        ax[0].plot(np.arange(len(smooth)) + k - 1, smooth, label=name.replace('_', ' '))
    ax[0].set(title='training loss', xlabel='step', yscale='log')
    ax[0].legend()
    steps = np.array(history['val_step']) + 1
    ax[1].plot(steps, history['val_accuracy'], marker='o', label='easy-VQA (held-out train)')
    if history.get('val3d_vqa'):
        ax[1].plot(steps, history['val3d_vqa'], marker='o', label='3D arena VQA (validation)')
        ax[1].plot(steps, history['val3d_captions'], marker='o', label='3D arena captions')
        ax[1].legend()
    ax[1].set(title='validation accuracy', xlabel='step', ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
