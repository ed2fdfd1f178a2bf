"""Multi-shot fusion of TA2N: align every shot of a class in time to its first shot, project and average.

Liu et al., "TA2N: Two-Stage Action Alignment Network for Few-shot Action Recognition", AAAI 2022 (multi-shot
setting). See ``/work/shared/specs/ta2n.md`` §3.4: after TTM and before ACM; support must be class-major.

With spatially pooled shots s[n, k] (C, T) and the reference r = s[n, 0], the attention
A[n, k, x, y] = softmax_x(key(s[n, k])[:, x] · query(r)[:, y] / sqrt(C')) re-times shot k onto the reference
frames y; values are ``value_proj`` applied per position, and the prototype is the mean over shots. The query
maps are projected with the same ``value_proj`` (no residual).

``impl="fast"`` re-times and averages the raw maps first and projects once per class (the projection is linear,
so this is exact), i.e. n instead of n·k per-position C×C products; ``impl="reference"`` projects every shot.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

IMPLS = ("fast", "reference")


class MultiShotFusion(nn.Module):
    """The original ``keynet_multi`` / ``querynet_multi`` / ``valuenet_multi`` (here ``key_proj`` etc.)."""

    def __init__(self, dim: Sequence[int] = (2048, 2048), impl: str = "fast") -> None:
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"MultiShotFusion impl must be one of {IMPLS}; got {impl!r}")
        self.dim = tuple(int(d) for d in dim)
        self.impl = impl
        c, c_attn = self.dim
        self.key_proj = nn.Conv1d(c, c_attn, 1, bias=False)
        self.query_proj = nn.Conv1d(c, c_attn, 1, bias=False)
        self.value_proj = nn.Conv1d(c, c, 1, bias=False)

    def attention(self, support: Tensor, shot: int) -> Tensor:
        """A[n, k, x, y] (n, k, T, T), softmax over the shot's frames x."""
        nk, c, t = support.shape[:3]
        n = nk // shot
        pooled = support.mean((-2, -1))  # nk, C, T
        reference = pooled.reshape(n, shot, c, t)[:, 0]  # n, C, T
        keys = self.key_proj(pooled).reshape(n, shot, -1, t)
        qs = self.query_proj(reference)
        return (torch.einsum("nkcx,ncy->nkxy", keys, qs) / self.dim[1] ** 0.5).softmax(2)

    def _project(self, maps: Tensor) -> Tensor:
        b, c = maps.shape[:2]
        return self.value_proj(maps.reshape(b, c, -1)).reshape(maps.shape)

    def prototypes(self, support: Tensor, shot: int, return_attention: bool = False):
        """Class-major support (n*k, C, T, H, W) -> prototypes (n, C, T, H, W) (and the attention)."""
        if support.dim() != 5:
            raise ValueError(
                f"multi-shot fusion expects support (n*k, C, T, H, W); got {tuple(support.shape)}"
            )
        nk, c, t, h, w = support.shape
        if shot < 1 or nk % shot:
            raise ValueError(f"multi-shot fusion: {nk} support videos is not a multiple of shot={shot}")
        n = nk // shot
        attention = self.attention(support, shot)
        shots = support.reshape(n, shot, c, t, h, w)
        if self.impl == "reference":
            values = self._project(support).reshape(n, shot, c, t, h, w)
            proto = torch.einsum("nkxy,nkcxhw->nkcyhw", attention, values).mean(1)
        else:
            retimed = torch.einsum("nkxy,nkcxhw->ncyhw", attention, shots) / shot
            proto = self._project(retimed)
        return (proto, attention) if return_attention else proto

    def project_queries(self, queries: Tensor) -> Tensor:
        """The query side of multi-shot episodes: ``value_proj`` per position, (m, C, T, H, W) -> same shape."""
        return self._project(queries)
