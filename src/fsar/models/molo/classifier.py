"""MoLoClassifier: MoLo on fsar's backbones with the two-step API. Registered as ``"molo"``.

Wang et al., "MoLo: Motion-augmented Long-short Contrastive Learning for Few-shot Action Recognition", CVPR 2023.

- ``encode``: the backbone on every frame, *without* pooling (the layer-4 maps ``[B, T, D, h, w]``, 2048 x 7 x 7 for
  ResNet-50 at 224 px), then the per-video part of the head (:meth:`fsar.models.molo.MoLo.video_tokens`):
  ``{"appearance": [B, T+1, D], "motion": [B, T, D], "class_logits": [B, num_classes]}``, plus the motion features
  ``"differences" [B, T-1, D/8, h, w]`` in train mode (the decoder's input; the evaluator's cache does not need them).
- ``process_support_set`` + ``forward``: prototypes, Bi-MHM and the contrastive logits
  (:meth:`fsar.models.molo.MoLo.episode_logits`); ``forward`` returns ``logits [Q, way]``.
- ``loss``: :func:`fsar.models.molo.molo_loss`. The decoder runs here on the support and query motion features
  together (one BatchNorm batch, as the original); the target is :func:`fsar.models.molo.frame_differences` of the
  batch's RGB frames (with ``data.modality: rgb_diff`` the first three channels, which are the RGB frames). The
  result is multiplied by ``tasks_per_update`` because fsar's trainer divides by ``train.tasks_per_update``: with
  ``tasks_per_update`` = ``train.tasks_per_update`` = the original's ``BATCH_SIZE_PER_TASK`` every update's gradient
  is the original's, including its undivided reconstruction term.

The decoder's output is ``upsample[0] * upsample[1] * upsample[2]`` times the map size (32 in the original: 7 -> 224);
it must equal the frame size, else the loss raises and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fsar.data.batch import ClipBatch
from fsar.models.base import Features, FewShotClassifier
from fsar.models.hyrsm.classifier import (
    check_tasks,
    episode_precision,
    feature,
    global_labels,
    reference_param_groups,
)
from fsar.models.hyrsm.head import group_labels
from fsar.models.molo.head import ORIGINAL_UPSAMPLE, MoLo, MoLoOutput, frame_differences, molo_loss
from fsar.models.registry import MODELS


def rgb_frames(frames: Tensor) -> Tensor:
    """The RGB part of a batch's frames ``[B, T, C, H, W]``: all of them for ``rgb``, the first 3 of 6 channels for
    ``rgb_diff`` (frames then their differences)."""
    if frames.dim() != 5 or frames.shape[2] not in (3, 6):
        raise ValueError(
            f"MoLo's reconstruction target needs RGB frames [B, T, 3, H, W] (or rgb_diff's 6 channels); got "
            f"{tuple(frames.shape)}"
        )
    return frames[:, :, :3]


class MoLoClassifier(FewShotClassifier):
    """Backbone (layer-4 maps) + the MoLo head.

    Args:
        backbone: frames [N, 3, H, W] -> maps [N, D, h, w]; ``out_channels`` gives D unless ``feat_dim`` is set.
        num_frames, num_classes, num_heads, pos_a, pos_b, logit_balance, mlp_dim, upsample: see
            :class:`fsar.models.molo.MoLo`.
        class_weight, contrastive_weight, recon_weight: the loss weights (per dataset in the original, e.g.
            0.8 / 0.05 / 0.1 on SSv2-Full).
        tasks_per_batch: the original's ``TRAIN.BATCH_SIZE`` (4).
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
        logit_balance: float = 0.3,
        mlp_dim: int = 2048,
        upsample: Sequence[int] = ORIGINAL_UPSAMPLE,
        class_weight: float = 0.8,
        contrastive_weight: float = 0.05,
        recon_weight: float = 0.1,
        tasks_per_batch: int = 4,
        tasks_per_update: int = 4,
    ) -> None:
        super().__init__(backbone)
        feat_dim = self.resolve_feat_dim(feat_dim, backbone)
        check_tasks(tasks_per_batch, tasks_per_update)
        self.num_frames = int(num_frames)
        self.class_weight = float(class_weight)
        self.contrastive_weight = float(contrastive_weight)
        self.recon_weight = float(recon_weight)
        self.tasks_per_batch, self.tasks_per_update = int(tasks_per_batch), int(tasks_per_update)
        self.head = MoLo(
            int(feat_dim),
            self.num_frames,
            num_classes,
            num_heads,
            pos_a,
            pos_b,
            logit_balance,
            mlp_dim,
            upsample,
        )
        self._support: tuple[Tensor, Tensor, Tensor] | None = None
        self._last: tuple[object, dict[str, Tensor]] | None = None
        self.last_losses: dict[str, float] = {}

    def param_groups(self, weight_decay: float = 0.0) -> list[dict[str, Any]]:
        return reference_param_groups(self, weight_decay)

    def encode(self, batch: ClipBatch) -> dict[str, Tensor]:
        frames = batch.frames
        if frames.dim() != 5 or frames.shape[1] != self.num_frames:
            raise ValueError(
                f"MoLoClassifier expects frames [B, T={self.num_frames}, C, H, W]; got {tuple(frames.shape)}"
            )
        maps = self.frame_features(frames)
        if maps.dim() != 5:
            raise ValueError(
                f"MoLo needs spatial feature maps [B, T, D, h, w] from the backbone; got {tuple(maps.shape)}"
            )
        tokens = self.head.video_tokens(maps)
        out = {"appearance": tokens.appearance, "motion": tokens.motion, "class_logits": tokens.class_logits}
        if self.training:
            out["differences"] = tokens.differences
        return out

    def process_support_set(self, support: Features, support_labels: Tensor) -> None:
        appearance = feature(support, "appearance", "MoLo")
        if support_labels.shape != appearance.shape[:1]:
            raise ValueError(
                f"{appearance.shape[0]} support videos but support labels of shape {tuple(support_labels.shape)}"
            )
        self._support = (appearance, feature(support, "motion", "MoLo"), support_labels)
        self.way = group_labels(support_labels, appearance.dtype).way

    def episode_outputs(self, query: Features) -> dict[str, Tensor]:
        """The five ``[Q, way]`` logits of the queries against the stored support set."""
        if self._support is None:
            raise RuntimeError(
                "MoLoClassifier: call process_support_set(support, labels) before forward(query)"
            )
        appearance, motion, labels = self._support
        tensors = (appearance, motion, feature(query, "appearance", "MoLo"), feature(query, "motion", "MoLo"))
        context, (s_app, s_motion, q_app, q_motion) = episode_precision(*tensors)
        with context:
            return self.head.episode_logits(s_app, s_motion, labels, q_app, q_motion)

    def forward(self, query: Features) -> Tensor:
        outputs = self.episode_outputs(query)
        self._last = (query, outputs)  # the loss reuses the contrastive logits of this query set
        return outputs["logits"]

    def loss(self, logits: Tensor, query_labels: Tensor, **context: Any) -> Tensor:
        """:func:`molo_loss` ``["total"]`` times ``tasks_per_update`` (the trainer divides by it)."""
        labels = global_labels(context, "MoLoClassifier").to(logits.device)
        support, query = context["support"], context["query"]
        if self._last is not None and self._last[0] is query:
            outputs = self._last[1]
        else:
            outputs = self.episode_outputs(query)
        differences = [feature(f, "differences", "MoLo (encode in train mode)") for f in (support, query)]
        batches = (context["support_batch"], context["query_batch"])
        target = frame_differences(torch.cat([rgb_frames(b.frames) for b in batches])).to(logits.device)
        out = MoLoOutput(
            logits=logits,
            logits_s2q=outputs["logits_s2q"],
            logits_q2s=outputs["logits_q2s"],
            logits_s2q_motion=outputs["logits_s2q_motion"],
            logits_q2s_motion=outputs["logits_q2s_motion"],
            class_logits=torch.cat(
                [feature(support, "class_logits", "MoLo"), feature(query, "class_logits", "MoLo")]
            ),
            reconstruction=self.head.decode(torch.cat(differences)),
        )
        terms = molo_loss(
            out,
            query_labels,
            labels,
            target,
            self.class_weight,
            self.contrastive_weight,
            self.recon_weight,
            self.tasks_per_batch,
        )
        self._last = None
        self.last_losses = {k: float(v.detach()) for k, v in terms.items()}
        return terms["total"] * self.tasks_per_update


MODELS.register("molo")(MoLoClassifier)
