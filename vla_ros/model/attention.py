"""Attention used everywhere in the model: latent K/V, grouped-query heads, sliding window.

# Latent attention after DeepSeek-V2's MLA (seed 000 "latent processing"); GQA and
# sliding-window attention after seed 001.
Keys and values are never computed from the tokens directly: the tokens are first
projected to a rank-`kv_rank` latent, and K and V are expanded from it. At decode time
only that latent is cached, so the cache costs `kv_rank` numbers per token and layer
instead of `2 * kv_heads * head_dim`. With `kv_rank=None` the same class is ordinary
multi-head attention (it then caches K and V), which the ablation compares against.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def attention_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, causal: bool,
                   window: Optional[int]) -> Optional[torch.Tensor]:
    """Boolean (Tq, Tk) mask, True where the query at q_pos may see the key at k_pos.

    A window of w lets a token see the w positions ending at itself (causal) or the
    tokens less than w positions away (bidirectional).
    """
    if not causal and window is None:
        return None
    diff = q_pos[:, None] - k_pos[None, :]          # (Tq, Tk) query minus key position
    allowed = torch.ones_like(diff, dtype=torch.bool)
    if causal:
        allowed &= diff >= 0
    if window is not None:
        allowed &= (diff < window) if causal else (diff.abs() < window)
    return allowed


def attend_by_context(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      index: torch.Tensor) -> torch.Tensor:
    """Cross-attention in which row b of q (B, h, T, hd) attends to k[index[b]] and
    v[index[b]] (k, v: (I, h, S, hd)), without a copy of K and V per row: the rows of each
    context are laid end to end as one query sequence of that context (padded to the
    busiest one). That is the same attention, since no query attends to another, and in
    training, where a dozen questions share an image, it skips the per-row K/V copies
    and their zero-filled gradients (a training step 1.07x faster).
    Returns (B, h, T, hd)."""
    B, h, T, hd = q.shape
    n_contexts = k.shape[0]
    counts = torch.bincount(index, minlength=n_contexts)
    order = torch.argsort(index, stable=True)
    first = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(index)
    slot[order] = torch.arange(B) - first[index[order]]     # each row's rank in its context
    R = int(counts.max())
    grouped = q.new_zeros(n_contexts, R, h, T, hd).index_put((index, slot), q)
    grouped = grouped.permute(0, 2, 1, 3, 4).reshape(n_contexts, h, R * T, hd)
    y = F.scaled_dot_product_attention(grouped, k, v)                   # (I, h, R*T, hd)
    return y.view(n_contexts, h, R, T, hd).permute(0, 2, 1, 3, 4)[index, slot]


class LatentAttention(nn.Module):
    """Multi-head attention with low-rank latent K/V, grouped K/V heads and an optional window.

    Self-attention when called without `context`, cross-attention into `context` otherwise.
    """

    def __init__(self, dim: int, heads: int, kv_heads: Optional[int] = None,
                 kv_rank: Optional[int] = None, q_rank: Optional[int] = None,
                 causal: bool = False, window: Optional[int] = None):
        super().__init__()
        kv_heads = kv_heads or heads
        assert dim % heads == 0, 'dim must divide into heads'
        assert heads % kv_heads == 0, 'heads must be a multiple of kv_heads'
        assert window is None or window >= 1, 'window must be at least 1'
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.causal, self.window = causal, window
        kv_width = 2 * kv_heads * self.head_dim
        if kv_rank is None:   # ordinary attention: the "latent" is K and V themselves
            self.compress = nn.Linear(dim, kv_width, bias=False)
            self.expand = None
        else:
            self.compress = nn.Linear(dim, kv_rank, bias=False)
            self.expand = nn.Linear(kv_rank, kv_width, bias=False)
        if q_rank is None:
            self.query = nn.Linear(dim, dim, bias=False)
        else:
            self.query = nn.Sequential(nn.Linear(dim, q_rank, bias=False),
                                       nn.Linear(q_rank, dim, bias=False))
        self.out = nn.Linear(dim, dim, bias=False)

    @property
    def cache_width(self) -> int:
        """Numbers cached per token at decode time."""
        return self.compress.out_features

    def keys_values(self, latent: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Expand a (B, S, cache_width) latent into K and V of shape (B, heads, S, head_dim)."""
        B, S, _ = latent.shape
        kv = latent if self.expand is None else self.expand(latent)
        kv = kv.view(B, S, 2, self.kv_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]                                   # (B, kv_heads, S, head_dim)
        if self.kv_heads != self.heads:                       # grouped-query: share K/V heads
            k = k.repeat_interleave(self.heads // self.kv_heads, dim=1)
            v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
        return k, v

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None,
                cache: Optional[Tuple[torch.Tensor, int]] = None,
                context_index: Optional[torch.Tensor] = None):
        """x: (B, T, dim). cache: (latent (B, S, cache_width), position of its first token).
        context_index (B,): row b attends to context[context_index[b]] (several rows share
        one image's context, whose K and V are then expanded once).

        Returns (output (B, T, dim), new cache). The new cache is None for cross-attention.
        """
        B, T, D = x.shape
        if context is not None:
            latent, mask, new_cache = self.compress(context), None, None
            is_causal = False
        else:
            latent, start = self.compress(x), 0
            if cache is not None:
                past, start = cache
                latent = torch.cat([past, latent], dim=1)       # (B, S_past + T, width)
            S = latent.shape[1]
            k_pos = torch.arange(start, start + S)
            q_pos = k_pos[S - T:]
            mask = None if (T == 1 and cache is not None) else \
                attention_mask(q_pos, k_pos, self.causal, self.window)
            # plain causal self-attention over a fresh sequence: SDPA's own fast causal path
            is_causal = mask is not None and cache is None and self.window is None
            new_cache = (latent, start)
            if self.window is not None and S > self.window - 1:  # older tokens: never seen again
                keep = self.window - 1
                new_cache = (latent[:, S - keep:], start + S - keep)
        k, v = self.keys_values(latent)
        q = self.query(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)  # (B, h, T, hd)
        if context_index is not None:                 # cross-attention, no mask
            y = attend_by_context(q, k, v, context_index)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None if is_causal else mask,
                                               is_causal=is_causal)     # (B, h, T, hd)
        return self.out(y.transpose(1, 2).reshape(B, T, D)), new_cache
