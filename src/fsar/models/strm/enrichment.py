"""STRM's two enrichment modules: patch-level self-attention and the frame-level mixer.

Thatipelli et al., "Spatio-temporal Relation Modeling for Few-shot Action Recognition", CVPR 2022
(``Anirudh257/strm``; our description: ``shared/specs/strm.md`` §1, §2, §4).

- :func:`patch_tokens`: backbone maps ``[N, D, H, W]`` (H, W >= 4) -> 4x4 adaptive **max** pool -> 16 tokens
  ``[N, 16, D]``, row-major (patch index = 4·row + col).
- :class:`PatchAttention` (the original's ``attn_pat``), on the 16 tokens of each frame, frames independent:
  positional encoding + dropout (p = 0.1), then ``y = gamma · softmax(q kᵀ) v + x`` with ``q, k, v`` three
  linear maps of ``x`` and **no 1/sqrt(D) scaling of the scores** (quirk Q4), ``gamma`` a learned scalar that
  starts at 0; then a residual bottleneck MLP ``D -> D/2 -> D/2 -> D`` (ReLU after the first two) plus ``y``;
  then the mean over the 16 tokens: one vector per frame.
- :class:`FrameMixer` (``fr_enrich``), on a video's T frame vectors: positional encoding + dropout (p = 0.1),
  a token MLP over time (``T -> T -> T``, ReLU, plus its input), then a channel MLP (``D -> D -> D``, ReLU, plus
  its input). Its output goes into TRX, which adds its **own** positional encoding again (quirk Q5: frames get
  two positional encodings).

Both positional encodings are TRX's (:class:`fsar.models.trx.PositionalEncoding`, 0.1-scaled sinusoid; the patch
one has ``int(1.5·16) = 24`` rows of which 16 are used). Parameter names inside the modules are the original's
(``query_proj``, ``key_proj``, ``value_conv``, ``inp_fc``, ``hid_fc``, ``out_fc``, ``gamma``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsar.models.trx.encoding import PositionalEncoding

GRID = 4
"""The adaptive max pool's output size: 4x4 patches per frame."""
NUM_PATCHES = GRID * GRID
ENRICHMENT_DROPOUT = 0.1
"""The original's fixed dropout of the two enrichment encodings (not its ``trans_dropout``)."""


def patch_tokens(maps: Tensor) -> Tensor:
    """``[N, D, H, W]`` backbone maps (H, W >= 4) -> ``[N, 16, D]``: adaptive 4x4 max pool, row-major patches."""
    if maps.dim() != 4 or maps.shape[2] < GRID or maps.shape[3] < GRID:
        raise ValueError(
            f"STRM pools each frame's backbone map to {GRID}x{GRID} patches: it needs maps [frames, D, H, W] with "
            f"H, W >= {GRID}; got {tuple(maps.shape)}"
        )
    return F.adaptive_max_pool2d(maps, GRID).flatten(2).transpose(1, 2)


class PatchMLP(nn.Module):
    """The patch branch's residual bottleneck MLP (``Bot_MLP`` of ``attn_pat``): ``D -> D/2 -> D/2 -> D``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.inp_fc = nn.Linear(dim, dim // 2)
        self.hid_fc = nn.Linear(dim // 2, dim // 2)
        self.out_fc = nn.Linear(dim // 2, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_fc(F.relu(self.hid_fc(F.relu(self.inp_fc(x))))) + x


class PatchAttention(nn.Module):
    """Self-attention over the 16 patch tokens of each frame (``attn_pat``): ``[N, 16, D] -> [N, D]``."""

    def __init__(self, dim: int, dropout: float = ENRICHMENT_DROPOUT) -> None:
        super().__init__()
        self.dim = int(dim)
        self.pe = PositionalEncoding(self.dim, NUM_PATCHES, dropout)
        self.query_proj = nn.Linear(self.dim, self.dim)
        self.key_proj = nn.Linear(self.dim, self.dim)
        self.value_conv = nn.Linear(self.dim, self.dim)  # a Linear, named as in the original
        self.gamma = nn.Parameter(torch.zeros(1))  # the gate starts closed
        self.mlp = PatchMLP(self.dim)

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.dim() != 3 or tokens.shape[1:] != (NUM_PATCHES, self.dim):
            raise ValueError(
                f"STRM patch attention expects tokens [frames, {NUM_PATCHES}, D={self.dim}]; got {tuple(tokens.shape)}"
            )
        x = self.pe(tokens)
        scores = self.query_proj(x) @ self.key_proj(x).transpose(1, 2)  # [N, 16, 16], not scaled (quirk Q4)
        attended = scores.softmax(dim=-1) @ self.value_conv(x)
        return self.mlp(self.gamma * attended + x).mean(dim=1)


class TokenMLP(nn.Module):
    """``Tok_MLP`` of ``fr_enrich``: an MLP over the time axis ``T -> T -> T`` with a residual, on ``[V, T, D]``."""

    def __init__(self, num_frames: int) -> None:
        super().__init__()
        self.inp_fc = nn.Linear(num_frames, num_frames)
        self.out_fc = nn.Linear(num_frames, num_frames)

    def forward(self, x: Tensor) -> Tensor:
        mixed = self.out_fc(
            F.relu(self.inp_fc(x.transpose(1, 2)))
        )  # [V, D, T]: one mix of the T frames per channel
        return mixed.transpose(1, 2) + x


class ChannelMLP(nn.Module):
    """``Bot_MLP`` of ``fr_enrich``: ``D -> D -> D`` with a residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.inp_fc = nn.Linear(dim, dim)
        self.out_fc = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_fc(F.relu(self.inp_fc(x))) + x


class FrameMixer(nn.Module):
    """Frame-level enrichment (``fr_enrich``): ``[V, T, D] -> [V, T, D]``."""

    def __init__(self, dim: int, num_frames: int, dropout: float = ENRICHMENT_DROPOUT) -> None:
        super().__init__()
        self.dim, self.num_frames = int(dim), int(num_frames)
        self.pe = PositionalEncoding(self.dim, self.num_frames, dropout)
        self.token_mlp = TokenMLP(self.num_frames)
        self.channel_mlp = ChannelMLP(self.dim)

    def forward(self, frames: Tensor) -> Tensor:
        if frames.dim() != 3 or frames.shape[1:] != (self.num_frames, self.dim):
            raise ValueError(
                f"STRM frame mixer expects [videos, T={self.num_frames}, D={self.dim}]; got {tuple(frames.shape)}"
            )
        return self.channel_mlp(self.token_mlp(self.pe(frames)))
