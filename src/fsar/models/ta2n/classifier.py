"""TA2NClassifier: the few-shot classifier of the original TA2N training script on fsar's API.

Liu et al., "TA2N: Two-Stage Action Alignment Network for Few-shot Action Recognition", AAAI 2022.
See ``/work/shared/specs/ta2n.md`` §2 (backbone, dropout), §3 (TA2N) and §4 (distance, logits, loss).

- ``encode``: backbone per frame -> maps [B, T, C, h, w] -> dropout (p=0.5, element-wise on the maps) ->
  (B, C, T, h, w) -> TTM alignment. Each call is one BatchNorm batch, so support and query get separate BN
  statistics in train mode, as in the original; in eval mode a clip's features depend on the clip alone.
- ``process_support_set``: class-major support -> prototypes (multi-shot fusion when shot > 1).
- ``forward``: ACM on every (class, query) pair -> frame-wise cosine distance d (way, Q) -> logits = -d.T
  (no temperature), optionally LayerNorm over the classes (``dist_norm``, off as in the original).
- ``loss``: cross-entropy **summed** over the queries (``loss_reduction="sum"``); the trainer divides by the
  number of tasks per update.

The shot is read from each episode's support labels (or fixed with ``shot=``). Registered as ``"ta2n"`` in
``fsar.models.registry.MODELS``. The logit LayerNorm (``logit_norm``) always exists,
as in the original (so its checkpoints load with ``strict=True``), and is applied only with ``dist_norm=True``.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from fsar.data.batch import ClipBatch
from fsar.models.base import Features, FewShotClassifier, full_precision
from fsar.models.registry import MODELS
from fsar.models.ta2n.distance import timewise_cos
from fsar.models.ta2n.module import TA2N, TA2NDiagnostics

LOSS_REDUCTIONS = ("sum", "mean")


class TA2NClassifier(FewShotClassifier):
    """Backbone + dropout + TA2N + frame-wise cosine distance.

    Args:
        backbone: frames [N, 3, H, W] -> maps [N, C, h, w]; its ``out_channels`` gives C unless ``dim`` is given.
        num_frames: frames per clip (T).
        way: classes per episode; size of the (optional) logit LayerNorm.
        shot: shots per class. None (default) reads it from each episode's support labels; an int makes
            episodes with another shot an error (the original fixed the shot at construction).
        dim: (C, C') for TA2N; default (out_channels, out_channels).
        dropout: element-wise dropout on the backbone maps (faithful 0.5).
        loss_reduction: ``"sum"`` (faithful) or ``"mean"`` over the queries.
        dist_norm: LayerNorm(way) over the logits (faithful default False).
        first_stage, second_stage, **ta2n_options: passed to :class:`TA2N` (``impl``, ``ttm_theta_init``, ...).
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        *,
        num_frames: int = 8,
        way: int = 5,
        shot: int | None = None,
        dim: tuple[int, int] | None = None,
        dropout: float = 0.5,
        loss_reduction: str = "sum",
        dist_norm: bool = False,
        first_stage: object = True,
        second_stage: object = True,
        **ta2n_options: Any,
    ) -> None:
        super().__init__(backbone)
        if loss_reduction not in LOSS_REDUCTIONS:
            raise ValueError(f"loss_reduction must be one of {LOSS_REDUCTIONS}; got {loss_reduction!r}")
        if dim is None:
            channels = getattr(backbone, "out_channels", None)
            if channels is None:
                raise ValueError(
                    "TA2NClassifier needs dim=(C, C') or a backbone with an `out_channels` attribute"
                )
            dim = (int(channels), int(channels))
        if shot is not None and int(shot) < 1:
            raise ValueError(f"shot must be >= 1 or None; got {shot}")
        self.shot = None if shot is None else int(shot)
        self.num_frames = int(num_frames)
        self.num_ways = int(way)
        self.loss_reduction = loss_reduction
        self.dist_norm = bool(dist_norm)
        self.feature_dropout = nn.Dropout(p=float(dropout))
        self.ta2n = TA2N(
            T=self.num_frames,
            shot=self.shot or 1,
            dim=dim,
            first_stage=first_stage,
            second_stage=second_stage,
            **ta2n_options,
        )
        self.logit_norm = nn.LayerNorm(self.num_ways)
        self._prototypes: Tensor | None = None
        self._shot = 1
        self._support_theta: Tensor | None = None
        self._fusion_attention: Tensor | None = None
        self.last_diagnostics: TA2NDiagnostics | None = None

    # -- per-video part -----------------------------------------------------------------------------------
    def encode(self, batch: ClipBatch) -> dict[str, Tensor]:
        """``{"maps": TTM-aligned maps (B, C, T, h, w), "theta": (B, 2)}`` (no "theta" without TTM)."""
        frames = batch.frames
        if frames.dim() != 5 or frames.shape[1] != self.num_frames:
            raise ValueError(
                f"TA2NClassifier expects frames [B, T={self.num_frames}, 3, H, W]; got {tuple(frames.shape)}"
            )
        maps = self.frame_features(frames)
        if maps.dim() != 5:
            raise ValueError(
                f"TA2N needs spatial feature maps [B, T, C, h, w] from the backbone; got {tuple(maps.shape)}"
            )
        maps = self.feature_dropout(maps).transpose(1, 2)  # B, C, T, h, w
        aligned, theta = self.ta2n.align_videos(maps)
        return {"maps": aligned} if theta is None else {"maps": aligned, "theta": theta}

    @staticmethod
    def _maps(features: Features) -> Tensor:
        if isinstance(features, Tensor):
            return features
        if "maps" not in features:
            raise KeyError(f"TA2N features must hold 'maps' (from encode); got keys {sorted(features)}")
        return features["maps"]

    # -- pairwise part ------------------------------------------------------------------------------------
    def process_support_set(self, support: Features, support_labels: Tensor) -> None:
        way, shot = self.check_class_major(support_labels)
        if self.shot is not None and shot != self.shot:
            raise ValueError(
                f"TA2NClassifier was built for shot={self.shot}; this support set has shot={shot} "
                "(build it with shot=None to read the shot from each episode)"
            )
        maps = self._maps(support)
        if maps.shape[0] != support_labels.numel():
            raise ValueError(
                f"{maps.shape[0]} support feature rows but {support_labels.numel()} support labels"
            )
        self.way, self._shot = way, shot
        self._prototypes, self._fusion_attention = self.ta2n.fuse_support(maps, shot)
        self._support_theta = support.get("theta") if isinstance(support, dict) else None

    def forward(self, query: Features) -> Tensor:
        if self._prototypes is None:
            raise RuntimeError("call process_support_set(support, support_labels) before forward(query)")
        queries = self.ta2n.prepare_queries(self._maps(query), self._shot)
        pairs, offsets, attention = self.ta2n.coordinate(self._prototypes, queries)
        c = self.ta2n.dim[0]
        fp32, (support_side, query_side) = full_precision(pairs[:, :, :c], pairs[:, :, c:])
        with fp32:
            logits = -timewise_cos(support_side, query_side).transpose(0, 1)  # Q, way
        if self.dist_norm:
            if logits.shape[1] != self.num_ways:
                raise ValueError(
                    f"dist_norm LayerNorm was built for way={self.num_ways}; this episode has way={logits.shape[1]}"
                )
            logits = self.logit_norm(logits)
        query_theta = query.get("theta") if isinstance(query, dict) else None
        self.last_diagnostics = TA2NDiagnostics(
            num_frames=self.num_frames,
            shot=self._shot,
            theta_support=None if self._support_theta is None else self._support_theta.detach(),
            theta_query=None if query_theta is None else query_theta.detach(),
            attention=None if attention is None else attention.detach(),
            offsets=None if offsets is None else offsets.detach(),
            fusion_attention=None if self._fusion_attention is None else self._fusion_attention.detach(),
            padding=self.ta2n.ttm_padding,
        )
        return logits

    def loss(self, logits: Tensor, query_labels: Tensor, **context: Any) -> Tensor:
        """Cross-entropy over the queries, summed (faithful) or averaged (``loss_reduction``)."""
        return F.cross_entropy(logits, query_labels, reduction=self.loss_reduction)


MODELS.register("ta2n")(TA2NClassifier)
