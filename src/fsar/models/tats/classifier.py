"""TATs as a :class:`fsar.models.base.FewShotClassifier` (registered as ``"tats"``).

Kumar et al., "Trajectory-aligned Space-time Tokens for Few-shot Action Recognition", ECCV 2024.
``encode`` runs the backbone on every frame and the TATs network on the patch grid and the batch's tracks;
``process_support_set`` builds class prototypes; ``forward`` gives Bi-MHM logits; ``loss`` is the
label-smoothed base-class CE over support + query videos plus the query-to-support CE (tats.md section 5).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fsar.data.batch import ClipBatch
from fsar.models.base import FewShotClassifier, full_precision
from fsar.models.registry import MODELS
from fsar.models.tats.head import POINT_AVERAGES, class_prototypes, few_shot_logits, frame_descriptors
from fsar.models.tats.losses import tats_loss
from fsar.models.tats.model import TATs
from fsar.models.tats.recipe import tats_param_groups


class TATsClassifier(FewShotClassifier):
    """Backbone (frames ``[N, 3, H, W]`` -> patch grid ``[N, D, G, G]``) + :class:`TATs` + Bi-MHM head.

    Args:
        backbone: the frame encoder. Its output width D is ``feat_dim`` (default: ``backbone.out_channels``)
            and its grid side is ``grid_size``.
        freeze_backbone: True (the original, for DINOv2): backbone parameters get ``requires_grad=False``,
            the backbone always runs in eval mode and without autograd. Set False for a trainable backbone
            (e.g. the small CNN of the synthetic benchmark).
        point_average: ``"all"`` (faithful: descriptors average all points, masked ones included) or
            ``"existing"`` (only points that exist; see :mod:`fsar.models.tats.head`).
        temperature, eps: logits ``-bi_mhm / temperature``, cosine epsilon (1.0, 0.01).
        class_loss_weight, q2s_loss_weight, label_smoothing: the loss (1.0, 1.0, 0.1).
        faithful_weight_decay: how :meth:`param_groups` splits the parameters (see
            :func:`fsar.models.tats.recipe.tats_param_groups`).
        num_frames, num_points, num_classes, depth, num_heads, mlp_ratio, grid_size, sampling, mask_occluded,
        init_seed: those of :class:`TATs`.

    ``encode(batch)`` needs ``batch.tracks`` and ``batch.query_mask`` (and ``batch.visibility`` with
    ``mask_occluded``) and returns ``{"tokens": [B, T, N, D], "cls_logits": [B, C], "point_mask": [B, T, N]}``
    where ``point_mask`` is the key mask the transformer used.
    """

    def __init__(
        self,
        backbone: nn.Module,
        feat_dim: int | None = None,
        num_frames: int = 8,
        num_points: int | None = 256,
        num_classes: int = 64,
        depth: int = 1,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        grid_size: int = 16,
        sampling: str = "nearest_reference",
        mask_occluded: bool = False,
        init_seed: int = 0,
        freeze_backbone: bool = True,
        point_average: str = "all",
        temperature: float = 1.0,
        eps: float = 0.01,
        class_loss_weight: float = 1.0,
        q2s_loss_weight: float = 1.0,
        label_smoothing: float = 0.1,
        faithful_weight_decay: bool = True,
    ) -> None:
        super().__init__(backbone)
        feat_dim = self.resolve_feat_dim(feat_dim, backbone)
        if point_average not in POINT_AVERAGES:
            raise ValueError(f"unknown point_average {point_average!r}; expected one of {POINT_AVERAGES}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0; got {temperature}")
        self.tats = self.build_network(
            feat_dim=int(feat_dim),
            num_frames=num_frames,
            num_points=num_points,
            num_classes=num_classes,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            grid_size=grid_size,
            sampling=sampling,
            mask_occluded=mask_occluded,
            init_seed=init_seed,
        )
        self.faithful_weight_decay = faithful_weight_decay
        self.freeze_backbone = freeze_backbone
        self.point_average = point_average
        self.temperature = temperature
        self.eps = eps
        self.class_loss_weight = class_loss_weight
        self.q2s_loss_weight = q2s_loss_weight
        self.label_smoothing = label_smoothing
        self._prototype_frames: Tensor | None = None
        if freeze_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def build_network(self, **kwargs: Any) -> TATs:
        """The token network (``self.tats``) from the TATs keyword arguments; Trokens returns its subclass."""
        return TATs(**kwargs)

    def train(self, mode: bool = True) -> TATsClassifier:
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def param_groups(self, weight_decay: float = 0.5) -> list[dict[str, Any]]:
        """AdamW groups of the trainable parameters (used by ``fsar.engine.build.build_optimizer``)."""
        return tats_param_groups(self, weight_decay=weight_decay, faithful=self.faithful_weight_decay)

    # -- per-video part --------------------------------------------------------------------------------
    def patch_grid(self, frames: Tensor) -> Tensor:
        """Backbone on every frame: ``[B, T, 3, H, W]`` -> ``[B, T, G, G, D]``."""
        if self.freeze_backbone:
            with torch.no_grad():
                grid = self.frame_features(frames)
        else:
            grid = self.frame_features(frames)
        if grid.dim() != 5:
            raise ValueError(
                f"TATsClassifier: the backbone must map frames to patch grids [N, D, G, G]; got per-clip "
                f"features of shape {tuple(grid.shape)}"
            )
        return grid.permute(0, 1, 3, 4, 2)

    def encode(self, batch: ClipBatch) -> dict[str, Tensor]:
        missing = [name for name in ("tracks", "query_mask") if getattr(batch, name) is None]
        if self.tats.mask_occluded and batch.visibility is None:
            missing.append("visibility")
        if missing:
            raise ValueError(
                f"TATs needs point tracks: the batch has no {', '.join(missing)} (videos "
                f"{batch.video_ids[:3]}...). Enable tracks in the data config (track files for every video)"
            )
        grid = self.patch_grid(batch.frames)
        out = self.tats(grid, batch.tracks, batch.query_mask, batch.visibility)
        mask = self.tats.key_mask(batch.query_mask, batch.visibility)  # type: ignore[arg-type]
        return {"tokens": out.tokens, "cls_logits": out.cls_logits, "point_mask": mask}

    # -- pairwise part ---------------------------------------------------------------------------------
    def _mask(self, features: dict[str, Tensor]) -> Tensor | None:
        return features.get("point_mask") if self.point_average == "existing" else None

    def process_support_set(self, support: dict[str, Tensor], support_labels: Tensor) -> None:  # type: ignore[override]
        way, shot = self.check_class_major(support_labels)
        protos, proto_mask = class_prototypes(
            support["tokens"], way, shot, self._mask(support), self.point_average
        )
        self._prototype_frames = frame_descriptors(protos, proto_mask, self.point_average)
        self.way = way

    def forward(self, query: dict[str, Tensor]) -> Tensor:  # type: ignore[override]
        if self._prototype_frames is None:
            raise RuntimeError("TATsClassifier: call process_support_set before forward")
        frames = frame_descriptors(query["tokens"], self._mask(query), self.point_average)
        fp32, (frames, prototypes) = full_precision(frames, self._prototype_frames)
        with fp32:
            return few_shot_logits(frames, prototypes, self.temperature, self.eps)

    # -- training --------------------------------------------------------------------------------------
    def loss(self, logits: Tensor, query_labels: Tensor, **context: Any) -> Tensor:
        """Label-smoothed CE of ``cls_logits`` (support + query videos, global labels) + CE of ``logits``."""
        needed = ("support", "query", "support_batch", "query_batch")
        absent = [k for k in needed if context.get(k) is None]
        if absent:
            raise ValueError(f"TATsClassifier.loss needs the context {absent} (the trainer passes them)")
        cls_logits = torch.cat([context["support"]["cls_logits"], context["query"]["cls_logits"]], dim=0)
        global_labels = torch.cat(
            [context["support_batch"].global_labels, context["query_batch"].global_labels], dim=0
        ).to(cls_logits.device)
        return tats_loss(
            cls_logits,
            global_labels,
            logits,
            query_labels,
            class_weight=self.class_loss_weight,
            q2s_weight=self.q2s_loss_weight,
            smoothing=self.label_smoothing,
        )


MODELS.register("tats")(TATsClassifier)
