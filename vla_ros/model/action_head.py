"""Action head: (image, instruction) -> velocity command and a "goal reached" signal.

It reads the decoder's hidden state at the last token of an `<act> instruction`
prompt, i.e. after the instruction has attended to the image through MMCA.
"""
import torch
from torch import nn


class ActionHead(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, cfg.action_hidden), nn.GELU(),
                                 nn.Linear(cfg.action_hidden, 3))

    def forward(self, hidden_last: torch.Tensor):
        """hidden_last (B, dim) -> (velocity (B, 2) in [-1, 1], done logit (B,)).

        Velocity columns: linear, angular (fractions of the maximum speeds).
        """
        out = self.mlp(hidden_last)
        return torch.tanh(out[:, :2]), out[:, 2]
