"""Checkpoints: a directory with config.json, model.safetensors and tokenizer.json.

Weights are safetensors only (never pickle). Every failure names the file and says
what is wrong with it. A model on a frozen pretrained vision tower (config
vision_encoder) stores everything but the tower, which loads from its own directory.
"""
import os

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError  # noqa: F401 (re-exported: callers import it here)
from ..tokenizer import Tokenizer
from .files import CONFIG, read_config_and_tokenizer, TOKENIZER, WEIGHTS
from .vla_model import VLAModel


TOWER = 'vision.tower.'     # a pretrained vision tower's weights: kept in its own directory


def trained_state(model: VLAModel) -> dict:
    """The weights a checkpoint stores (all but a frozen pretrained tower's)."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith(TOWER)}


def save_checkpoint(model: VLAModel, tokenizer: Tokenizer, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, CONFIG), 'w') as f:
        f.write(model.cfg.to_json())
    with open(os.path.join(directory, TOKENIZER), 'w') as f:
        f.write(tokenizer.to_json())
    state = {k: v.detach().contiguous() for k, v in trained_state(model).items()}
    save_file(state, os.path.join(directory, WEIGHTS))


def load_checkpoint(directory: str):
    """Return (model in eval mode, tokenizer). Raises CheckpointError naming the problem."""
    cfg, tokenizer = read_config_and_tokenizer(directory)
    path = os.path.join(directory, WEIGHTS)
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: file not found')
    try:
        state = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f'{path}: corrupt or not a safetensors file ({e})') from e
    model = VLAModel(cfg)
    expected = trained_state(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        details = '; '.join(f'{name}: {", ".join(keys[:3])}{" ..." if len(keys) > 3 else ""}'
                            for name, keys in (('missing', missing), ('unexpected', unexpected),
                                               ('wrong shape', wrong)) if keys)
        raise CheckpointError(f'{path}: weights do not match {CONFIG} ({details})')
    model.load_state_dict(state, strict=not cfg.vision_encoder)   # the tower is loaded
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f'{path}: non-finite values in {", ".join(bad[:3])}')
    return model.eval(), tokenizer
