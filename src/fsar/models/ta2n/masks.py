"""Soft box masks and the spatial pooling weights of TA2N's action coordination module (ACM).

Liu et al., "TA2N: Two-Stage Action Alignment Network for Few-shot Action Recognition", AAAI 2022, §3.3
(spatial coordination). See also ``/work/shared/specs/ta2n.md`` §3.5.

A predicted offset ``o = (o_x, o_y)`` in normalised feature-map coordinates ([-1, 1] spans the map) shifts a
box that covers the whole map. Each axis gets a profile ``f(g + o)`` over its grid ``g_j = -1 + 2 j / (L - 1)``:
1 strictly inside (-1, 1), then a linear ramp that falls to 0 one grid cell outside. The mask is the outer
product ``M[i, j] = f_y(g_i + o_y) * f_x(g_j + o_x)`` (rows = H = y, columns = W = x). The original assumed a
square map; here each axis uses its own length, which reduces to the original when H == W.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# The 9 fixed perturbation directions of the original (multiplied by the perturbation size, 0.2 by default).
PERTURBATION_DIRECTIONS: tuple[tuple[int, int], ...] = (
    (0, 0),
    (0, 1),
    (1, 0),
    (0, -1),
    (-1, 0),
    (1, 1),
    (-1, -1),
    (1, -1),
    (-1, 1),
)


def _axis_profile(shift: Tensor, length: int) -> Tensor:
    """``f(g_j + shift)`` for j < length: shift (...,) -> (..., length)."""
    if length < 2:
        raise ValueError(f"soft box mask needs a feature map of at least 2 cells per axis; got {length}")
    grid = torch.arange(length, device=shift.device, dtype=shift.dtype) / (length - 1) * 2 - 1
    v = grid + shift.unsqueeze(-1)
    inside = (v > -1) & (v < 1)
    ramp = F.relu(1 - (v.abs() - 1) * ((length - 1) / 2))
    return torch.where(inside, torch.ones_like(v), ramp)


def soft_box_mask(offsets: Tensor, height: int, width: int) -> Tensor:
    """Soft box masks for offsets ``(..., 2)`` with (x, y) order -> ``(..., height, width)``.

    The hard inside/outside step carries no gradient; gradients reach the offsets only through the ramp cells
    (as in the original ``gen_mask``).
    """
    if offsets.shape[-1] != 2:
        raise ValueError(f"offsets must end with a (x, y) axis of size 2; got shape {tuple(offsets.shape)}")
    fx = _axis_profile(offsets[..., 0], width)  # (..., W)
    fy = _axis_profile(offsets[..., 1], height)  # (..., H)
    return fy.unsqueeze(-1) * fx.unsqueeze(-2)


def perturbation_offsets(size: float, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """The 9 perturbation offsets ``size * PERTURBATION_DIRECTIONS`` as a (9, 2) tensor."""
    return torch.tensor(PERTURBATION_DIRECTIONS, dtype=dtype, device=device) * size


def pooling_weights(offsets: Tensor, height: int, width: int) -> Tensor:
    """Spatial pooling weights from perturbed offsets ``(B, T, S, 2)`` -> ``(B, T, H, W)``.

    Each of the S masks is normalised to sum 1 over the map, then the S maps are averaged, so every output map
    sums to 1.
    """
    mask = soft_box_mask(offsets, height, width)  # B, T, S, H, W
    area = mask.sum((-2, -1), keepdim=True)
    return (mask / area).mean(-3)
