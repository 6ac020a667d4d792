"""Action heads: (image, instruction) -> velocity command and a "goal reached" signal.

Both read the decoder's hidden state at the last token of an `<act> instruction` prompt,
i.e. after the instruction has attended to the image through MMCA.

- `ActionHead`: an MLP on that state alone. Whatever it knows about where the target is
  must pass through the Q-Former's few query tokens; trained by behaviour cloning it
  learned to drive but mostly not to which shape (sim success 0.24, wrong target 0.61).
- `PointerActionHead` (config `action_pointer: true`): the instruction state becomes a
  query that attends over the vision encoder's patches plus one learned "not in view"
  slot. The attention is a pointer at the named shape: its expected patch position,
  the features under it and the "not in view" mass are what the MLP reads. Training can
  supervise the pointer directly with where the simulator drew the target
  (`with_pointer=True` returns its logits), which grounds colour + shape words in image
  positions quickly.
- With config `action_map: true` the pointer head also reads a coarse map of everything
  in view: each patch squeezed to a few channels, stacked with the pointer's mass on it,
  through two small convolutions over the patch grid. The pointer says where the target
  is; the map says what else is in the way (distractors, walls), which is what the
  expert's detours react to.
"""
import torch
from torch import nn


class ActionHead(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, cfg.action_hidden), nn.GELU(),
                                 nn.Linear(cfg.action_hidden, 3))

    def forward(self, hidden_last: torch.Tensor, patches: torch.Tensor = None,
                with_pointer: bool = False):
        """hidden_last (B, dim) -> (velocity (B, 2) in [-1, 1], done logit (B,)).

        Velocity columns: linear, angular (fractions of the maximum speeds).
        `patches` is accepted for a common interface and ignored; this head has no pointer.
        """
        if with_pointer:
            raise ValueError('this action head has no pointer (config action_pointer: false)')
        out = self.mlp(hidden_last)
        return torch.tanh(out[:, :2]), out[:, 2]


def patch_grid(side: int) -> torch.Tensor:
    """(side*side, 2) patch centres (u, v) as fractions of the image, row-major."""
    c = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    v, u = torch.meshgrid(c, c, indexing='ij')
    return torch.stack([u.flatten(), v.flatten()], dim=1)


MAP_CHANNELS = 7    # per-patch features in the obstacle map (plus the pointer's mass)
MAP_WIDTH = 16      # channels of its convolutions


class PointerActionHead(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg.dim
        self.side = cfg.grid_side
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.not_in_view = nn.Parameter(torch.zeros(1, 1, d))   # the extra slot's key input
        self.register_buffer('grid', patch_grid(self.side), persistent=False)
        self.scale = d ** -0.5
        self.has_map = cfg.action_map
        map_features = 0
        if self.has_map:
            self.map_in = nn.Linear(d, MAP_CHANNELS)
            self.map_conv = nn.Sequential(
                nn.Conv2d(MAP_CHANNELS + 1, MAP_WIDTH, 3, padding=1), nn.GELU(),
                nn.Conv2d(MAP_WIDTH, MAP_WIDTH, 3, stride=2, padding=1), nn.GELU())
            map_features = MAP_WIDTH * ((self.side + 1) // 2) ** 2
        # reads: instruction state, features under the pointer, pointer (u, v), its spread,
        # the "not in view" probability, and the map when there is one
        self.mlp = nn.Sequential(nn.Linear(2 * d + 4 + map_features, cfg.action_hidden),
                                 nn.GELU(),
                                 nn.Linear(cfg.action_hidden, cfg.action_hidden), nn.GELU(),
                                 nn.Linear(cfg.action_hidden, 3))

    def pointer_logits(self, hidden_last: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """(B, num_patches + 1) logits; the last column is "the target is not in view"."""
        keys = self.key(torch.cat([patches, self.not_in_view.expand(patches.shape[0], -1, -1)], 1))
        return torch.einsum('bd,bnd->bn', self.query(hidden_last), keys) * self.scale

    def forward(self, hidden_last: torch.Tensor, patches: torch.Tensor,
                with_pointer: bool = False):
        """hidden_last (B, dim), patches (B, N, dim) -> (velocity (B, 2), done logit (B,)),
        and the (B, N + 1) pointer logits too when `with_pointer`."""
        logits = self.pointer_logits(hidden_last, patches)
        p = logits.softmax(-1)
        on_patches, absent = p[:, :-1], p[:, -1:]
        seen = on_patches / on_patches.sum(-1, keepdim=True).clamp_min(1e-6)
        where = seen @ self.grid                                             # (B, 2)
        spread = (seen * ((self.grid[None] - where[:, None]) ** 2).sum(-1)).sum(-1, True)
        under = torch.einsum('bn,bnd->bd', seen, patches)
        read = [hidden_last, under, where, spread, absent]
        if self.has_map:
            read.append(self.obstacle_map(patches, on_patches))
        out = self.mlp(torch.cat(read, 1))
        velocity, done = torch.tanh(out[:, :2]), out[:, 2]
        return (velocity, done, logits) if with_pointer else (velocity, done)

    def obstacle_map(self, patches: torch.Tensor, on_patches: torch.Tensor) -> torch.Tensor:
        """(B, N, dim) patches and (B, N) pointer mass -> (B, map features)."""
        cells = torch.cat([self.map_in(patches), on_patches[..., None] * self.side], -1)
        image = cells.transpose(1, 2).reshape(-1, MAP_CHANNELS + 1, self.side, self.side)
        return self.map_conv(image).flatten(1)
