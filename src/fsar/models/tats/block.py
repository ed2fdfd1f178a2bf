"""The masked divided space-time transformer block of TATs.

TATs (Kumar et al., ECCV 2024, tats.md section 4) runs one TimeSformer-style block ("divided space-time
attention", Bertasius et al., ICML 2021) over point tokens ``[B, T, N, D]`` plus one CLS token per video:

1. temporal attention along each trajectory (sequence of T frames, one per point);
2. spatial attention inside each frame over ``[CLS copy ; N points]``; the CLS residual is the mean over
   frames of the CLS outputs;
3. an MLP on every token.

Masking: a boolean ``key_mask [B, T, N]`` (True = the point exists at that frame) removes tokens from the
*keys* of both attentions. Queries at masked positions are still computed and updated, but they never
influence an unmasked token or the CLS.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedSelfAttention(nn.Module):
    """Multi-head self-attention with a per-sequence boolean key mask (``qkv`` and ``proj`` linears).

    ``forward(x [S, L, D], key_mask [S, L])``: ``key_mask[s, l]`` True means token l of sequence s may be
    attended to. Uses ``scaled_dot_product_attention`` with scale ``head_dim ** -0.5``.

    Guard for empty rows: a sequence whose keys are all masked has no defined attention. Instead of the NaN
    (or backend-dependent value) that a softmax over no keys gives, its output rows are exactly zero (before
    ``proj``, i.e. ``proj`` then returns its bias). :class:`~fsar.models.tats.model.TATs` refuses such rows
    coming from the query mask (the original cannot produce them); they can only arise from occlusion
    masking (``mask_occluded=True``) for a point that is never visible.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, device=None) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias, device=device)
        self.proj = nn.Linear(dim, dim, device=device)

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        s, length, d = x.shape
        qkv = self.qkv(x).reshape(s, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [S, H, L, hd]
        if key_mask is None:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            empty = ~key_mask.any(dim=-1)  # [S]
            safe_mask = key_mask | empty.unsqueeze(-1)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=safe_mask[:, None, None, :])
            out = out.masked_fill(empty[:, None, None, None], 0.0)
        out = out.transpose(1, 2).reshape(s, length, d)
        return self.proj(out)


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2."""

    def __init__(self, dim: int, hidden_dim: int, device=None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim, device=device)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim, device=device)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DividedSpaceTimeBlock(nn.Module):
    """One masked divided space-time block (tats.md section 4).

    ``forward(cls [B, 1, D], points [B, T, N, D], key_mask [B, T, N] | None) -> (cls', points')``:

    - ``P'  = P + temporal_fc(TemporalAttn(temporal_norm(P) along t, keys: key_mask[b, :, n]))``
    - ``R   = SpatialAttn(spatial_norm([cls ; P'[b, t]]), keys: [True ; key_mask[b, t]])`` per (b, t)
    - ``cls' = cls + mean_t R[b, t, 0]``,  ``P'' = P' + R[b, t, 1:]``
    - every token: ``z = z + mlp(mlp_norm(z))``

    Reference names (see :mod:`fsar.models.tats.convert`): ``temporal_norm1`` -> ``temporal_norm``,
    ``norm1`` -> ``spatial_norm``, ``attn`` -> ``spatial_attn``, ``norm2`` -> ``mlp_norm``.
    """

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, norm_eps: float = 1e-6, device=None
    ) -> None:
        super().__init__()
        self.temporal_norm = nn.LayerNorm(dim, eps=norm_eps, device=device)
        self.temporal_attn = MaskedSelfAttention(dim, num_heads, device=device)
        self.temporal_fc = nn.Linear(dim, dim, device=device)
        self.spatial_norm = nn.LayerNorm(dim, eps=norm_eps, device=device)
        self.spatial_attn = MaskedSelfAttention(dim, num_heads, device=device)
        self.mlp_norm = nn.LayerNorm(dim, eps=norm_eps, device=device)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), device=device)

    def forward(self, cls: Tensor, points: Tensor, key_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        b, t, n, d = points.shape
        if key_mask is not None and bool(key_mask.all()):
            # Nothing is masked (e.g. the all-True query mask of the released TATs/Trokens data): attention
            # without a mask is the same computation, and only then can PyTorch pick its fused flash kernel
            # (no [S, heads, L, L] mask is formed either).
            key_mask = None
        # (a) temporal attention, one sequence of T frames per trajectory
        seq = points.transpose(1, 2).reshape(b * n, t, d)
        mask_t = None if key_mask is None else key_mask.transpose(1, 2).reshape(b * n, t)
        r_t = self.temporal_attn(self.temporal_norm(seq), mask_t)
        points = points + self.temporal_fc(r_t).reshape(b, n, t, d).transpose(1, 2)

        # (b) spatial attention, one sequence [cls ; N points] per frame
        cls_copies = cls.expand(b, t, d).reshape(b * t, 1, d)
        seq = torch.cat([cls_copies, points.reshape(b * t, n, d)], dim=1)
        if key_mask is None:
            mask_s = None
        else:
            cls_key = torch.ones(b * t, 1, dtype=torch.bool, device=key_mask.device)
            mask_s = torch.cat([cls_key, key_mask.reshape(b * t, n)], dim=1)
        r_s = self.spatial_attn(self.spatial_norm(seq), mask_s).reshape(b, t, 1 + n, d)
        cls = cls + r_s[:, :, :1].mean(dim=1)
        points = points + r_s[:, :, 1:]

        # (c) MLP on every token
        cls = cls + self.mlp(self.mlp_norm(cls))
        points = points + self.mlp(self.mlp_norm(points))
        return cls, points
