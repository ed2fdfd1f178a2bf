"""The positional encoder and the pre-norm self-attention shared by HyRSM and MoLo.

Wang et al., "Hybrid Relation Guided Set Matching for Few-shot Action Recognition", CVPR 2022, and Wang et al.,
"MoLo: Motion-augmented Long-short Contrastive Learning for Few-shot Action Recognition", CVPR 2023 (one code base;
``/work/shared/specs/molo_hyrsm.md`` section 0).

**Positional encoder** (unusual, kept as the original has it). A table ``pe[pos, c]`` for ``pos`` in 0..19 with

    pe[pos, c] = sin(pos / 10000^(2c / D))   for even c
    pe[pos, c] = cos(pos / 10000^(2c / D))   for odd c

i.e. the exponent uses ``2c`` (frequencies decay twice as fast as in Vaswani et al.), and each cosine column uses
its own index rather than its sine partner's. The table is computed in float64 and kept in float32, as the original
does. ``forward(x [N, L, D]) = Dropout(x * sqrt(D / pos_a) + pos_b * pe[:L])``.

**Pre-norm self-attention** ``x + Dropout(W_o(MHSA(LayerNorm(x))))``: one bias-free ``to_qkv`` Linear D -> 3D
(chunked q, k, v; heads split as ``(h d)``), scale ``(D / h)^-0.5``, softmax over keys, ``to_out = Linear(D, D)``
with bias then dropout. The parameter names (``norm``, ``fn.to_qkv``, ``fn.to_out.0``) are the original's.

**Transformer_v2** (MoLo): the self-attention above then ``x + FFN(x)``, FFN = Linear(D, mlp_dim) -> GELU ->
Dropout -> Linear(mlp_dim, D) -> Dropout, *without* a LayerNorm in front (as the original); ``mlp_dim`` is 2048 in
the original whatever D is.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

PE_LENGTH = 20
"""Rows of the original's table (its ``max_len``)."""


def hyrsm_pe_table(length: int, dim: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The ``[length, dim]`` table above, computed in float64 and returned in ``dtype``."""
    if dim < 2 or dim % 2:
        raise ValueError(f"the positional encoder needs an even feature size >= 2; got {dim}")
    if length < 1:
        raise ValueError(f"the positional encoder needs at least one row; got length={length}")
    position = torch.arange(length, dtype=torch.float64)[:, None]
    column = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = position / torch.pow(torch.tensor(10000.0, dtype=torch.float64), 2 * column / dim)
    table = torch.where(column.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.to(dtype)


class PositionalEncoder(nn.Module):
    """``[N, L, D] -> Dropout(x * sqrt(D / pos_a) + pos_b * pe[:L])``.

    The table is a non-persistent buffer (a pure function of D); the converters check the original's saved copy
    (``pe.pe``) against it and drop it.
    """

    def __init__(
        self, dim: int, pos_a: float = 10.0, pos_b: float = 1.0, dropout: float = 0.1, length: int = PE_LENGTH
    ) -> None:
        super().__init__()
        if pos_a <= 0:
            raise ValueError(f"pos_a must be > 0 (features are scaled by sqrt(D / pos_a)); got {pos_a}")
        self.dim = int(dim)
        self.pos_a = float(pos_a)
        self.pos_b = float(pos_b)
        self.register_buffer("table", hyrsm_pe_table(max(int(length), 1), self.dim), persistent=False)
        self.dropout = nn.Dropout(p=float(dropout))

    @property
    def input_scale(self) -> float:
        return math.sqrt(self.dim / self.pos_a)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1] > self.table.shape[0] or x.shape[2] != self.dim:
            raise ValueError(
                f"positional encoder expects [videos, L <= {self.table.shape[0]}, {self.dim}]; got {tuple(x.shape)}"
            )
        return self.dropout(x * self.input_scale + self.pos_b * self.table[: x.shape[1]].to(x.dtype))


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention with one bias-free ``to_qkv`` and ``to_out = (Linear, Dropout)``."""

    def __init__(self, dim: int, num_heads: int = 8, dropout: float = 0.2) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"the feature size {dim} must be a multiple of num_heads={num_heads}")
        self.num_heads = int(num_heads)
        self.scale = (dim // num_heads) ** -0.5
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(p=float(dropout)))

    def forward(self, x: Tensor) -> Tensor:
        n, length, dim = x.shape
        h = self.num_heads
        q, k, v = (t.reshape(n, length, h, dim // h).transpose(1, 2) for t in self.to_qkv(x).chunk(3, dim=-1))
        attention = (q @ k.transpose(-1, -2) * self.scale).softmax(dim=-1)  # [N, h, L, L]
        out = (attention @ v).transpose(1, 2).reshape(n, length, dim)
        return self.to_out(out)


class PreNormSelfAttention(nn.Module):
    """``x + fn(norm(x))`` with ``fn`` the multi-head self-attention (the original's ``PreNormattention``)."""

    def __init__(self, dim: int, num_heads: int = 8, dropout: float = 0.2) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = MultiHeadSelfAttention(dim, num_heads, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fn(self.norm(x))


class FeedForward(nn.Module):
    """``Linear(D, mlp_dim) -> GELU -> Dropout -> Linear(mlp_dim, D) -> Dropout`` (no LayerNorm)."""

    def __init__(self, dim: int, mlp_dim: int = 2048, dropout: float = 0.05) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, mlp_dim),
            nn.GELU(),
            nn.Dropout(p=float(dropout)),
            nn.Linear(mlp_dim, dim),
            nn.Dropout(p=float(dropout)),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TransformerV2(nn.Module):
    """MoLo's one-layer ``Transformer_v2``: ``x = x + SA(LN(x))`` then ``x = x + FFN(x)``.

    ``layers[0][0]`` is the pre-norm attention and ``layers[0][1]`` the feed-forward block, the original's layout.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        mlp_dim: int = 2048,
        attention_dropout: float = 0.2,
        ffn_dropout: float = 0.05,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [
                nn.ModuleList(
                    [
                        PreNormSelfAttention(dim, num_heads, attention_dropout),
                        FeedForward(dim, mlp_dim, ffn_dropout),
                    ]
                )
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        for attention, ffn in self.layers:  # type: ignore[misc]
            x = attention(x)
            x = x + ffn(x)
        return x
