"""Behaviour cloning: simulator demonstrations as tensors, the model as a DAgger driver,
and the action loss (velocities, done, and where the pointer should look)."""
import numpy as np
import torch
import torch.nn.functional as F

from .. import tokenizer as tok


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


def action_batch(tokenizer, rng, n: int, driver=None, driven: int = 0,
                 image_size: int = 64, world: str = '2d', phase_mix=None) -> dict:
    """Simulator demonstrations as tensors: images, ids, lengths, velocity, done,
    target_uv, target_seen (see sim/demonstrations.py) in the `world` ('2d' or '3d')
    at `image_size`. `driven` of the n samples come from rollouts that `driver` drives
    (DAgger). `phase_mix`: see sample_batch."""
    from ..sim.demonstrations import sample_batch
    b = sample_batch(rng, n - driven, image_size=image_size, world=world, phase_mix=phase_mix)
    if driven:
        extra = sample_batch(rng, driven, image_size=image_size, driver=driver, world=world,
                             phase_mix=phase_mix)
        b = {k: (v + extra[k]) if isinstance(v, list) else np.concatenate([v, extra[k]])
             for k, v in b.items()}
    ids, lengths = action_prompts(tokenizer, b['instructions'])
    batch = {k: torch.from_numpy(b[k]) for k in ('images', 'velocity', 'done', 'target_uv',
                                                 'target_seen')}
    return {**batch, 'ids': ids, 'lengths': lengths}


def step_demonstrations(model, tokenizer, cfg, rng) -> dict:
    """One step's action_batch (cfg: a TrainConfig): `dagger_fraction` of it driven by
    the model itself."""
    n = cfg.action_samples_per_step
    return action_batch(tokenizer, rng, n, model_driver(model, tokenizer),
                        int(round(cfg.dagger_fraction * n)), model.cfg.image_size, cfg.world,
                        cfg.phase_mix)


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
        loss = loss + pointer_weight * _pointer_cross_entropy(model, logits, batch)
    return loss


def pointer_loss(model, visual, patches, batch: dict):
    """The pointer head alone (velocity and done untouched): cross-entropy between its
    pointer for batch's ids/lengths and target_uv / target_seen (the language stage's
    grounding rows, training/batches.py)."""
    if not model.cfg.action_pointer:
        raise ValueError('grounding rows train the pointer action head: '
                         'set model action_pointer: true')
    _, _, logits = model.act(visual, batch['ids'], batch['lengths'], patches=patches,
                             with_pointer=True)
    return _pointer_cross_entropy(model, logits, batch)


def _pointer_cross_entropy(model, logits, batch: dict):
    target = pointer_target(model.action.grid, batch['target_uv'], batch['target_seen'])
    return -(target * logits.log_softmax(-1)).sum(-1).mean()
