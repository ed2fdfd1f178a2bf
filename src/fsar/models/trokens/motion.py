"""Trokens' motion features: histograms of oriented displacements (HoD) and relative (cross-trajectory) motion.

Kumar et al., "Trokens: Semantic-Aware Relational Trajectory Tokens for Few-Shot Action Recognition", ICCV 2025
(reference code ``pulkitkumar95/trokens``; our spec: trokens.md sections 1-3). Both work on the tracks the model
receives, ``(u, v) = (2x/W - 1, 2y/H - 1)`` (normalised units, never pixels), so they are anisotropic for
non-square videos, as in the original.

- :func:`hod_features`: per point and frame, a histogram of the displacement from the previous frame over
  ``num_bins`` orientation bins, with the original's **inverted** interpolation weights (trokens.md §1.4): for
  ``s = num_bins * (atan2(d_v, d_u) / pi + 1) / 2 = k + f``, bin ``k mod nb`` gets ``|d| * f`` and bin
  ``(k + 1) mod nb`` gets ``|d| * (1 - f)``. A displacement on a bin edge (``f = 0``: every axis-aligned or
  diagonal motion) puts all its mass in the *next* bin: +u -> nb/2 + 1, -u -> 1, +v -> 3nb/4 + 1, -v -> nb/4 + 1.
  Row 0 is zero. Input data, no autograd (the original computes it in the loader, in numpy).
- :func:`relative_motion_features`: per frame and point m, its offset to every point n, masked by the
  visibility of both (``[B, T, N, 2N]``, order ``n0.u, n0.v, n1.u, ...``). Differentiable w.r.t. the tracks.
- :class:`MotionEmbedding`: ``Linear(in, 4D) -> QuickGELU -> Linear(4D, D) -> LayerNorm(D, eps 1e-5)``.

NaN coordinates (a track the tracker lost) are replaced by 0 in both (the original's relative-motion rule; its
HoD code crashes on NaN). Inputs are never modified.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_tracks(tracks: Tensor, name: str) -> None:
    if tracks.dim() < 3 or tracks.shape[-1] != 2:
        raise ValueError(f"{name}: tracks must be [..., T, N, 2] (u, v); got shape {tuple(tracks.shape)}")
    if not tracks.is_floating_point():
        raise TypeError(f"{name}: tracks must be a floating-point tensor; got {tracks.dtype}")


@torch.no_grad()
def hod_features(tracks: Tensor, num_bins: int = 32) -> Tensor:
    """Histogram of oriented displacements: ``tracks [..., T, N, 2]`` -> float32 ``[..., T, N, num_bins]``.

    Row ``t >= 1`` holds the histogram of the single displacement ``d = p[t] - p[t - 1]`` (at most two non-zero
    bins, total mass ``|d|``); row 0 is zero. Computed in float32 without autograd. Visibility is not used
    (as the original). See the module docstring for the binning.
    """
    _check_tracks(tracks, "hod_features")
    if int(num_bins) < 2:
        raise ValueError(f"hod_features: num_bins must be >= 2; got {num_bins}")
    p = tracks.detach().float()
    p = torch.where(torch.isnan(p), torch.zeros_like(p), p)
    out = torch.zeros(*p.shape[:-1], num_bins, dtype=torch.float32, device=p.device)
    if p.shape[-3] < 2:
        return out
    d = p[..., 1:, :, :] - p[..., :-1, :, :]  # [..., T-1, N, 2]
    magnitude = torch.linalg.vector_norm(d, dim=-1)
    s = num_bins * (torch.atan2(d[..., 1], d[..., 0]) / math.pi + 1) / 2
    k = torch.floor(s)
    f = s - k
    k = k.long()
    rows = out[..., 1:, :, :]
    rows.scatter_add_(-1, torch.remainder(k, num_bins).unsqueeze(-1), (magnitude * f).unsqueeze(-1))
    rows.scatter_add_(-1, torch.remainder(k + 1, num_bins).unsqueeze(-1), (magnitude * (1 - f)).unsqueeze(-1))
    return out


def relative_motion_features(tracks: Tensor, visibility: Tensor) -> Tensor:
    """Relative motion: ``tracks [B, T, N, 2]``, ``visibility [B, T, N]`` bool -> ``[B, T, N, 2N]``.

    ``out[b, t, m, 2n + c] = (p[b, t, m, c] - p[b, t, n, c]) * vis[b, t, m] * vis[b, t, n]`` with NaN
    coordinates replaced by 0 and ``vis = visibility & ~isnan(u)`` (only u is tested, as the original; a NaN in
    v alone is zeroed but keeps the point visible). Differentiable w.r.t. ``tracks`` (zero gradient at NaN
    entries); the inputs are not modified.
    """
    _check_tracks(tracks, "relative_motion_features")
    if tracks.dim() != 4:
        raise ValueError(f"relative_motion_features: tracks must be [B, T, N, 2]; got {tuple(tracks.shape)}")
    if visibility.shape != tracks.shape[:3] or visibility.dtype != torch.bool:
        raise ValueError(
            f"relative_motion_features: visibility must be a bool tensor {tuple(tracks.shape[:3])}; got "
            f"{visibility.dtype} {tuple(visibility.shape)}"
        )
    b, t, n, _ = tracks.shape
    nan = torch.isnan(tracks)
    p = torch.where(nan, torch.zeros_like(tracks), tracks)
    vis = visibility & ~nan[..., 0]
    offsets = p.unsqueeze(3) - p.unsqueeze(2)  # [B, T, M, N, 2]: p[m] - p[n]
    pair = (vis.unsqueeze(3) & vis.unsqueeze(2)).to(p.dtype)  # [B, T, M, N]
    return (offsets * pair.unsqueeze(-1)).reshape(b, t, n, 2 * n)


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)`` (CLIP's GELU approximation, used by Trokens' motion modules)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class MotionEmbedding(nn.Module):
    """``fc1: Linear(in, 4D) -> QuickGELU -> fc2: Linear(4D, D) -> norm: LayerNorm(D, eps 1e-5)``.

    The LayerNorm is computed in float32 and cast back to the input dtype (as the original under fp16 autocast).
    Reference names (:mod:`fsar.models.trokens.convert`): ``fc2.c_fc`` -> ``fc1``, ``fc2.c_proj`` -> ``fc2``,
    ``ln2`` -> ``norm``. Initialisation: PyTorch's default for Linear and LayerNorm (:meth:`reset_parameters`
    draws from the given generator instead of the global one).
    """

    def __init__(self, in_dim: int, dim: int, device=None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, 4 * dim, device=device)
        self.act = QuickGELU()
        self.fc2 = nn.Linear(4 * dim, dim, device=device)
        self.norm = nn.LayerNorm(dim, eps=1e-5, device=device)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """PyTorch's default initialisation (``nn.Linear.reset_parameters``), from ``generator``."""
        for linear in (self.fc1, self.fc2):
            nn.init.kaiming_uniform_(linear.weight, a=math.sqrt(5), generator=generator)
            bound = 1 / math.sqrt(linear.in_features)
            nn.init.uniform_(linear.bias, -bound, bound, generator=generator)
        nn.init.ones_(self.norm.weight)
        nn.init.zeros_(self.norm.bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc2(self.act(self.fc1(x)))
        normed = F.layer_norm(
            h.float(),
            self.norm.normalized_shape,
            self.norm.weight.float(),
            self.norm.bias.float(),
            self.norm.eps,
        )
        return normed.to(h.dtype)
