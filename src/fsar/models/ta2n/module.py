"""TA2N, the two-stage action alignment network (the module of the original code, ``models/ta2n.py``).

Liu et al., "TA2N: Two-Stage Action Alignment Network for Few-shot Action Recognition", AAAI 2022.
See ``/work/shared/specs/ta2n.md`` §3 for the behaviour reproduced here and §8 for the fixed bugs.

    ta2n = TA2N(T=8, shot=1, dim=(2048, 2048), first_stage=TTM, second_stage=ACM)
    pairs, offsets = ta2n(support, query)          # support (n*k, C, T, H, W) class-major, query (m, C, T, H, W)
    dist = timewise_cos(pairs[:, :, :C], pairs[:, :, C:])   # (n, m); logits = -dist.T

Stage 1 (TTM) warps every video in time on its own (support and query in two calls, i.e. two BatchNorm
batches in train mode). For shot > 1 the shots of each class are fused into one prototype and the queries are
projected (§3.4). Stage 2 (ACM) coordinates every (class, query) pair in time and space and pools each frame to
one C-vector: pairs (n, m, 2C, T, 1, 1) and offsets (n*m, T, 2). Without ACM, pairs are the un-pooled
(n, m, 2C, T, H, W) concatenation and offsets are None.

Differences from the original, all deliberate: ``second_stage=ACM`` (the class, as its README shows) really
enables ACM (the original silently dropped it); the second output is the offsets (the original returned the
broadcast raw query); the perturbation is a registered buffer; nothing pins a device (devices come from the inputs); H and W are read
from the input (the original assumed 7×7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fsar.models.ta2n.acm import ACM
from fsar.models.ta2n.fusion import MultiShotFusion
from fsar.models.ta2n.ttm import TTM, source_coordinates

IMPLS = ("fast", "reference")


@dataclass
class TA2NDiagnostics:
    """What TA2N decided for one episode (all tensors detached).

    Attributes:
        num_frames: T.
        shot: k.
        theta_support: TTM warp (a, b) per support video (n*k, 2), or None without TTM.
        theta_query: TTM warp (a, b) per query video (m, 2), or None without TTM.
        attention: ACM temporal attention (n, m, T, T) (support frame x -> query frame y), or None without ACM.
        offsets: ACM raw spatial offsets (n*m, T, 2) in normalised map coordinates ((x, y), before the
            perturbations), or None without ACM.
        fusion_attention: multi-shot re-timing attention (n, k, T, T) (shot frame x -> reference frame y), or
            None for shot == 1.
        padding: TTM's padding mode (for :meth:`source_frames`).
    """

    num_frames: int
    shot: int
    theta_support: Tensor | None = None
    theta_query: Tensor | None = None
    attention: Tensor | None = None
    offsets: Tensor | None = None
    fusion_attention: Tensor | None = None
    padding: str = "zeros"

    def source_frames(self, which: str = "support") -> Tensor | None:
        """TTM's continuous source frame index u_i per video and target frame i: (videos, T), or None."""
        if which not in ("support", "query"):
            raise ValueError(f"which must be 'support' or 'query'; got {which!r}")
        theta = self.theta_support if which == "support" else self.theta_query
        if theta is None:
            return None
        return source_coordinates(theta, self.num_frames, self.padding)


def _build_stage(value: object, base: type, name: str, **kwargs) -> nn.Module | None:
    if value is None or value is False:
        return None
    if value is True:
        return base(**kwargs)
    if isinstance(value, type) and issubclass(value, base):
        return value(**kwargs)
    raise TypeError(
        f"TA2N {name} must be True / False / None or the class {base.__name__} (or a subclass); got {value!r}"
    )


