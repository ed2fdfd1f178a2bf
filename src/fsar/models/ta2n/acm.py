"""ACM, the action coordination module of TA2N (stage 2: pair-wise temporal and spatial coordination).

Liu et al., "TA2N: Two-Stage Action Alignment Network for Few-shot Action Recognition", AAAI 2022, §3.3.
See ``/work/shared/specs/ta2n.md`` §3.5 for the exact behaviour reproduced here.

Temporal coordination: a query-to-support frame attention (softmax over query frames) adds a spatially
constant, attention-weighted query value vector to the (un-aligned) query frames; the support gets its own
value vector. Spatial coordination: ``offset_net`` (the original ``mvnet``) predicts per pair and per frame a
2-D offset o; support and query are pooled with soft box masks shifted by +o and -o (each averaged over 9 fixed
perturbations of the offset, which the original applies at train *and* eval time).

``impl="fast"`` (default) never forms the n·m concatenated 2C-channel maps: see :mod:`.acm_fast`. It also pools
the query as ``sum_hw W·Q[m] + ctx[n, m]`` (the pooling weights sum to 1), so the (n, m, C, T, H, W) query
tensor is never materialised. ``impl="reference"`` is the original's direct computation.

On CUDA the fast path computes the direct form when an episode has few (class, query) pairs
(``CUDA_MIN_PAIRS_FOR_FAST``): measured on an H200 (``../shared/findings/gpu-h200-2026-12-04.md``), the shortcut's
extra small kernels made ACM slower than the direct form at 5-way 5-shot with 5 queries (25 pairs: 3.95 vs
2.70 ms forward, 10.19 vs 9.10 ms forward + backward), while at 5-way 1-shot with 25 queries (125 pairs) it was
faster (5.68 vs 8.31 ms). The threshold lies between those two measured shapes; ``benchmarks/bench_ta2n_acm.py
--device cuda`` (a ``gpu_check`` step) re-measures both. On the CPU the shortcut wins at both shapes (BENCHMARKS.md)
and is always used; there the offset net's second convolution also skips the zero-padding taps on maps of at most
``CPU_SMALL_MAP_MAX_POSITIONS`` positions (:func:`.acm_fast.small_map_conv3d`). Both forms are exact; only the
order of floating-point additions differs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsar.models.ta2n.acm_fast import paired_conv3d, small_map_conv3d
from fsar.models.ta2n.masks import perturbation_offsets, pooling_weights

IMPLS = ("fast", "reference")
CUDA_MIN_PAIRS_FOR_FAST = 64  # below this many (class, query) pairs, "fast" computes the direct form on CUDA
# On the CPU, "fast" computes the offset net's second convolution with acm_fast.small_map_conv3d on maps of at most
# this many positions: measured side by side, alone (2026-12-04, one thread, AMD Zen 3, forward + backward, 128
# channels, T 8): 2x2 maps 2.1-2.3x faster at 125 pairs and 1.7-1.8x at 25; 1x1 about 15x; 3x3 0.8-0.9x and 4x4
# 0.65x (so not used there).
CPU_SMALL_MAP_MAX_POSITIONS = 4


def uses_paired_shortcut(impl: str, device: torch.device, pairs: int) -> bool:
    """Whether ACM takes the paired-convolution shortcut of :mod:`.acm_fast` (see the module docstring)."""
    if impl == "reference":
        return False
    return device.type != "cuda" or pairs >= CUDA_MIN_PAIRS_FOR_FAST


class OffsetNet(nn.Module):
    """The original ``mvnet``: (B, 2C, T, H, W) pair maps -> tanh offsets (B, T, 2).

    Conv3d(2C->128) -> BN -> MaxPool(1,2,2) -> ReLU -> Conv3d(128->128) -> BN -> MaxPool(1,2,2) -> ReLU ->
    max over (H, W) -> Conv1d(128->64) -> ReLU -> Conv1d(64->2) -> tanh. The original's ``mvnet.{0,1,4,5,10,12}``.
    """

    def __init__(self, in_channels: int, zero_init: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, 128, 3, padding=1)
        self.bn1 = nn.BatchNorm3d(128)
        self.conv2 = nn.Conv3d(128, 128, 3, padding=1)
        self.bn2 = nn.BatchNorm3d(128)
        self.fc1 = nn.Conv1d(128, 64, 1)
        self.fc2 = nn.Conv1d(64, 2, 1)
        if zero_init:
            with torch.no_grad():
                self.fc2.weight.zero_()
                self.fc2.bias.zero_()

    def head(self, z: Tensor, small_map_gemm: bool = False) -> Tensor:
        """Everything after the first convolution: (B, 128, T, H, W) -> (B, T, 2). ``small_map_gemm``: on the CPU,
        the second convolution by :func:`.acm_fast.small_map_conv3d` on small maps (``CPU_SMALL_MAP_MAX_POSITIONS``).
        """
        y = F.relu(F.max_pool3d(self.bn1(z), (1, 2, 2)))
        small = y.shape[-2] * y.shape[-1] <= CPU_SMALL_MAP_MAX_POSITIONS and y.device.type == "cpu"
        if small_map_gemm and small:
            y = small_map_conv3d(y, self.conv2.weight, self.conv2.bias)
        else:
            y = self.conv2(y)
        y = F.relu(F.max_pool3d(self.bn2(y), (1, 2, 2)))
        y = F.adaptive_max_pool3d(y, (y.shape[2], 1, 1)).flatten(2)  # B, 128, T
        return torch.tanh(self.fc2(F.relu(self.fc1(y)))).transpose(1, 2)

    def forward(self, pairs: Tensor, small_map_gemm: bool = False) -> Tensor:
        return self.head(self.conv1(pairs), small_map_gemm)


class ACM(nn.Module):
    """Action coordination module.

    Args:
        T: frames per clip; shot: kept for signature parity with the original (unused here).
        dim: (C, C'): C input channels, C' key/query width of the temporal attention (scale 1/sqrt(C')).
        impl: ``"fast"`` (exact, default; on CUDA the direct form below ``CUDA_MIN_PAIRS_FOR_FAST`` pairs) or
            ``"reference"`` (the original's direct computation).
        perturbation: size of the 9 fixed offset perturbations (faithful 0.2). Stored as the non-persistent
            buffer ``perturb`` (9, 2).
        perturb_at_eval: apply the perturbations in eval mode too (faithful True; they always apply in training).
        offset_scale: raw offsets are ``offset_scale * tanh(...)`` (faithful 0.75).
        offset_zero_init: zero the final offset layer (faithful True), so offsets start at 0.

    Forward: ``acm(prototypes (n, C, T, H, W), queries (m, C, T, H, W))`` -> ``(pairs (n, m, 2C, T, 1, 1),
    offsets (n*m, T, 2))``, plus the attention (n, m, T, T) when ``return_attention=True``.
    """

    def __init__(
        self,
        T: int = 8,
        shot: int = 1,
        dim: Sequence[int] = (2048, 2048),
        *,
        impl: str = "fast",
        perturbation: float = 0.2,
        perturb_at_eval: bool = True,
        offset_scale: float = 0.75,
        offset_zero_init: bool = True,
    ) -> None:
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"ACM impl must be one of {IMPLS}; got {impl!r}")
        self.T = int(T)
        self.shot = int(shot)
        self.dim = tuple(int(d) for d in dim)
        self.impl = impl
        self.perturb_at_eval = bool(perturb_at_eval)
        self.offset_scale = float(offset_scale)
        c, c_attn = self.dim
        self.key_proj = nn.Conv1d(c, c_attn, 1, bias=False)
        self.query_proj = nn.Conv1d(c, c_attn, 1, bias=False)
        self.value_proj = nn.Conv1d(c, c, 1, bias=False)
        self.offset_net = OffsetNet(2 * c, zero_init=offset_zero_init)
        self.register_buffer("perturb", perturbation_offsets(float(perturbation)), persistent=False)

    def _check(self, prototypes: Tensor, queries: Tensor) -> None:
        if prototypes.dim() != 5 or queries.dim() != 5:
            raise ValueError(
                "ACM expects prototypes (n, C, T, H, W) and queries (m, C, T, H, W); got shapes "
                f"{tuple(prototypes.shape)} and {tuple(queries.shape)}"
            )
        if prototypes.shape[1:] != queries.shape[1:]:
            raise ValueError(
                f"ACM: prototypes {tuple(prototypes.shape)} and queries {tuple(queries.shape)} differ in (C, T, H, W)"
            )
        _, c, _, h, w = prototypes.shape
        if c != self.dim[0]:
            raise ValueError(f"ACM was built for C={self.dim[0]} channels; got C={c}")
        if min(h, w) < 4:
            raise ValueError(
                f"ACM's offset net pools H and W twice by 2, so H, W must be >= 4; got H={h}, W={w}"
            )

    def temporal_attention(self, prototypes: Tensor, queries: Tensor) -> Tensor:
        """A[n, m, x, y]: support frame x of class n attends to query frame y of query m (softmax over y)."""
        keys = self.key_proj(prototypes.mean((-2, -1)))  # n, C', T
        qs = self.query_proj(queries.mean((-2, -1)))  # m, C', T
        return (torch.einsum("ncx,mcy->nmxy", keys, qs) / self.dim[1] ** 0.5).softmax(-1)

    def forward(
        self, prototypes: Tensor, queries: Tensor, return_attention: bool = False
    ) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
        self._check(prototypes, queries)
        n, c, t, h, w = prototypes.shape
        m = queries.shape[0]
        attention = self.temporal_attention(prototypes, queries)
        query_values = self.value_proj(queries.mean((-2, -1)))  # m, C, T
        support_values = self.value_proj(prototypes.mean((-2, -1)))  # n, C, T
        context = torch.einsum("nmxy,mcy->nmcx", attention, query_values)  # n, m, C, T
        support_maps = prototypes + support_values[..., None, None]  # n, C, T, H, W
        direct = not uses_paired_shortcut(self.impl, queries.device, n * m)

        if direct:
            query_maps = queries.unsqueeze(0) + context[..., None, None]  # n, m, C, T, H, W
            pair_maps = torch.cat([support_maps.unsqueeze(1).expand(-1, m, -1, -1, -1, -1), query_maps], 2)
            raw = self.offset_net(pair_maps.reshape(n * m, 2 * c, t, h, w), self.impl == "fast")
        else:
            conv = self.offset_net.conv1
            z = paired_conv3d(
                conv.weight, conv.bias, support_maps, queries, attention, query_values, conv.padding
            )
            raw = self.offset_net.head(z, small_map_gemm=True)
        raw = raw * self.offset_scale  # n*m, T, 2

        if self.training or self.perturb_at_eval:
            offsets = raw.unsqueeze(2) + self.perturb.to(raw.dtype)  # n*m, T, 9, 2
        else:
            offsets = raw.unsqueeze(2)
        w_support = pooling_weights(offsets, h, w).reshape(n, m, t, h, w)
        w_query = pooling_weights(-offsets, h, w).reshape(n, m, t, h, w)

        if direct:
            pooled_support = (w_support.unsqueeze(2) * support_maps.unsqueeze(1)).sum((-2, -1))  # n, m, C, T
            pooled_query = (w_query.unsqueeze(2) * query_maps).sum((-2, -1))
        else:
            pooled_support = torch.einsum("nmthw,ncthw->nmct", w_support, support_maps)
            pooled_query = torch.einsum("nmthw,mcthw->nmct", w_query, queries) + context
        pairs = torch.cat([pooled_support, pooled_query], 2)[..., None, None]
        if return_attention:
            return pairs, raw, attention
        return pairs, raw
