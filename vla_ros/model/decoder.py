"""Text decoder with multi-modal causal attention (MMCA, seed 003) and a latent KV cache."""
import torch
from torch import nn

from .attention import LatentAttention
from .blocks import FeedForward


class MultiModalCausalAttention(nn.Module):
    """Text tokens attend causally to text and, separately, to the visual query tokens.

    Each modality has its own softmax, so a text-heavy context cannot starve the image
    of attention weight (and vice versa); the two results are summed. Only the text
    branch has a KV cache; the visual tokens are fixed for the whole generation.
    """

    def __init__(self, cfg):
        super().__init__()
        self.text = LatentAttention(cfg.dim, cfg.heads, cfg.kv_heads, cfg.kv_rank, cfg.q_rank,
                                    causal=True, window=cfg.decoder_window)
        self.visual = LatentAttention(cfg.dim, cfg.heads, cfg.kv_heads, cfg.kv_rank, cfg.q_rank)

    def forward(self, x, visual, cache=None, visual_index=None):
        text, cache = self.text(x, cache=cache)
        image, _ = self.visual(x, context=visual, context_index=visual_index)
        return text + image, cache


class DecoderLayer(nn.Module):
    """Pre-norm layer: MMCA, then a feed-forward block.

    Config `decoder_lookup_after_text` orders the two attentions. False (seed 003's MMCA):
    text and image attention read the same input side by side, so a layer's image query
    cannot yet know what the question asks, and only the last layer looks up the image
    with the question in hand. True: the image attention reads the text attention's
    output, so every layer's lookup already knows the question (one more hop per layer,
    same cost; the ordinary decoder's self-attention -> cross-attention order).
    """

    def __init__(self, cfg):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = MultiModalCausalAttention(cfg)
        self.norm_lookup = nn.LayerNorm(cfg.dim) if cfg.decoder_lookup_after_text else None
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.ffn = FeedForward(cfg.dim, cfg.mlp_ratio)

    def add_image(self, x, h, text, visual, visual_index=None):
        """x plus the text attention's output `text` (computed on h = norm1(x)) and the
        image attention's; shared with the ONNX export's cached decoder step."""
        if self.norm_lookup is None:
            image, _ = self.attn.visual(h, context=visual, context_index=visual_index)
            return x + text + image
        x = x + text
        image, _ = self.attn.visual(self.norm_lookup(x), context=visual,
                                    context_index=visual_index)
        return x + image

    def forward(self, x, visual, cache=None, visual_index=None):
        h = self.norm1(x)
        text, cache = self.attn.text(h, cache=cache)
        x = self.add_image(x, h, text, visual, visual_index)
        return x + self.ffn(self.norm2(x)), cache


class TextDecoder(nn.Module):
    """Token ids (B, T) + visual tokens (B, Q, dim) -> hidden states (B, T, dim); or
    visual tokens of fewer images (I, Q, dim) and visual_index (B,): the image of each row."""

    def __init__(self, cfg):
        super().__init__()
        self.max_len = cfg.max_text_len
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.pos = nn.Parameter(torch.zeros(1, cfg.max_text_len, cfg.dim))
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, ids, visual, caches=None, pos: int = 0, visual_index=None):
        """`pos` is the position of ids[:, 0]; caches holds one entry per layer (or None)."""
        T = ids.shape[1]
        assert pos + T <= self.max_len, f'text longer than max_text_len={self.max_len}'
        x = self.embed(ids) + self.pos[:, pos:pos + T]           # (B, T, dim)
        caches = caches or [None] * len(self.layers)
        new_caches = []
        for layer, cache in zip(self.layers, caches):
            x, cache = layer(x, visual, cache, visual_index)
            new_caches.append(cache)
        return self.norm(x), new_caches

    def logits(self, hidden):
        return hidden @ self.embed.weight.T                        # tied input/output embedding
