"""Trajectory-aligned token sampling: read one feature vector per (frame, point) from a patch grid.

TATs (Kumar et al., "Trajectory-aligned Space-time Tokens for Few-shot Action Recognition", ECCV 2024)
turns a video's patch grid ``F [B, T, G, G, D]`` into point tokens ``X [B, T, N, D]`` by sampling each
frame's grid at the positions of N tracked points.

Coordinate convention of the tracks (shared with :class:`fsar.data.batch.ClipBatch`): ``(u, v)`` with
``u = 2 * x / W - 1`` and ``v = 2 * y / H - 1``, where ``(x, y)`` is a pixel position and ``(W, H)`` the
frame size. So ``u = -1`` is the left image border, ``u = +1`` the right border, and patch column ``j`` (of
G) covers ``x / W`` in ``[j / G, (j + 1) / G)``; its centre is at ``u = 2 * (j + 0.5) / G - 1``. Row ``i``
of the grid is the image row (y), column ``j`` the image column (x).

Two samplers:

``"nearest_reference"`` (the original code: ``grid_sample(mode="nearest", align_corners=True,
padding_mode="zeros")``). The grid is treated as if its cell *centres* sat on the image borders:
``ix = rint((u + 1) / 2 * (G - 1))``, ``iy = rint((v + 1) / 2 * (G - 1))`` with round-half-to-even,
computed in float32 exactly as ``grid_sample`` does. The token is ``F[iy, ix]`` when both indices lie in
``[0, G - 1]`` and the zero vector otherwise. This picks patch ``round((G - 1) * x / W)`` instead of the
patch that contains the pixel, ``floor(G * x / W)`` (up to half a patch off; tats.md section 8, item 5).

``"bilinear"`` (a corrected alternative). Bilinear interpolation between patch *centres*
(``align_corners=False`` semantics): ``ix = ((u + 1) * G - 1) / 2`` in patch units, so a point at the centre
of patch ``j`` reads exactly ``F[., j]``. Between the outermost centres and the image border (the outer
half patch) the value is clamped to the border patch (``padding_mode="border"``), and a point outside the
image (``|u| > 1`` or ``|v| > 1``) reads the zero vector, as in the reference sampler.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SAMPLING_MODES = ("nearest_reference", "bilinear")


def _check_inputs(features: Tensor, tracks: Tensor) -> None:
    if features.dim() != 5 or features.shape[2] != features.shape[3]:
        raise ValueError(
            f"features must be a square patch grid [B, T, G, G, D]; got shape {tuple(features.shape)}"
        )
    if tracks.dim() != 4 or tracks.shape[-1] != 2:
        raise ValueError(f"tracks must be [B, T, N, 2] (x, y) in [-1, 1]; got shape {tuple(tracks.shape)}")
    if tracks.shape[:2] != features.shape[:2]:
        raise ValueError(
            f"tracks [B, T, N, 2] = {tuple(tracks.shape)} do not match features [B, T, G, G, D] = "
            f"{tuple(features.shape)} in (B, T)"
        )
    if not tracks.is_floating_point():
        raise TypeError(f"tracks must be a floating-point tensor; got {tracks.dtype}")


def nearest_reference_indices(coords: Tensor, grid_size: int) -> Tensor:
    """Grid index chosen by the reference nearest sampler: ``rint((c + 1) / 2 * (G - 1))`` (half to even).

    ``coords`` is cast to float32 first and the arithmetic follows ``grid_sample``'s own order, so the
    result equals ``grid_sample(mode="nearest", align_corners=True)`` bit for bit. Indices may fall outside
    ``[0, G - 1]`` (the point is then outside the grid). Returns an int64 tensor of the same shape.
    """
    c = coords.float()
    return torch.round(((c + 1) / 2) * (grid_size - 1)).long()


def sample_nearest_reference(features: Tensor, tracks: Tensor) -> Tensor:
    """Reference nearest sampling. ``features [B, T, G, G, D]``, ``tracks [B, T, N, 2]`` -> ``[B, T, N, D]``."""
    _check_inputs(features, tracks)
    b, t, g, _, d = features.shape
    n = tracks.shape[2]
    ix = nearest_reference_indices(tracks[..., 0], g)
    iy = nearest_reference_indices(tracks[..., 1], g)
    inside = (ix >= 0) & (ix < g) & (iy >= 0) & (iy < g)
    flat_index = torch.where(inside, iy * g + ix, torch.zeros_like(ix))  # [B, T, N]
    grid = features.reshape(b * t, g * g, d)
    gathered = torch.gather(grid, 1, flat_index.reshape(b * t, n, 1).expand(b * t, n, d))
    gathered = gathered.reshape(b, t, n, d)
    return gathered * inside.unsqueeze(-1).to(gathered.dtype)


def sample_bilinear(features: Tensor, tracks: Tensor) -> Tensor:
    """Bilinear sampling between patch centres (see the module docstring). Same shapes as the nearest one."""
    _check_inputs(features, tracks)
    b, t, g, _, d = features.shape
    n = tracks.shape[2]
    grid = features.reshape(b * t, g, g, d).permute(0, 3, 1, 2)  # [BT, D, G, G]
    points = tracks.reshape(b * t, 1, n, 2).to(grid.dtype)
    sampled = F.grid_sample(grid, points, mode="bilinear", padding_mode="border", align_corners=False)
    sampled = sampled.reshape(b, t, d, n).transpose(2, 3)  # [B, T, N, D]
    inside = (tracks.abs() <= 1).all(dim=-1)
    return sampled * inside.unsqueeze(-1).to(sampled.dtype)


def sample_tokens(features: Tensor, tracks: Tensor, mode: str = "nearest_reference") -> Tensor:
    """Sample one token per (frame, point): ``[B, T, G, G, D]`` x ``[B, T, N, 2]`` -> ``[B, T, N, D]``.

    ``mode`` is ``"nearest_reference"`` (default, as the original) or ``"bilinear"``; see the module
    docstring for the exact coordinate conventions.
    """
    if mode == "nearest_reference":
        return sample_nearest_reference(features, tracks)
    if mode == "bilinear":
        return sample_bilinear(features, tracks)
    raise ValueError(f"unknown sampling mode {mode!r}; expected one of {SAMPLING_MODES}")
