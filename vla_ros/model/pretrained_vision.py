"""A frozen pretrained vision tower (SigLIP or CLIP, from a local Hugging Face directory)
in place of the bundled vision encoder: BLIP-2's recipe (seed 002), where only the
Q-Former, the decoder and the action head learn.

`vla-ros train --vision-encoder DIR` (train.py) sets config `vision_encoder: DIR`, and the
tower's input size, patch size and width, read from DIR/config.json by `describe`. The
tower's weights stay in DIR: checkpoints store only what was trained (checkpoint.py
leaves `vision.tower.*` out), so a checkpoint carries the path and loads the tower from
it; move both together. Nothing is downloaded (local_files_only, safetensors only).

Frames arrive as uint8 squares of the tower's size (preprocess.to_model_input letterboxes
them, as for the bundled model) and are normalised with the tower's own mean and std
(DIR/preprocessor_config.json). The tower runs in eval mode without gradients; a linear
projection and a LayerNorm bring its patch features (CLIP's class token dropped) to the
model's width, where the Q-Former reads them.
"""
import json
import os

import torch
from torch import nn

from ..errors import CheckpointError

TOWERS = {'siglip': 'SiglipVisionModel', 'siglip_vision_model': 'SiglipVisionModel',
          'clip': 'CLIPVisionModel', 'clip_vision_model': 'CLIPVisionModel'}


def _json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f'{path}: unreadable ({e})') from e


def describe(directory: str) -> dict:
    """{'image_size', 'patch_size', 'width', 'model_type'} of a SigLIP / CLIP directory
    (a whole image-text model or its vision half). Raises CheckpointError naming the file."""
    path = os.path.join(directory, 'config.json')
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: file not found (--vision-encoder wants a local '
                              'SigLIP or CLIP model directory)')
    config = _json(path)
    model_type = config.get('model_type')
    if model_type not in TOWERS:
        raise CheckpointError(f'{path}: model_type {model_type!r} is not a supported vision '
                              f"tower ({', '.join(sorted(TOWERS))})")
    vision = config.get('vision_config', config)
    try:
        return {'image_size': int(vision['image_size']), 'patch_size': int(vision['patch_size']),
                'width': int(vision['hidden_size']), 'model_type': model_type}
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f'{path}: no vision image_size / patch_size / hidden_size '
                              f'({e})') from e


def _normalisation(directory: str):
    path = os.path.join(directory, 'preprocessor_config.json')
    config = _json(path) if os.path.isfile(path) else {}
    mean = config.get('image_mean', [0.5, 0.5, 0.5])
    std = config.get('image_std', [0.5, 0.5, 0.5])
    return torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)


class PretrainedVisionEncoder(nn.Module):
    """uint8 RGB images (B, S, S, 3) -> patch features (B, num_patches, dim), through the
    frozen tower in cfg.vision_encoder."""

    def __init__(self, cfg):
        super().__init__()
        import transformers
        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        directory = cfg.vision_encoder
        info = describe(directory)
        if (info['image_size'], info['patch_size'], info['width']) != (
                cfg.image_size, cfg.vision_encoder_patch, cfg.vision_encoder_width):
            raise CheckpointError(
                f"{os.path.join(directory, 'config.json')}: a {info['image_size']} px tower "
                f"with {info['patch_size']} px patches and width {info['width']}, but the "
                f'checkpoint was trained on {cfg.image_size} / {cfg.vision_encoder_patch} / '
                f'{cfg.vision_encoder_width}')
        tower_class = getattr(transformers, TOWERS[info['model_type']])
        try:
            self.tower = tower_class.from_pretrained(directory, local_files_only=True,
                                                     use_safetensors=True,
                                                     attn_implementation='eager')
        except (OSError, ValueError) as e:
            raise CheckpointError(f'{directory}: transformers cannot load its vision tower '
                                  f'({str(e).splitlines()[0]})') from e
        self.tower.requires_grad_(False)
        self.tower.eval()
        self.skip_class_token = info['model_type'].startswith('clip')
        mean, std = _normalisation(directory)
        self.register_buffer('mean', mean, persistent=False)
        self.register_buffer('std', std, persistent=False)
        self.project = nn.Linear(info['width'], cfg.dim)
        self.norm = nn.LayerNorm(cfg.dim)

    def train(self, mode: bool = True):
        super().train(mode)
        self.tower.eval()          # frozen: no dropout, whatever the rest of the model does
        return self

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).float() / 255.0
        x = (x - self.mean) / self.std
        with torch.no_grad():
            hidden = self.tower(pixel_values=x).last_hidden_state
        if self.skip_class_token:
            hidden = hidden[:, 1:]
        return self.norm(self.project(hidden))