class TA2N(nn.Module):
    """Two-stage action alignment network.

    Args:
        T: frames per clip. shot: shots per class (support is class-major: index = class * shot + shot_index).
        dim: (C, C'): input channels and width of the attention keys/queries.
        first_stage / second_stage: ``TTM`` / ``ACM`` (the class or a subclass) or True to enable; False or
            None to disable.
        impl: ``"fast"`` (default: exact shortcuts in ACM, multi-shot fusion and the TTM warp) or
            ``"reference"`` (the original's direct computations, incl. grid_sample for the warp).
        ttm_theta_init: TTM final-layer bias with zero weight (faithful (2.0, 0.0), i.e. theta = (0.964, 0) at
            init, not the identity); None keeps PyTorch's default init.
        ttm_padding: ``"zeros"`` (faithful) or ``"border"`` for frames sampled outside the clip.
        perturbation: size of ACM's 9 offset perturbations (faithful 0.2).
        perturb_at_eval: apply the perturbations at eval too (faithful True).
        offset_scale: scale of ACM's tanh offsets (faithful 0.75).
        offset_zero_init: zero ACM's final offset layer at init (faithful True).
    """

    def __init__(
        self,
        T: int = 8,
        shot: int = 1,
        dim: Sequence[int] = (2048, 2048),
        first_stage: object = TTM,
        second_stage: object = ACM,
        *,
        impl: str = "fast",
        ttm_theta_init: Sequence[float] | None = (2.0, 0.0),
        ttm_padding: str = "zeros",
        perturbation: float = 0.2,
        perturb_at_eval: bool = True,
        offset_scale: float = 0.75,
        offset_zero_init: bool = True,
    ) -> None:
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"TA2N impl must be one of {IMPLS}; got {impl!r}")
        if int(shot) < 1:
            raise ValueError(f"TA2N shot must be >= 1; got {shot}")
        self.T = int(T)
        self.shot = int(shot)
        self.dim = tuple(int(d) for d in dim)
        if len(self.dim) != 2:
            raise ValueError(f"TA2N dim must be a pair (C, C'); got {dim!r}")
        self.impl = impl
        self.ttm = _build_stage(
            first_stage,
            TTM,
            "first_stage",
            T=self.T,
            shot=self.shot,
            dim=self.dim,
            theta_init=ttm_theta_init,
            padding=ttm_padding,
            warp="matrix" if impl == "fast" else "grid_sample",
        )
        self.acm = _build_stage(
            second_stage,
            ACM,
            "second_stage",
            T=self.T,
            shot=self.shot,
            dim=self.dim,
            impl=impl,
            perturbation=perturbation,
            perturb_at_eval=perturb_at_eval,
            offset_scale=offset_scale,
            offset_zero_init=offset_zero_init,
        )
        # Always built (as in the original, so its checkpoints load); used only when shot > 1.
        self.fusion = MultiShotFusion(self.dim, impl=impl)
        self.ttm_padding = ttm_padding

    # -- the three steps, also used by TA2NClassifier -------------------------------------------------------
    def align_videos(self, videos: Tensor) -> tuple[Tensor, Tensor | None]:
        """Stage 1 on one batch of videos (one BatchNorm batch): (aligned (B, C, T, H, W), theta (B, 2) | None)."""
        self._check_videos(videos, "videos")
        if self.ttm is None:
            return videos, None
        return self.ttm.align(videos)

    def fuse_support(self, support: Tensor, shot: int) -> tuple[Tensor, Tensor | None]:
        """Class-major aligned support -> prototypes (n, C, T, H, W) and fusion attention (None if shot == 1)."""
        if support.shape[0] % shot:
            raise ValueError(
                f"TA2N: {support.shape[0]} support videos is not a multiple of shot={shot} "
                "(support must be class-major, shot videos per class)"
            )
        if shot == 1:
            return support, None
        return self.fusion.prototypes(support, shot, return_attention=True)

    def prepare_queries(self, queries: Tensor, shot: int) -> Tensor:
        """Aligned queries -> the query side of the pairs (projected by the fusion's value net if shot > 1)."""
        return self.fusion.project_queries(queries) if shot > 1 else queries

    def coordinate(self, prototypes: Tensor, queries: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Stage 2: (pairs, offsets | None, attention | None)."""
        if self.acm is None:
            n, m = prototypes.shape[0], queries.shape[0]
            pairs = torch.cat(
                [
                    prototypes.unsqueeze(1).expand(-1, m, -1, -1, -1, -1),
                    queries.unsqueeze(0).expand(n, -1, -1, -1, -1, -1),
                ],
                2,
            )
            return pairs, None, None
        return self.acm(prototypes, queries, return_attention=True)

    def _check_videos(self, x: Tensor, name: str) -> None:
        if x.dim() != 5:
            raise ValueError(f"TA2N expects {name} of shape (videos, C, T, H, W); got {tuple(x.shape)}")
        if x.shape[1] != self.dim[0] or x.shape[2] != self.T:
            raise ValueError(
                f"TA2N was built for C={self.dim[0]}, T={self.T}; {name} have shape {tuple(x.shape)} "
                "(expected (videos, C, T, H, W))"
            )

    # -- the module API of the original -------------------------------------------------------------------
    def forward(self, support: Tensor, query: Tensor, return_diagnostics: bool = False):
        """``(pairs, offsets)``, or ``(pairs, offsets, TA2NDiagnostics)`` with ``return_diagnostics=True``."""
        self._check_videos(support, "support")
        self._check_videos(query, "query")
        if support.shape[2:] != query.shape[2:]:
            raise ValueError(
                f"TA2N: support {tuple(support.shape)} and query {tuple(query.shape)} differ in (T, H, W)"
            )
        support_aligned, theta_support = self.align_videos(support)
        query_aligned, theta_query = self.align_videos(query)
        prototypes, fusion_attention = self.fuse_support(support_aligned, self.shot)
        queries = self.prepare_queries(query_aligned, self.shot)
        pairs, offsets, attention = self.coordinate(prototypes, queries)
        if not return_diagnostics:
            return pairs, offsets

        def detached(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.detach()

        diagnostics = TA2NDiagnostics(
            num_frames=self.T,
            shot=self.shot,
            theta_support=detached(theta_support),
            theta_query=detached(theta_query),
            attention=detached(attention),
            offsets=detached(offsets),
            fusion_attention=detached(fusion_attention),
            padding=self.ttm_padding,
        )
        return pairs, offsets, diagnostics
