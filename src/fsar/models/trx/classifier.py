"""TRXClassifier: TRX on fsar's backbones with the two-step API. Registered as ``"trx"``.

Perrett et al., "Temporal-Relational CrossTransformers for Few-Shot Action Recognition", CVPR 2021.

- ``encode``: the backbone on every frame, globally average-pooled: ``[B, T, D]`` (the original's ResNet with
  only ``fc`` removed, i.e. after ``avgpool``). Support and query are separate calls, so in train mode their
  BatchNorm statistics are separate, as in the original. In eval mode a clip's features depend on the clip
  alone, so the caching evaluator computes them once per video.
- ``process_support_set``: groups the support by label (any order; columns follow the sorted labels) and
  embeds its tuples once per episode.
- ``forward``: the TRX head (:class:`fsar.models.trx.TRX`) -> logits ``[Q, way]``.
- ``loss``: cross-entropy **summed** over the queries (the original's ``loss``); the trainer divides by
  ``train.tasks_per_update`` (16 in the original).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from fsar.data.batch import ClipBatch
from fsar.models.base import Features, FewShotClassifier
from fsar.models.protonet import pooled_frame_features
from fsar.models.registry import MODELS
from fsar.models.trx.head import TRX, TRXSupport

LOSS_REDUCTIONS = ("sum", "mean")


class TRXClassifier(FewShotClassifier):
    """Backbone + global pooling + TRX head.

    Args:
        backbone: frames [N, 3, H, W] -> maps [N, D, h, w] (or vectors [N, D]); ``out_channels`` gives D unless
            ``feat_dim`` is set.
        num_frames, cardinalities, out_dim, dropout, apply_norm_v: see :class:`fsar.models.trx.TRX`.
        loss_reduction: ``"sum"`` (faithful) or ``"mean"`` over the queries.
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        *,
        num_frames: int = 8,
        feat_dim: int | None = None,
        cardinalities: Sequence[int] = (2, 3),
        out_dim: int = 1152,
        dropout: float = 0.1,
        apply_norm_v: bool = False,
        loss_reduction: str = "sum",
    ) -> None:
        super().__init__(backbone)
        if loss_reduction not in LOSS_REDUCTIONS:
            raise ValueError(f"loss_reduction must be one of {LOSS_REDUCTIONS}; got {loss_reduction!r}")
        feat_dim = self.resolve_feat_dim(feat_dim, backbone)
        self.num_frames = int(num_frames)
        self.loss_reduction = loss_reduction
        self.head = TRX(int(feat_dim), self.num_frames, cardinalities, out_dim, dropout, apply_norm_v)
        self._support: TRXSupport | None = None

    def encode(self, batch: ClipBatch) -> Tensor:
        frames = batch.frames
        if frames.dim() != 5 or frames.shape[1] != self.num_frames:
            raise ValueError(
                f"TRXClassifier expects frames [B, T={self.num_frames}, 3, H, W]; got {tuple(frames.shape)}"
            )
        return pooled_frame_features(self, batch)

    @staticmethod
    def _tensor(features: Features, what: str) -> Tensor:
        if not isinstance(features, Tensor):
            raise TypeError(f"TRX {what} features must be a [videos, T, D] tensor (from encode); got a dict")
        return features

    def process_support_set(self, support: Features, support_labels: Tensor) -> None:
        self._support = self.head.prepare_support(self._tensor(support, "support"), support_labels)
        self.way = self._support.way

    def forward(self, query: Features) -> Tensor:
        if self._support is None:
            raise RuntimeError(
                "TRXClassifier: call process_support_set(support, labels) before forward(query)"
            )
        return self.head.query_logits(self._support, self._tensor(query, "query"))

    def loss(self, logits: Tensor, query_labels: Tensor, **context: Any) -> Tensor:
        """Cross-entropy over the queries, summed (faithful) or averaged (``loss_reduction``)."""
        return F.cross_entropy(logits, query_labels, reduction=self.loss_reduction)


MODELS.register("trx")(TRXClassifier)
