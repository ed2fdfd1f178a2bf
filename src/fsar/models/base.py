"""The common API of every few-shot method in fsar.

A method is a small ``nn.Module`` with a two-step API, as in easyfsl:

    support = model.encode(support_batch)            # per-video features
    query = model.encode(query_batch)
    model.process_support_set(support, support_labels)
    logits = model(query)                            # [num_queries, way]
    loss = model.loss(logits, query_labels, support=support, query=query,
                      support_batch=support_batch, query_batch=query_batch)

``encode`` is the per-video part of the computation: it depends on one clip only (in eval mode), so an
evaluator may compute it once per test video and cache it. Its result is a tensor, or a dict of tensors,
whose first axis indexes the videos of the batch. ``process_support_set`` + ``forward`` are the pairwise part
that depends on the episode.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsar.data.batch import ClipBatch

Features = Tensor | dict[str, Tensor]


def select_features(features: Features, index: Tensor) -> Features:
    """Rows ``index`` (first axis) of a feature tensor or of every tensor of a feature dict."""
    if isinstance(features, Tensor):
        return features.index_select(0, index.to(features.device))
    return {k: v.index_select(0, index.to(v.device)) for k, v in features.items()}


def cat_features(parts: list[Features]) -> Features:
    """Concatenate features along the video axis."""
    if isinstance(parts[0], Tensor):
        return torch.cat(parts, dim=0)  # type: ignore[arg-type]
    return {k: torch.cat([p[k] for p in parts], dim=0) for k in parts[0]}  # type: ignore[index]


def features_to(features: Features, device: torch.device | str, dtype: torch.dtype | None = None) -> Features:
    if isinstance(features, Tensor):
        return features.to(device=device, dtype=dtype if features.is_floating_point() else None)
    return {k: features_to(v, device, dtype) for k, v in features.items()}  # type: ignore[misc]


def full_precision(*tensors: Tensor):
    """``(context, fp32 tensors)`` for computing a metric outside mixed precision: under bf16/fp16 autocast the
    network runs in low precision, but a distance such as ``sum_t (1 - cos)`` over frames loses the small
    differences that decide the class (measured: bf16 distances flipped 19% of TA2N's and 31% of TATs'
    predictions; in fp32 the speed-up stays and the predictions match, see BENCHMARKS.md)."""
    device_type = tensors[0].device.type
    return torch.autocast(device_type=device_type, enabled=False), [t.float() for t in tensors]


class FewShotClassifier(nn.Module):
    """Base class of few-shot video classifiers.

    Subclasses implement :meth:`encode`, :meth:`process_support_set` and :meth:`forward`, and may override
    :meth:`loss` (default: mean cross-entropy over the queries).
    """

    def __init__(self, backbone: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone if backbone is not None else nn.Identity()
        self.way: int | None = None

    # -- per-video part ------------------------------------------------------------------------------
    def resolve_feat_dim(self, feat_dim: int | None, backbone: nn.Module | None) -> int:
        """``feat_dim`` if given, else the backbone's ``out_channels``; a clear error when neither exists."""
        if feat_dim is None:
            feat_dim = getattr(backbone, "out_channels", None)
        if feat_dim is None:
            raise ValueError(
                f"{type(self).__name__} needs feat_dim=D or a backbone with an `out_channels` attribute"
            )
        return int(feat_dim)

    def encode(self, batch: ClipBatch) -> Features:  # pragma: no cover - abstract
        raise NotImplementedError

    def frame_features(self, frames: Tensor) -> Tensor:
        """Run the backbone on every frame: [B, T, 3, H, W] -> [B, T, C, h, w] (or [B, T, C])."""
        b, t = frames.shape[:2]
        out = self.backbone(frames.flatten(0, 1))
        return out.reshape(b, t, *out.shape[1:])

    # -- pairwise part -------------------------------------------------------------------------------
    def process_support_set(self, support: Features, support_labels: Tensor) -> None:  # pragma: no cover
        raise NotImplementedError

    def forward(self, query: Features) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def episode_logits(self, support: Features, support_labels: Tensor, query: Features) -> Tensor:
        """Both steps at once: logits [num_queries, way]."""
        self.process_support_set(support, support_labels)
        return self(query)

    # -- training ------------------------------------------------------------------------------------
    def loss(self, logits: Tensor, query_labels: Tensor, **context: Any) -> Tensor:
        """Training loss of one episode. ``context`` holds support/query features and batches."""
        return F.cross_entropy(logits, query_labels)

    @staticmethod
    def check_class_major(support_labels: Tensor) -> tuple[int, int]:
        """Return (way, shot) and check that labels are class-major: [0]*K + [1]*K + ... ."""
        n = int(support_labels.numel())
        way = int(support_labels.max().item()) + 1 if n else 0
        if way == 0 or n % way:
            raise ValueError(
                f"support labels must cover classes 0..way-1 equally; got {support_labels.tolist()}"
            )
        shot = n // way
        expected = torch.arange(way, device=support_labels.device).repeat_interleave(shot)
        if not torch.equal(support_labels.long(), expected):
            raise ValueError(
                "support set must be class-major (all shots of class 0, then class 1, ...); "
                f"got labels {support_labels.tolist()}"
            )
        return way, shot
