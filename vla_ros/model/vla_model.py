"""The whole model: vision encoder -> Q-Former -> MMCA decoder (text) and action head."""
import torch
from torch import nn

from .action_head import ActionHead, PointerActionHead
from .config import ModelConfig
from .decoder import TextDecoder
from .qformer import QFormer
from .vision import VisionEncoder


class VLAModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.vision_encoder:     # a frozen pretrained tower (BLIP-2's recipe)
            from .pretrained_vision import PretrainedVisionEncoder
            self.vision = PretrainedVisionEncoder(cfg)
        else:
            self.vision = VisionEncoder(cfg)
        self.qformer = QFormer(cfg)
        self.decoder = TextDecoder(cfg)
        self.action = PointerActionHead(cfg) if cfg.action_pointer else ActionHead(cfg)
        self.patch_norm = nn.LayerNorm(cfg.dim) if cfg.decoder_patches else None

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 RGB (B, H, W, 3) -> visual tokens (B, Q, dim): the num_queries query
        tokens, then (config decoder_patches) the N patch features."""
        return self.encode(pixels)[0]

    def encode(self, pixels: torch.Tensor):
        """uint8 RGB (B, H, W, 3) -> (visual tokens (B, Q, dim), patches (B, N, dim)):
        what `act` needs (the pointer action head reads the patches too)."""
        patches = self.vision(pixels)
        visual = self.qformer(patches)
        if self.patch_norm is not None:
            visual = torch.cat([visual, self.patch_norm(patches)], 1)
        return visual, patches

    def forward(self, visual: torch.Tensor, ids: torch.Tensor,
                visual_index: torch.Tensor = None, where: torch.Tensor = None) -> torch.Tensor:
        """Teacher-forced next-token logits (B, T, vocab) for token ids (B, T); visual is
        (B, Q, dim), or (I, Q, dim) for I images and visual_index (B,) the image of each row
        (the images' K and V are then computed once, not once per question). `where`, a
        (B, T) bool mask, gives the logits of those positions only, (N, vocab): training
        scores the answer tokens, and the vocabulary projection of every prompt token is
        most of a step's softmax work."""
        hidden, _ = self.decoder(ids, visual, visual_index=visual_index)
        return self.decoder.logits(hidden if where is None else hidden[where])

    def act(self, visual: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor = None,
            patches: torch.Tensor = None, with_pointer: bool = False):
        """Velocity (B, 2) in [-1, 1] and done logit (B,) for `<act> instruction` ids (B, T).

        `lengths` (B,) marks where right-padded instructions end (default: all T long).
        `patches` (from `encode`) is required by the pointer action head; `with_pointer`
        also returns its (B, N + 1) logits (training supervises them, explain draws them).
        """
        hidden, _ = self.decoder(ids, visual)                     # (B, T, dim)
        last = hidden[:, -1] if lengths is None else \
            hidden[torch.arange(ids.shape[0]), lengths - 1]
        return self.action(last, patches, with_pointer=with_pointer)

    @torch.no_grad()
    def generate(self, visual: torch.Tensor, prompt: torch.Tensor, eos: int,
                 max_new_tokens: int = 24, use_cache: bool = True):
        """Greedy decoding. prompt (B, T) of equal-length prompts.

        Returns (tokens (B, n), probabilities of the chosen tokens (B, n)); rows that
        finished early are padded with eos (probability 1).
        """
        B, T = prompt.shape
        max_new_tokens = min(max_new_tokens, self.cfg.max_text_len - T + 1)
        tokens, probs = [], []
        done = torch.zeros(B, dtype=torch.bool)
        ids, caches, pos = prompt, None, 0
        for _ in range(max_new_tokens):
            if use_cache:
                hidden, caches = self.decoder(ids, visual, caches, pos)
                pos += ids.shape[1]
            else:
                hidden, _ = self.decoder(torch.cat([prompt] + tokens, 1) if tokens else prompt,
                                         visual)
            p = self.decoder.logits(hidden[:, -1]).softmax(-1)        # (B, vocab)
            prob, nxt = p.max(-1)
            nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
            prob = torch.where(done, torch.ones_like(prob), prob)
            tokens.append(nxt[:, None])
            probs.append(prob[:, None])
            done |= nxt == eos
            if done.all():
                break
            ids = nxt[:, None]
        return torch.cat(tokens, 1), torch.cat(probs, 1)
