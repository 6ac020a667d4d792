"""Q-Former: a fixed set of learnable queries that read the image (seed 002, after BLIP-2).

The decoder never sees patch features, only these `num_queries` tokens, so the
language side's cost does not grow with image resolution.
"""
import torch
from torch import nn

from .attention import LatentAttention
from .blocks import FeedForward


class QFormerLayer(nn.Module):
    """Queries self-attend, then cross-attend into the image features, then feed-forward."""

    def __init__(self, cfg):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.self_attn = LatentAttention(cfg.dim, cfg.heads, cfg.kv_heads, cfg.kv_rank, cfg.q_rank)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.cross_attn = LatentAttention(cfg.dim, cfg.heads, cfg.kv_heads, cfg.kv_rank,
                                          cfg.q_rank)
        self.norm3 = nn.LayerNorm(cfg.dim)
        self.ffn = FeedForward(cfg.dim, cfg.mlp_ratio)

    def forward(self, queries, image_features):
        queries = queries + self.self_attn(self.norm1(queries))[0]
        queries = queries + self.cross_attn(self.norm2(queries), context=image_features)[0]
        return queries + self.ffn(self.norm3(queries))


class QFormer(nn.Module):
    """Image features (B, N, dim) -> query tokens (B, num_queries, dim)."""

    def __init__(self, cfg):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(1, cfg.num_queries, cfg.dim) * 0.02)
        self.layers = nn.ModuleList(QFormerLayer(cfg) for _ in range(cfg.qformer_layers))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        q = self.queries.expand(image_features.shape[0], -1, -1)
        for layer in self.layers:
            q = layer(q, image_features)
        return self.norm(q)
