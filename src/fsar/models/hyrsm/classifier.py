"""HyRSMClassifier: HyRSM on fsar's backbones with the two-step API. Registered as ``"hyrsm"``.

Wang et al., "Hybrid Relation Guided Set Matching for Few-shot Action Recognition", CVPR 2022.

- ``encode``: the backbone on every frame, globally average-pooled (``[B, T, D]``, the original's ResNet-50 with
  only ``fc`` removed), then the per-video part of the head, ``ReLU(SA(PE(.)))``, and its per-frame class logits:
  ``{"frames": [B, T, D], "class_logits": [B, T, num_classes]}``. In eval mode this depends on the clip alone, so
  the caching evaluator computes it once per video.
- ``process_support_set`` + ``forward``: the episode part of :class:`fsar.models.hyrsm.HyRSM` (set relation, fusion,
  Bi-MHM); support labels in any order, columns in sorted-label order.
- ``loss``: :func:`fsar.models.hyrsm.hyrsm_loss` with the episode's global labels, multiplied by
  ``tasks_per_update``: fsar's trainer divides each episode's loss by ``train.tasks_per_update`` and sums over the
  update, the original divides by ``tasks_per_batch`` (its ``TRAIN.BATCH_SIZE``) and sums over
  ``BATCH_SIZE_PER_TASK`` episodes; with ``tasks_per_update`` = ``train.tasks_per_update`` = that count, the gradient
  of every update is the original's (also for HMDB51's 2-task accumulation, half the mean).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fsar.data.batch import ClipBatch
from fsar.models.base import Features, FewShotClassifier, full_precision
from fsar.models.hyrsm.head import HyRSM, HyRSMOutput, group_labels, hyrsm_loss
from fsar.models.protonet import pooled_frame_features
from fsar.models.registry import MODELS

NO_DECAY_NAMES = ("bn", "norm")
"""Parameters whose name contains one of these get no weight decay (the original's ``BN.WEIGHT_DECAY`` = 0)."""
NO_DECAY_TOKENS = ("embd", "cls_token")
"""Names the original also exempts from weight decay (MoLo's ``class_token`` does not match ``cls_token``)."""


def reference_param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """The original's two optimizer groups: names with "bn"/"norm"/"embd"/"cls_token" without weight decay, the
    rest with ``weight_decay``. (fsar's ResNet calls every BatchNorm ``normalization``, so the downsample BNs,
    ``downsample.1`` in torchvision's names, get no weight decay here while the original decays them.)"""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exempt = any(s in name for s in NO_DECAY_NAMES + NO_DECAY_TOKENS)
        (no_decay if exempt else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def episode_precision(*tensors: Tensor):
    """``(context, tensors)``: under autocast, full precision for the episode part (see
    :func:`fsar.models.base.full_precision`); otherwise the tensors as they are (float64 stays float64)."""
    device_type = tensors[0].device.type
    if torch.is_autocast_enabled(device_type):
        return full_precision(*tensors)
    return torch.autocast(device_type=device_type, enabled=False), list(tensors)


def check_tasks(tasks_per_batch: int, tasks_per_update: int) -> None:
    if tasks_per_batch < 1 or tasks_per_update < 1:
        raise ValueError(
            f"tasks_per_batch and tasks_per_update must be >= 1; got {tasks_per_batch} and {tasks_per_update}"
        )


def feature(features: Features, key: str, method: str) -> Tensor:
    if not isinstance(features, dict) or key not in features:
        got = sorted(features) if isinstance(features, dict) else "a tensor"
        raise ValueError(f"{method} features must be the dict from encode() holding {key!r}; got {got}")
    return features[key]


def global_labels(context: dict[str, Any], method: str) -> Tensor:
    absent = [k for k in ("support", "query", "support_batch", "query_batch") if context.get(k) is None]
    if absent:
        raise ValueError(f"{method}.loss needs the context {absent} (the trainer passes them)")
    return torch.cat([context["support_batch"].global_labels, context["query_batch"].global_labels])


class HyRSMClassifier(FewShotClassifier):
    """Backbone + global pooling + the HyRSM head.

    Args:
        backbone: frames [N, 3, H, W] -> maps [N, D, h, w] (or vectors [N, D]); ``out_channels`` gives D unless
            ``feat_dim`` is set.
        num_frames, num_classes, num_heads, pos_a, pos_b, set_elements: see :class:`fsar.models.hyrsm.HyRSM`.
        class_weight: ``w_cls`` of the per-frame classification loss (per dataset in the original: 0.6 SSv2-Full,
            0.15 SSv2-Small / HMDB51 / UCF101, 0.4 Kinetics-100).
        tasks_per_batch: the original's ``TRAIN.BATCH_SIZE`` (4): the loss is divided by it.
        tasks_per_update: must equal ``train.tasks_per_update`` (see the module docstring).
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        *,
        feat_dim: int | None = None,
        num_frames: int = 8,
        num_classes: int = 64,
        num_heads: int = 8,
        pos_a: float = 10.0,
        pos_b: float = 1.0,
        set_elements: str = "auto",
        class_weight: float = 0.6,
        tasks_per_batch: int = 4,
        tasks_per_update: int = 4,
    ) -> None:
        super().__init__(backbone)
        feat_dim = self.resolve_feat_dim(feat_dim, backbone)
        check_tasks(tasks_per_batch, tasks_per_update)
        self.num_frames = int(num_frames)
        self.class_weight = float(class_weight)
        self.tasks_per_batch, self.tasks_per_update = int(tasks_per_batch), int(tasks_per_update)
        self.head = HyRSM(int(feat_dim), self.num_frames, num_classes, num_heads, pos_a, pos_b, set_elements)
        self._support: tuple[Tensor, Tensor] | None = None
        self.last_losses: dict[str, float] = {}

    def param_groups(self, weight_decay: float = 0.0) -> list[dict[str, Any]]:
        return reference_param_groups(self, weight_decay)

    def encode(self, batch: ClipBatch) -> dict[str, Tensor]:
        frames = batch.frames
        if frames.dim() != 5 or frames.shape[1] != self.num_frames:
            raise ValueError(
                f"HyRSMClassifier expects frames [B, T={self.num_frames}, C, H, W]; got {tuple(frames.shape)}"
            )
        intra = self.head.video_frames(pooled_frame_features(self, batch))
        return {"frames": intra, "class_logits": self.head.frame_class_logits(intra)}

    def process_support_set(self, support: Features, support_labels: Tensor) -> None:
        frames = feature(support, "frames", "HyRSM")
        if support_labels.shape != frames.shape[:1]:
            raise ValueError(
                f"{frames.shape[0]} support videos but support labels of shape {tuple(support_labels.shape)}"
            )
        self._support = (frames, support_labels)
        self.way = group_labels(support_labels, frames.dtype).way

    def forward(self, query: Features) -> Tensor:
        if self._support is None:
            raise RuntimeError(
                "HyRSMClassifier: call process_support_set(support, labels) before forward(query)"
            )
        support, labels = self._support
        context, (support, query_frames) = episode_precision(support, feature(query, "frames", "HyRSM"))
        with context:
            return self.head.episode_logits(support, labels, query_frames)

    def loss(self, logits: Tensor, query_labels: Tensor, **context: Any) -> Tensor:
        """:func:`hyrsm_loss` ``["total"]`` times ``tasks_per_update`` (the trainer divides by it)."""
        labels = global_labels(context, "HyRSMClassifier").to(logits.device)
        class_logits = torch.cat(
            [
                feature(context["support"], "class_logits", "HyRSM"),
                feature(context["query"], "class_logits", "HyRSM"),
            ]
        )
        terms = hyrsm_loss(
            HyRSMOutput(logits, class_logits), query_labels, labels, self.class_weight, self.tasks_per_batch
        )
        self.last_losses = {k: float(v.detach()) for k, v in terms.items()}
        return terms["total"] * self.tasks_per_update


MODELS.register("hyrsm")(HyRSMClassifier)
