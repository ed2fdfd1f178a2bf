"""The STRM head: TRX with patch- and frame-level enrichment and a patch-level classifier.

Thatipelli, Narayan, Khan, Anwer, Khan, Ghanem, "Spatio-temporal Relation Modeling for Few-shot Action
Recognition", CVPR 2022 (``Anirudh257/strm``; our description: ``shared/specs/strm.md``).

    maps [V, T, D, H, W] --4x4 adaptive max pool--> 16 tokens per frame
      --PatchAttention (attn_pat)--> patch-enriched frames [V, T, D]
          |-- QueryClassSimilarity per cardinality (DistanceLoss) ------------> patch_logits [Q, way]
          '-- FrameMixer (fr_enrich) --> TRX (fsar.models.trx.TRX) ---------------> frame_logits [Q, way]
    logits = frame_logits + patch_weight · patch_logits

The TRX part is fsar's :class:`~fsar.models.trx.TRX` itself (composition), including its own positional
encoding, so frames get two (quirk Q5), and its unused, frozen ``norm_v``. Quirks reproduced on purpose:
unscaled patch-attention scores (Q4, :mod:`fsar.models.strm.enrichment`), double positional encoding (Q5),
``clsW`` frozen by default (Q1, :mod:`fsar.models.strm.similarity`). Departure from the original: ``eval()``
turns off every dropout, the similarity branch's included (the original's stays on at test time).

Two-step use: ``encoded = head.encode(maps)`` per video (both branches' per-video features), ``support =
head.prepare_support(encoded_support, labels)`` once per episode, ``head.query_output(support,
encoded_query)``; ``head(support_maps, support_labels, query_maps)`` does all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsar.models.strm.enrichment import FrameMixer, PatchAttention, patch_tokens
from fsar.models.strm.similarity import QueryClassSimilarity
from fsar.models.trx.head import TRX, TRXSupport


@dataclass
class STRMOutput:
    """The head's logits, each ``[Q, way]`` with columns in sorted label order."""

    frame_logits: Tensor
    patch_logits: Tensor
    logits: Tensor


@dataclass
class STRMEncoded:
    """Per-video features: ``patch`` (patch-enriched, the similarity branch's input) and ``frame`` (after the frame
    mixer, TRX's input), each ``[V, T, D]``."""

    patch: Tensor
    frame: Tensor


@dataclass
class STRMSupport:
    """A prepared support set: TRX's, plus the similarity branch's tuple embeddings per cardinality."""

    trx: TRXSupport
    similarity: list[Tensor]

    @property
    def way(self) -> int:
        return self.trx.way


class STRM(nn.Module):
    """The STRM head on backbone maps.

    Args:
        feat_dim: D, the backbone's channels (even; 2048 for ResNet-50).
        num_frames: T (8); the frame mixer's token MLP is T x T.
        cardinalities: tuple sizes (``temp_set``; the original's scripts use pairs only).
        out_dim: TRX's key/value size (``trans_linear_out_dim``, 1152).
        dropout: TRX's positional-encoding dropout (``trans_dropout``); the enrichment and similarity dropouts
            are fixed at 0.1 as in the original.
        patch_weight: weight of ``patch_logits`` in ``logits`` (0.1).
        train_clsw: train the similarity projections ``clsW`` (False: frozen at their initialisation, as the
            original's training leaves them, quirk Q1).
    """

    def __init__(
        self,
        feat_dim: int,
        num_frames: int = 8,
        cardinalities: Sequence[int] = (2,),
        out_dim: int = 1152,
        dropout: float = 0.1,
        patch_weight: float = 0.1,
        *,
        train_clsw: bool = False,
    ) -> None:
        super().__init__()
        if feat_dim < 2 or feat_dim % 2:
            raise ValueError(f"STRM needs an even feature size feat_dim >= 2; got {feat_dim}")
        self.feat_dim, self.num_frames = int(feat_dim), int(num_frames)
        self.patch_weight = float(patch_weight)
        self.train_clsw = bool(train_clsw)
        # construction order as the original's (transformers, DistanceLoss list, attn_pat, fr_enrich)
        self.trx = TRX(self.feat_dim, self.num_frames, cardinalities, out_dim, dropout)
        self.cardinalities = self.trx.cardinalities
        self.similarity = nn.ModuleList(
            QueryClassSimilarity(self.feat_dim, self.num_frames, c) for c in self.cardinalities
        )
        self.patch_attention = PatchAttention(self.feat_dim)
        self.frame_mixer = FrameMixer(self.feat_dim, self.num_frames)
        for module in self.similarity:
            module.clsW.requires_grad_(self.train_clsw)

    def encode(self, maps: Tensor) -> STRMEncoded:
        """Backbone maps ``[V, T, D, H, W]`` -> per-video features of both branches."""
        if maps.dim() != 5 or maps.shape[1:3] != (self.num_frames, self.feat_dim):
            raise ValueError(
                f"STRM expects backbone maps [videos, T={self.num_frames}, D={self.feat_dim}, H, W]; got "
                f"{tuple(maps.shape)}"
            )
        v = maps.shape[0]
        tokens = patch_tokens(maps.flatten(0, 1))  # [V·T, 16, D]
        patch = self.patch_attention(tokens).view(v, self.num_frames, self.feat_dim)
        return STRMEncoded(patch, self.frame_mixer(patch))

    def prepare_support(self, support: STRMEncoded, labels: Tensor) -> STRMSupport:
        if labels.dim() != 1 or labels.shape[0] != support.patch.shape[0]:
            raise ValueError(
                f"STRM needs one support label per support video; got {tuple(labels.shape)} labels for "
                f"{support.patch.shape[0]} videos"
            )
        trx = self.trx.prepare_support(support.frame, labels)
        return STRMSupport(trx, [m.embed(support.patch) for m in self.similarity])

    def query_output(self, support: STRMSupport, query: STRMEncoded) -> STRMOutput:
        frame_logits = self.trx.query_logits(support.trx, query.frame)
        groups = support.trx.groups
        patch_logits = torch.stack(
            [
                m.logits(emb, groups, m.embed(query.patch))
                for m, emb in zip(self.similarity, support.similarity, strict=True)
            ]
        ).mean(dim=0)
        return STRMOutput(frame_logits, patch_logits, frame_logits + self.patch_weight * patch_logits)

    def forward(self, support: Tensor, support_labels: Tensor, query: Tensor) -> STRMOutput:
        prepared = self.prepare_support(self.encode(support), support_labels)
        return self.query_output(prepared, self.encode(query))


def strm_loss(out: STRMOutput, query_labels: Tensor, patch_weight: float = 0.1) -> Tensor:
    """``CE(frame_logits) + patch_weight · CE(patch_logits)``, each cross-entropy **summed** over the queries
    (the original's ``loss``); the division by the tasks per update is the trainer's job."""
    labels = query_labels.to(out.frame_logits.device).long()
    frame = F.cross_entropy(out.frame_logits, labels, reduction="sum")
    return frame + patch_weight * F.cross_entropy(out.patch_logits, labels, reduction="sum")
