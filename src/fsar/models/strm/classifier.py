"""STRMClassifier: STRM on fsar's backbones with the two-step API. Registered as ``"strm"``.

Thatipelli et al., "Spatio-temporal Relation Modeling for Few-shot Action Recognition", CVPR 2022.

- ``encode``: the backbone on every frame (maps ``[B, T, D, h, w]``, h, w >= 4, not pooled), then the head's
  per-video part: 4x4 max pool, patch attention, frame mixer -> ``{"patch": [B, T, D], "frame": [B, T, D]}``.
  Support and query are separate calls (separate BatchNorm statistics in train mode, as in the original). In eval
  mode a clip's features depend on the clip alone, so the caching evaluator computes them once per video.
- ``process_support_set``: groups the support by label (any order; columns follow the sorted labels) and embeds
  its tuples for TRX and for the similarity branch, once per episode.
- ``forward``: ``logits = frame_logits + patch_weight · patch_logits`` ``[Q, way]`` (the original's prediction);
  the full :class:`~fsar.models.strm.STRMOutput` is kept as ``last_output``.
- ``loss``: :func:`~fsar.models.strm.strm_loss` of ``last_output`` (cross-entropies summed over the queries); the
  trainer divides by ``train.tasks_per_update`` (16 in the original).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from fsar.data.batch import ClipBatch
from fsar.models.base import Features, FewShotClassifier
from fsar.models.registry import MODELS
from fsar.models.strm.head import STRM, STRMEncoded, STRMOutput, STRMSupport, strm_loss


class STRMClassifier(FewShotClassifier):
    """Backbone (maps) + STRM head.

    Args:
        backbone: frames [N, 3, H, W] -> maps [N, D, h, w] with h, w >= 4; ``out_channels`` gives D unless
            ``feat_dim`` is set.
        num_frames, cardinalities, out_dim, dropout, patch_weight, train_clsw: see :class:`fsar.models.strm.STRM`.
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        *,
        num_frames: int = 8,
        feat_dim: int | None = None,
        cardinalities: Sequence[int] = (2,),
        out_dim: int = 1152,
        dropout: float = 0.1,
        patch_weight: float = 0.1,
        train_clsw: bool = False,
    ) -> None:
        super().__init__(backbone)
        feat_dim = self.resolve_feat_dim(feat_dim, backbone)
        self.num_frames = int(num_frames)
        self.head = STRM(
            int(feat_dim),
            self.num_frames,
            cardinalities,
            out_dim,
            dropout,
            patch_weight,
            train_clsw=train_clsw,
        )
        self._support: STRMSupport | None = None
        self.last_output: STRMOutput | None = None

    def encode(self, batch: ClipBatch) -> dict[str, Tensor]:
        frames = batch.frames
        if frames.dim() != 5 or frames.shape[1] != self.num_frames:
            raise ValueError(
                f"STRMClassifier expects frames [B, T={self.num_frames}, 3, H, W]; got {tuple(frames.shape)}"
            )
        maps = self.frame_features(frames)
        if maps.dim() != 5:
            raise ValueError(
                "STRMClassifier needs a backbone that returns maps [N, D, h, w] (h, w >= 4) per frame; got "
                f"per-clip features of shape {tuple(maps.shape)}"
            )
        encoded = self.head.encode(maps)
        return {"patch": encoded.patch, "frame": encoded.frame}

    @staticmethod
    def _encoded(features: Features, what: str) -> STRMEncoded:
        if not isinstance(features, dict) or set(features) != {"patch", "frame"}:
            raise TypeError(f"STRM {what} features must be the dict {{'patch', 'frame'}} that encode returns")
        return STRMEncoded(features["patch"], features["frame"])

    def process_support_set(self, support: Features, support_labels: Tensor) -> None:
        self._support = self.head.prepare_support(self._encoded(support, "support"), support_labels)
        self.way = self._support.way

    def forward(self, query: Features) -> Tensor:
        if self._support is None:
            raise RuntimeError(
                "STRMClassifier: call process_support_set(support, labels) before forward(query)"
            )
        self.last_output = self.head.query_output(self._support, self._encoded(query, "query"))
        return self.last_output.logits

    def loss(self, logits: Tensor, query_labels: Tensor, **context: Any) -> Tensor:
        """:func:`strm_loss` of the output whose ``logits`` these are (the last ``forward``)."""
        if self.last_output is None or logits is not self.last_output.logits:
            raise RuntimeError(
                "STRMClassifier.loss needs the logits of its last forward (it also uses the frame and patch logits "
                "kept from it); call forward(query) and pass its result"
            )
        return strm_loss(self.last_output, query_labels, self.head.patch_weight)


MODELS.register("strm")(STRMClassifier)
