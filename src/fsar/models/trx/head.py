"""TRX: Perrett et al., "Temporal-Relational CrossTransformers for Few-Shot Action Recognition", CVPR 2021.

``TRX`` is the original's ``transformers`` ModuleList (one :class:`TemporalCrossTransformer` per cardinality,
default pairs and triples) with its logits: the **mean** over cardinalities of each cross-transformer's
``-distance`` (the original's released ``model.py``; an earlier commit combined them as ``-norm`` over the
cardinalities instead). Inputs are per-frame features after global pooling, ``[videos, T, D]``; support labels may
come in any order and the logit columns follow the sorted labels.

Two-step use (what :class:`fsar.models.trx.TRXClassifier` does): ``support = head.prepare_support(features,
labels)`` once per episode, then ``head.query_logits(support, query_features)``; ``head(support_features,
support_labels, query_features)`` does both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fsar.models.trx.cross_transformer import TemporalCrossTransformer
from fsar.models.trx.tuples import ClassGroups, group_by_label


@dataclass
class TRXSupport:
    """A prepared support set: its class grouping and, per cardinality, the tuple keys and values."""

    groups: ClassGroups
    embedded: list[tuple[Tensor, Tensor]]

    @property
    def way(self) -> int:
        return self.groups.way


class TRX(nn.Module):
    """The TRX head on frame features.

    Args:
        feat_dim: D, the per-frame feature size (2048 for ResNet-50, 512 for ResNet-18/34).
        num_frames: T, frames per video (8).
        cardinalities: tuple sizes, one cross-transformer each (the original's ``temp_set``, default (2, 3)).
        out_dim: key/value size (``trans_linear_out_dim``, 1152).
        dropout: dropout after the positional encoding (``trans_dropout``, 0.1).
        apply_norm_v: apply the value LayerNorm ``norm_v`` (False: faithful, the original never applies it).
    """

    def __init__(
        self,
        feat_dim: int,
        num_frames: int = 8,
        cardinalities: Sequence[int] = (2, 3),
        out_dim: int = 1152,
        dropout: float = 0.1,
        apply_norm_v: bool = False,
    ) -> None:
        super().__init__()
        cards = [int(c) for c in cardinalities]
        if not cards or len(set(cards)) != len(cards):
            raise ValueError(
                f"cardinalities must be a non-empty list of distinct tuple sizes; got {cardinalities}"
            )
        self.feat_dim, self.num_frames, self.out_dim = int(feat_dim), int(num_frames), int(out_dim)
        self.cardinalities = tuple(cards)
        self.transformers = nn.ModuleList(
            TemporalCrossTransformer(feat_dim, num_frames, c, out_dim, dropout, apply_norm_v) for c in cards
        )

    def prepare_support(self, features: Tensor, labels: Tensor) -> TRXSupport:
        """Group ``features [S, T, D]`` by ``labels [S]`` and embed their tuples for every cardinality."""
        if labels.dim() != 1 or features.dim() < 1 or labels.shape[0] != features.shape[0]:
            raise ValueError(
                f"TRX needs one support label per support video; got {tuple(labels.shape)} labels for "
                f"features {tuple(features.shape)}"
            )
        groups = group_by_label(labels.to(features.device))
        return TRXSupport(groups, [t.embed(features) for t in self.transformers])

    def query_logits(self, support: TRXSupport, query: Tensor) -> Tensor:
        """Logits ``[Q, way]`` of ``query [Q, T, D]`` against a prepared support set."""
        per_card = [
            t.logits(emb, support.groups, t.embed(query))
            for t, emb in zip(self.transformers, support.embedded, strict=True)
        ]
        return torch.stack(per_card).mean(dim=0)

    def forward(self, support_features: Tensor, support_labels: Tensor, query_features: Tensor) -> Tensor:
        return self.query_logits(self.prepare_support(support_features, support_labels), query_features)
