"""Exact fast evaluation of the first 3-D convolution of TA2N's ACM over all (class, query) pairs.

Liu et al., "TA2N: Two-Stage Action Alignment Network for Few-shot Action Recognition", AAAI 2022, §3.3.
See ``/work/shared/specs/ta2n.md`` §3.5 (spatial coordination, first layer of ``mvnet``).

The original concatenates, for every pair (n, m), the support map P~[n] and the query map
Q~[n, m] = Q[m] + ctx[n, m] (ctx constant over (H, W)) into Z (2C channels) and convolves it: n·m convolutions
of 2C channels. The convolution is linear, so with the weight split into a support half W_s and a query half W_q:

    conv(Z[n, m]) = conv_{W_s}(P~[n]) + conv_{W_q}(Q[m]) + conv_{W_q}(ctx[n, m] broadcast) + bias.

The first two terms cost n + m convolutions of C channels instead of n·m of 2C. For the third, a spatially
constant input only sees *which* spatial taps fall inside the map at each output position (zero padding), so
W_q summed over the valid spatial taps gives at most 3×3 distinct "position classes" (corner / edge / interior
rows and columns). And ctx[n, m, :, x] = sum_y A[n, m, x, y] V[m, :, y] is itself linear in the query values
V[m], so the C-channel contraction is done once per query (U = W_cls · V[m]), and each pair only mixes U with
its T×T attention, shifted by the temporal taps (zero rows beyond the clip reproduce the temporal padding).
Everything is exact; only the order of floating-point additions changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def valid_tap_classes(length: int, kernel: int, padding: int) -> tuple[list[tuple[int, ...]], list[int]]:
    """Distinct patterns of in-range kernel taps along one axis, and each output position's pattern index.

    Position ``i`` uses tap ``j`` iff ``0 <= i + j - padding < length`` (zero padding elsewhere).
    """
    patterns = [tuple(int(0 <= i + j - padding < length) for j in range(kernel)) for i in range(length)]
    distinct = sorted(set(patterns))
    return distinct, [distinct.index(p) for p in patterns]


def paired_conv3d(
    weight: Tensor,
    bias: Tensor | None,
    support_maps: Tensor,
    query_maps: Tensor,
    attention: Tensor,
    query_values: Tensor,
    padding: Sequence[int] = (1, 1, 1),
) -> Tensor:
    """``conv3d(cat(support_maps[n], query_maps[m] + ctx[n, m]), weight, bias, padding)`` for all pairs.

    Args:
        weight: (O, 2C, kt, kh, kw), input channels = support half then query half; "same" padding
            (k = 2 p + 1 on every axis).
        bias: (O,) or None.
        support_maps: (n, C, T, H, W): the support side of every pair of class n.
        query_maps: (m, C, T, H, W): the per-query part of the query side.
        attention: (n, m, T, T): ctx[n, m, :, x] = sum_y attention[n, m, x, y] * query_values[m, :, y].
        query_values: (m, C, T).

    Returns:
        (n * m, O, T, H, W), pairs ordered n-major (pair index = n * m_total + m).
    """
    n, c, t, h, w = support_maps.shape
    m = query_maps.shape[0]
    out_channels, in_channels, kt, kh, kw = weight.shape
    pt, ph, pw = (int(p) for p in padding)
    if in_channels != 2 * c:
        raise ValueError(f"paired_conv3d: weight has {in_channels} input channels, expected 2 * C = {2 * c}")
    if (kt, kh, kw) != (2 * pt + 1, 2 * ph + 1, 2 * pw + 1):
        raise ValueError(
            f"paired_conv3d needs 'same' padding (k = 2p + 1); got kernel {(kt, kh, kw)}, padding {padding}"
        )
    if (
        query_maps.shape[1:] != (c, t, h, w)
        or attention.shape != (n, m, t, t)
        or query_values.shape != (m, c, t)
    ):
        raise ValueError(
            "paired_conv3d: inconsistent shapes: support "
            f"{tuple(support_maps.shape)}, query {tuple(query_maps.shape)}, attention {tuple(attention.shape)}, "
            f"values {tuple(query_values.shape)}"
        )
    w_support, w_query = weight[:, :c], weight[:, c:]
    support_out = F.conv3d(support_maps, w_support, bias, padding=(pt, ph, pw))  # n, O, T, H, W
    query_out = F.conv3d(query_maps, w_query, None, padding=(pt, ph, pw))  # m, O, T, H, W

    # Query weight summed over the in-range spatial taps of each position class: (R, S, O, kt, C).
    rows, row_of = valid_tap_classes(h, kh, ph)
    cols, col_of = valid_tap_classes(w, kw, pw)
    row_taps = torch.tensor(rows, dtype=weight.dtype, device=weight.device)
    col_taps = torch.tensor(cols, dtype=weight.dtype, device=weight.device)
    w_classes = torch.einsum("ocjkl,rk,sl->rsojc", w_query, row_taps, col_taps)
    r, s = len(rows), len(cols)
    # U[r, s, o, j, m, y] = sum_c w_classes[r, s, o, j, c] * V[m, c, y]: once per query.
    values = query_values.transpose(0, 1).reshape(c, m * t)
    u = (w_classes.reshape(-1, c) @ values).reshape(r, s, out_channels, kt, m, t)
    # Attention rows shifted by the temporal taps, zero beyond the clip: a_shift[n, m, x, y, j] = A[n, m, x + j - pt, y].
    a_shift = F.pad(attention, (0, 0, pt, kt - 1 - pt)).unfold(2, kt, 1)
    ctx_out = torch.einsum("nmxyj,rsojmy->nmrsox", a_shift, u)  # n, m, R, S, O, T
    row_index = torch.tensor(row_of, device=weight.device)
    col_index = torch.tensor(col_of, device=weight.device)
    ctx_full = ctx_out.index_select(2, row_index).index_select(3, col_index)  # n, m, H, W, O, T
    ctx_full = ctx_full.permute(0, 1, 4, 5, 2, 3)  # n, m, O, T, H, W
    out = support_out.unsqueeze(1) + query_out.unsqueeze(0) + ctx_full
    return out.reshape(n * m, out_channels, t, h, w)


def small_map_conv3d(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``conv3d(x, weight, bias, padding=k // 2)`` ("same" padding, odd kernel) as one matrix product per output
    position, over the input taps that fall inside the map only.

    On maps as small as the second convolution of ACM's offset net sees (the 4x4 maps of the demo pooled to 2x2:
    every output position reads the whole map, so 4 of the 9 spatial taps; 3x3 maps: 49 of 81), the zero-padding
    taps are most of a direct convolution's work; here they are never multiplied. Exact; only the order of
    floating-point additions changes. ``x``: (B, C, T, H, W); ``weight``: (O, C, kt, kh, kw); returns
    (B, O, T, H, W), contiguous.
    """
    b, c, t, h, w = x.shape
    out_channels, in_channels, kt, kh, kw = weight.shape
    if in_channels != c or kt % 2 == 0 or kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(
            f"small_map_conv3d: weight {tuple(weight.shape)} does not fit input {tuple(x.shape)} with odd kernels"
        )
    pt, ph, pw = kt // 2, kh // 2, kw // 2
    # (B, T, C, kt, H, W): the kt temporal taps of every frame, zero beyond the clip (a view)
    cols = F.pad(x, (0, 0, 0, 0, pt, pt)).unfold(2, kt, 1).permute(0, 2, 1, 5, 3, 4)
    windows: dict[tuple[int, int, int, int], Tensor] = {}
    outs = []
    for i in range(h):
        r0, r1 = max(0, i - ph), min(h, i + ph + 1)
        for j in range(w):
            c0, c1 = max(0, j - pw), min(w, j + pw + 1)
            key = (r0, r1, c0, c1)
            if key not in windows:
                windows[key] = cols[..., r0:r1, c0:c1].reshape(b * t, -1)
            taps = weight[:, :, :, r0 - i + ph : r1 - i + ph, c0 - j + pw : c1 - j + pw].reshape(
                out_channels, -1
            )
            y = windows[key] @ taps.t()
            outs.append(y if bias is None else y + bias)
    out = torch.stack(outs, -1).reshape(b, t, out_channels, h, w)
    return out.permute(0, 2, 1, 3, 4).contiguous()
