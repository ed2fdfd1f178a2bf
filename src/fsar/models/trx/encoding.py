"""TRX's positional encoding: Perrett et al., "Temporal-Relational CrossTransformers for Few-Shot Action
Recognition", CVPR 2021.

The sinusoidal table of Vaswani et al. ("Attention is all you need", NeurIPS 2017) scaled by 0.1:

    table[p, 2i]     = 0.1 * sin(p / 10000^(2i / D))
    table[p, 2i + 1] = 0.1 * cos(p / 10000^(2i / D))

The original builds it with ``int(1.5 * T)`` rows (only the first T are used), adds row t to the feature of frame
t of every video, then applies dropout (p = 0.1) to the sum. Each cardinality's cross-transformer has its own
encoding module, so in train mode each draws its own dropout mask.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

PE_SCALE = 0.1


def table_length(num_frames: int) -> int:
    """Rows of the original's table for ``num_frames`` frames: ``int(1.5 * T)``."""
    return int(1.5 * num_frames)


def sinusoidal_table(
    length: int, dim: int, scale: float = PE_SCALE, dtype: torch.dtype | None = None
) -> Tensor:
    """The ``[length, dim]`` table above (computed in float64, returned in ``dtype``, default float32)."""
    if dim < 2 or dim % 2:
        raise ValueError(f"the positional encoding needs an even feature size >= 2; got {dim}")
    if length < 1:
        raise ValueError(f"the positional encoding needs at least one row; got length={length}")
    position = torch.arange(length, dtype=torch.float64)[:, None]
    inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(10000.0) / dim))
    table = torch.empty(length, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * inv_freq) * scale
    table[:, 1::2] = torch.cos(position * inv_freq) * scale
    return table.to(torch.float32 if dtype is None else dtype)


class PositionalEncoding(nn.Module):
    """``[B, T, D] -> dropout(x + table[:T])``. The table is a non-persistent buffer (it is a pure function of
    ``T`` and ``D``; :func:`fsar.models.trx.convert_reference_state_dict` checks the original's saved copy)."""

    def __init__(self, dim: int, num_frames: int, dropout: float = 0.1, scale: float = PE_SCALE) -> None:
        super().__init__()
        self.dim = int(dim)
        self.num_frames = int(num_frames)
        self.scale = float(scale)
        self.register_buffer(
            "table", sinusoidal_table(table_length(self.num_frames), self.dim, self.scale), persistent=False
        )
        self.dropout = nn.Dropout(p=float(dropout))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1] > self.table.shape[0] or x.shape[2] != self.dim:
            raise ValueError(
                f"positional encoding expects [videos, T <= {self.table.shape[0]}, {self.dim}]; "
                f"got {tuple(x.shape)}"
            )
        return self.dropout(x + self.table[: x.shape[1]].to(x.dtype))
