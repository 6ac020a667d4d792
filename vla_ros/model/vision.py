"""Vision encoder: conv stem + conv patch embedding + latent-attention transformer (seed 001)."""
import torch
from torch import nn

from .blocks import EncoderBlock


class ConvStem(nn.Sequential):
    """Two stride-2 3x3 convolutions: (B, 3, H, W) -> (B, 2c, H/4, W/4), each followed by
    `depth - 1` stride-1 3x3 convolutions at the same width.

    depth 1: cheap local edge/colour features (the 2D model). depth 2: every patch sees
    27 px instead of 15 (with patch_size 3), enough to tell a cube from a cylinder a few
    pixels wide in the perspective view (the shape probe's CNN does it, the depth-1 stem
    does not: model card, "The third 3D run").
    """

    def __init__(self, channels: int, depth: int = 1):
        assert depth >= 1, 'stem depth must be at least 1'
        layers = []
        for c_in, c_out in ((3, channels), (channels, 2 * channels)):
            for k in range(depth):
                layers += [nn.Conv2d(c_in if k == 0 else c_out, c_out, 3, stride=2 if k == 0
                                     else 1, padding=1, bias=False),
                           nn.BatchNorm2d(c_out), nn.GELU()]
        super().__init__(*layers)


def sincos_2d(side: int, dim: int) -> torch.Tensor:
    """Fixed 2D sine-cosine position code (1, side*side, dim), row-major like the patches."""
    assert dim % 4 == 0, 'dim must divide by 4 for a 2D sin-cos position code'
    freqs = 1.0 / (100.0 ** (torch.arange(dim // 4) / (dim // 4)))          # (dim/4,)
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing='ij')
    parts = [f(c.flatten()[:, None].float() * freqs)
             for c in (ys, xs) for f in (torch.sin, torch.cos)]
    return torch.cat(parts, dim=1)[None]                                     # (1, N, dim)


class VisionEncoder(nn.Module):
    """uint8 RGB images (B, H, W, 3) -> patch features (B, num_patches, dim)."""

    def __init__(self, cfg):
        super().__init__()
        self.image_size = cfg.image_size
        self.stem = ConvStem(cfg.stem_channels, cfg.stem_depth)
        self.patch = nn.Conv2d(2 * cfg.stem_channels, cfg.dim, cfg.patch_size, cfg.patch_size)
        # where each patch is: a fixed 2D code (captions and "where" answers need it from
        # the first step) plus a learned correction
        side = cfg.image_size // (4 * cfg.patch_size)
        self.register_buffer('fixed_pos', sincos_2d(side, cfg.dim), persistent=False)
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
        x = x.flatten(2).transpose(1, 2) + self.fixed_pos + self.pos  # (B, num_patches, dim)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
