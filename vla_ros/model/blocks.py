"""Building blocks shared by the vision encoder, the Q-Former and the decoder."""
from torch import nn

from .attention import LatentAttention


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, ratio: int):
        super().__init__(nn.Linear(dim, dim * ratio), nn.GELU(), nn.Linear(dim * ratio, dim))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: bidirectional latent self-attention, then feed-forward."""

    def __init__(self, cfg, window=None):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = LatentAttention(cfg.dim, cfg.heads, cfg.kv_heads, cfg.kv_rank, cfg.q_rank,
                                    causal=False, window=window)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.ffn = FeedForward(cfg.dim, cfg.mlp_ratio)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))[0]
        return x + self.ffn(self.norm2(x))
