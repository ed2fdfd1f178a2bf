"""The frame-wise cosine distance of TA2N (distance between aligned support and query sequences).

Liu et al., "TA2N: Two-Stage Action Alignment Network for Few-shot Action Recognition", AAAI 2022, §3.4.
See ``/work/shared/specs/ta2n.md`` §4.1: d[n, m] = sum_t (1 - cos(x[n, m, :, t], y[n, m, :, t])), in [0, 2T].
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def timewise_cos(x: Tensor, y: Tensor, eps: float = 1e-12) -> Tensor:
    """Sum over frames of (1 - cosine) between x and y of shape (n, m, C, T, ...) -> (n, m).

    Everything after the frame axis (C and any trailing spatial axes) forms the per-frame vector, so with ACM
    off (maps (n, m, C, T, H, W)) each frame's whole C·H·W map is compared. Vectors are L2-normalised with
    ``eps`` as in ``F.normalize``. Logits are ``-timewise_cos(...).T`` (no temperature).
    """
    if x.shape != y.shape or x.dim() < 4:
        raise ValueError(
            f"timewise_cos expects two tensors of the same shape (n, m, C, T, ...); got {tuple(x.shape)} "
            f"and {tuple(y.shape)}"
        )
    n, m, _, t = x.shape[:4]
    xs = F.normalize(x.transpose(2, 3).reshape(n, m, t, -1), p=2, dim=-1, eps=eps)
    ys = F.normalize(y.transpose(2, 3).reshape(n, m, t, -1), p=2, dim=-1, eps=eps)
    return (1 - (xs * ys).sum(-1)).sum(-1)
