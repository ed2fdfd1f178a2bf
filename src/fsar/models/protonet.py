"""ProtoNet for video: Snell et al., "Prototypical Networks for Few-shot Learning", NeurIPS 2017.

Each video becomes one vector, the mean over its frames of the spatially mean-pooled backbone map (the video
ProtoNet baseline of OTAM, Cao et al. CVPR 2020, and later work); a class prototype is the mean of its shots.
Frame order is ignored. Logits:

* ``metric="cosine"``: ``scale * cos(query, prototype)``. Cosines lie in [-1, 1], too flat for a softmax on
  their own, so ``scale`` starts at 10 and is learned by default.
* ``metric="l2"``: ``-scale * ||query - prototype||^2`` (Snell et al.'s squared Euclidean distance); ``scale``
  is fixed at 1 by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsar.data.batch import ClipBatch
from fsar.models.base import FewShotClassifier, full_precision

METRICS = ("cosine", "l2")


def pooled_frame_features(model: FewShotClassifier, batch: ClipBatch) -> Tensor:
    """Backbone on every frame of ``batch.frames [B, T, 3, H, W]``, spatially mean-pooled: ``[B, T, C]``."""
    frames = batch.frames
    if frames.dim() != 5:
        raise ValueError(f"batch.frames must have shape [B, T, 3, H, W]; got {tuple(frames.shape)}")
    feats = model.frame_features(frames)
    if feats.dim() == 5:  # [B, T, C, h, w]
        return feats.mean(dim=(3, 4))
    if feats.dim() == 3:  # the backbone already returns one vector per frame
        return feats
    raise ValueError(
        f"the backbone must return [N, C, h, w] maps or [N, C] vectors per frame; got per-clip {tuple(feats.shape)}"
    )


def class_major_shape(model: FewShotClassifier, support: Tensor, support_labels: Tensor) -> tuple[int, int]:
    """(way, shot) of a class-major support set whose features have one row per video."""
    way, shot = model.check_class_major(support_labels)
    if support.shape[0] != way * shot:
        raise ValueError(f"support features have {support.shape[0]} videos but there are {way * shot} labels")
    return way, shot


class ProtoNet(FewShotClassifier):
    """Prototypical network on frame-averaged video features. ``encode`` returns ``[B, C]``.

    ``scale``: logit multiplier (default 10 for cosine, 1 for l2). ``learn_scale``: learn it (default: True for
    cosine, False for l2).
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        metric: str = "cosine",
        scale: float | None = None,
        learn_scale: bool | None = None,
    ) -> None:
        super().__init__(backbone)
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
        self.metric = metric
        scale = (10.0 if metric == "cosine" else 1.0) if scale is None else float(scale)
        learn_scale = (metric == "cosine") if learn_scale is None else learn_scale
        if learn_scale:
            self.scale = nn.Parameter(torch.tensor(scale))
        else:
            self.register_buffer("scale", torch.tensor(scale))
        self.prototypes: Tensor | None = None

    def encode(self, batch: ClipBatch) -> Tensor:
        return pooled_frame_features(self, batch).mean(dim=1)

    def process_support_set(self, support: Tensor, support_labels: Tensor) -> None:
        if support.dim() != 2:
            raise ValueError(f"ProtoNet support features must be [videos, C]; got {tuple(support.shape)}")
        way, shot = class_major_shape(self, support, support_labels)
        self.way = way
        self.prototypes = support.reshape(way, shot, -1).mean(dim=1)

    def forward(self, query: Tensor) -> Tensor:
        if self.prototypes is None:
            raise RuntimeError("ProtoNet: call process_support_set(support, labels) before forward(query)")
        if query.dim() != 2 or query.shape[1] != self.prototypes.shape[1]:
            raise ValueError(
                f"ProtoNet query features must be [Q, {self.prototypes.shape[1]}]; got {tuple(query.shape)}"
            )
        fp32, (query, prototypes) = full_precision(query, self.prototypes)
        with fp32:
            if self.metric == "cosine":
                return self.scale * F.normalize(query, dim=-1) @ F.normalize(prototypes, dim=-1).T
            sq = (query[:, None, :] - prototypes[None, :, :]).square().sum(dim=-1)
            return -self.scale * sq
