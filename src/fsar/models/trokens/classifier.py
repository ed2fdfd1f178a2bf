"""Trokens as a :class:`fsar.models.base.FewShotClassifier` (registered as ``"trokens"``).

Kumar et al., "Trokens: Semantic-Aware Relational Trajectory Tokens for Few-Shot Action Recognition", ICCV 2025.
Everything but the network is TATs' (:class:`fsar.models.tats.TATsClassifier`): the backbone, the Bi-MHM head on
the point tokens, the caching-friendly ``encode``, the loss (label-smoothed base-class CE + query-to-support CE,
unchanged in Trokens, trokens.md section 5) and the optimiser groups. The network is :class:`Trokens`; its HoD is
computed from the batch's normalised tracks at the selected frames, which is what the original's loader does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from fsar.data.batch import ClipBatch
from fsar.models.registry import MODELS
from fsar.models.tats.classifier import TATsClassifier
from fsar.models.trokens.model import Trokens


class TrokensClassifier(TATsClassifier):
    """:class:`TATsClassifier` with the :class:`Trokens` network.

    Args: those of :class:`TATsClassifier` (``num_points`` must be fixed: the relative-motion width is 2N), plus
    ``num_bins`` (32), ``use_hod`` and ``use_relative_motion`` (both True, as every Trokens run; switch one off
    for the ablations), ``motion_gate`` (None, the original; a float: learnable scalar gates on the motion
    embeddings initialised to it, **not in the original**, see :class:`Trokens`). ``encode`` passes ``batch.visibility`` (None: every point visible) to the relative motion.

    ``use_query_mask``: False (faithful to the released Trokens runs): the attention key mask is all True, because
    the original loader looks for ``per_point_queries`` in pickles that store ``point_queries`` (trokens.md §4),
    and its backward-tracked points exist in every frame. True: TATs' query mask from the track files (what the
    synthetic demo uses, so that TATs and Trokens differ only by the motion embeddings).
    """

    def __init__(
        self,
        backbone: nn.Module,
        feat_dim: int | None = None,
        num_frames: int = 8,
        num_points: int = 256,
        num_classes: int = 64,
        depth: int = 1,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        grid_size: int = 16,
        num_bins: int = 32,
        use_hod: bool = True,
        use_relative_motion: bool = True,
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
        use_query_mask: bool = False,
        motion_gate: float | None = None,
    ) -> None:
        self.use_query_mask = bool(use_query_mask)
        # read by build_network, which TATsClassifier.__init__ calls
        self._motion_kwargs = dict(
            num_bins=num_bins,
            use_hod=use_hod,
            use_relative_motion=use_relative_motion,
            motion_gate=motion_gate,
        )
        super().__init__(
            backbone,
            feat_dim=feat_dim,
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
            freeze_backbone=freeze_backbone,
            point_average=point_average,
            temperature=temperature,
            eps=eps,
            class_loss_weight=class_loss_weight,
            q2s_loss_weight=q2s_loss_weight,
            label_smoothing=label_smoothing,
            faithful_weight_decay=faithful_weight_decay,
        )

    def build_network(self, **kwargs: Any) -> Trokens:
        return Trokens(**kwargs, **self._motion_kwargs)

    def encode(self, batch: ClipBatch) -> dict[str, Tensor]:
        if not self.use_query_mask and batch.query_mask is not None:
            batch = dataclasses.replace(batch, query_mask=torch.ones_like(batch.query_mask))
        return super().encode(batch)


MODELS.register("trokens")(TrokensClassifier)
