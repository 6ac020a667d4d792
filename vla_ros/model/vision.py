"""Vision encoder: conv stem + conv patch embedding + latent-attention transformer (seed 001)."""
import torch
from torch import nn

from .blocks import EncoderBlock


class ConvStem(nn.Sequential):
    """Two stride-2 3x3 convolutions: (B, 3, H, W) -> (B, 2c, H/4, W/4).

    Cheap local edge/colour features; shapes of a few pixels survive the patching.
    """

    def __init__(self, channels: int):
        super().__init__(
            nn.Conv2d(3, channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels), nn.GELU(),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * channels), nn.GELU())


class VisionEncoder(nn.Module):
    """uint8 RGB images (B, H, W, 3) -> patch features (B, num_patches, dim)."""

    def __init__(self, cfg):
        super().__init__()
        self.image_size = cfg.image_size
        self.stem = ConvStem(cfg.stem_channels)
        self.patch = nn.Conv2d(2 * cfg.stem_channels, cfg.dim, cfg.patch_size, cfg.patch_size)
        self.pos = nn.Parameter(torch.zeros(1, cfg.num_patches, cfg.dim))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(EncoderBlock(cfg, cfg.vision_window)
                                    for _ in range(cfg.vision_layers))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        B, H, W, _ = pixels.shape
        assert H == W == self.image_size, f'expected {self.image_size}px square images'
        x = pixels.permute(0, 3, 1, 2).float() / 127.5 - 1.0    # (B, 3, H, W) in [-1, 1]
        x = self.patch(self.stem(x))                             # (B, dim, H/4p, W/4p)
        x = x.flatten(2).transpose(1, 2) + self.pos              # (B, num_patches, dim)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
