"""Differentiable (soft) dynamic time warping with OTAM's padding and ordered moves.

Soft-DTW: Cuturi & Blondel, "Soft-DTW: a Differentiable Loss Function for Time-Series", ICML 2017 (the min of
the DTW recursion becomes ``softmin_gamma(a) = -gamma log sum exp(-a / gamma)``; gamma = 0 is the hard min).
OTAM: Cao et al., "Few-Shot Video Classification via Temporal Alignment", CVPR 2020, §3.3.

Notation: ``dist[..., i, j]`` is the cost of matching frame i of the aligned sequence (rows; the query in
OTAM) with frame j of the reference (columns; the class prototype). With ``pad=True`` a zero-cost column is
added before and after the reference, giving a matrix P of n rows and m + 2 columns. The cumulative cost is

    R[i, j] = P[i, j] + softmin_gamma({R[p] : p an allowed predecessor of (i, j)}),   R[0, 0] = P[0, 0],

and the result is R[n - 1, m + 1] (the last real cell R[n - 1, m - 1] when ``pad=False``). Moves into (i, j):

* ``moves="otam"`` (the paper's constraint): from (i-1, j-1) and (i, j-1) inside the real columns, and also
  from (i-1, j) in the two padded columns. The path may run down the first padded column and leave the last
  one from any row, at no cost: leading and trailing query frames can stay unmatched, while every reference
  (prototype) frame is matched exactly once and in order, so a path always sums m costs.
* ``moves="dtw"``: all three moves everywhere (classic DTW; with ``pad=True`` this is the variant of TA2N's
  soft-DTW module, where a reference frame may also take several query frames).
* ``moves="otam_trx"``: as ``"otam"``, plus the vertical move into the first real column (i-1, 1) -> (i, 1): the
  recursion ``OTAM_cum_dist`` of the TRX-family code (TRX's repository, HyRSM, MoLo and CLIP-FSAR), where
  several query frames may be matched to the first reference frame. Its top row is a plain running sum and
  its soft-min a log-sum-exp, as here (clip_fsar.md §3, step 6).

The recursion runs over anti-diagonals (cells with the same i + j do not depend on each other), so a matrix
costs n + m + 1 vectorised steps, batched over every leading axis (all query-class pairs at once).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

MOVES = ("otam", "dtw", "otam_trx")
# the move sets that need the zero-cost padding columns
_PADDED_MOVES = ("otam", "otam_trx")


def soft_min(values: Tensor, gamma: float, dim: int = -1) -> Tensor:
    """``-gamma * logsumexp(-values / gamma)`` along ``dim``; the plain minimum when ``gamma == 0``."""
    if gamma == 0:
        return values.amin(dim)
    return -gamma * torch.logsumexp(-values / gamma, dim=dim)


def soft_dtw(dist: Tensor, gamma: float = 0.1, moves: str = "otam", pad: bool = True) -> Tensor:
    """Soft-DTW cost of every matrix ``dist[..., n, m]`` -> ``[...]`` (see the module docstring).

    ``gamma`` >= 0 (0: hard DTW). ``moves="otam"`` and ``"otam_trx"`` need ``pad=True``. Half-precision input is computed in
    float32 and returned in its own dtype.
    """
    if moves not in MOVES:
        raise ValueError(f"moves must be one of {MOVES}; got {moves!r}")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0; got {gamma}")
    if dist.dim() < 2 or dist.shape[-1] < 1 or dist.shape[-2] < 1:
        raise ValueError(f"dist must have shape [..., n, m] with n, m >= 1; got {tuple(dist.shape)}")
    if moves in _PADDED_MOVES and not pad:
        raise ValueError(
            f"moves={moves!r} needs pad=True (without the padded columns rows can only advance diagonally)"
        )
    out_dtype = dist.dtype
    work = dist if dist.dtype in (torch.float32, torch.float64) else dist.float()
    if pad:
        work = F.pad(work, (1, 1))
    n, w = work.shape[-2:]
    batch = work.shape[:-2]
    device = work.device

    # A finite stand-in for +inf (an infinite one gives NaN gradients through logsumexp): far above any real
    # path cost and at least 1000 * gamma above it, so exp(-big / gamma) underflows to an exact 0.
    max_abs = work.detach().abs().amax() if work.numel() else work.new_zeros(())
    big = 2 * (n + w) * (max_abs + 2 * gamma) + 1000 * gamma + 1

    rows = torch.arange(n, device=device)
    diags = torch.arange(n + w - 1, device=device)
    cols = diags[:, None] - rows[None, :]  # [K, n]: column of row i on anti-diagonal k
    in_range = (cols >= 0) & (cols < w)
    cols_c = cols.clamp(0, w - 1)
    cost = work[..., rows[None, :].expand_as(cols_c), cols_c]  # [..., K, n]
    if moves == "dtw":
        vertical_ok = torch.ones_like(in_range)
    elif moves == "otam":
        vertical_ok = (cols_c == 0) | (cols_c == w - 1)
    else:  # otam_trx: also into the first real column
        vertical_ok = (cols_c <= 1) | (cols_c == w - 1)

    fill = big.expand(*batch, 1)

    def from_previous_row(r: Tensor) -> Tensor:  # entry i <- entry i - 1 (row 0 has no previous row)
        return torch.cat([fill, r[..., :-1]], dim=-1)

    start = torch.cat([cost[..., 0, :1], big.expand(*batch, n - 1)], dim=-1)
    prev2, prev1 = None, start  # anti-diagonals k - 2 and k - 1, indexed by row
    for k in range(1, n + w - 1):
        horizontal = prev1  # (i, j - 1)
        vertical = torch.where(vertical_ok[k], from_previous_row(prev1), big)  # (i - 1, j)
        diagonal = from_previous_row(prev2) if prev2 is not None else big.expand_as(prev1)  # (i - 1, j - 1)
        step = cost[..., k, :] + soft_min(torch.stack([diagonal, vertical, horizontal], dim=-1), gamma)
        prev2, prev1 = prev1, torch.where(in_range[k], step, big)
    return prev1[..., n - 1].to(out_dtype)


def otam_distance(
    dist: Tensor, gamma: float = 0.1, moves: str = "otam", bidirectional: bool = True
) -> Tensor:
    """OTAM distance of ``dist[..., n, m]`` (query rows, prototype columns), padded along the prototype axis.

    With ``bidirectional`` (as in the field's OTAM re-implementations) the result is the mean of the
    query-to-prototype and prototype-to-query costs (the second on the transposed matrix).
    """
    forward = soft_dtw(dist, gamma=gamma, moves=moves, pad=True)
    if not bidirectional:
        return forward
    backward = soft_dtw(dist.transpose(-1, -2), gamma=gamma, moves=moves, pad=True)
    return 0.5 * (forward + backward)
