"""The CLIP-FSAR head: a prototype transformer that mixes each class's text into its support frames, and
bidirectional OTAM matching.

Wang et al., "CLIP-guided Prototype Modulating for Few-shot Action Recognition", IJCV 2023
(``alibaba-mmai-research/CLIP-FSAR``; described in /work/shared/specs/clip_fsar.md §2-§4).

- :class:`PrototypeTransformer` (the original's ``context2``): depth-1 pre-norm multi-head self-attention (8 heads,
  bias-free q/k/v, dropout 0.2 after the output projection) and a residual FFN D -> 2048 -> D (exact GELU, dropout
  0.05) **without** a norm before it; no positional encoding.
- Queries go through it alone (``[Q, T, D]``). Each support video goes through it with its class's text
  embedding appended as token T+1, whose output is dropped; then the shots of a class are averaged
  (``merge_before=True``: the frames are averaged over the shots first, then the transformer runs once per class).
- Distance: ``OTAM_λ(1 - cos)`` with ``cos = a.b / (|a||b| + 0.01)`` and λ = 0.5, query->prototype plus
  prototype->query (a sum, not a mean), on fsar's soft-DTW (:func:`fsar.models.soft_dtw.soft_dtw`,
  ``moves="otam_trx"``: the TRX-family recursion). Logits are minus the distance, no temperature.
- ``text_logits``: ``scale * cos(mean over frames, text)`` with the same cosine; ``scale`` is learned, starts
  at 1.0 and is neither exponentiated nor clamped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsar.models.base import full_precision
from fsar.models.otam import frame_cosine_distance, offset_cosine_similarity
from fsar.models.soft_dtw import soft_dtw

# The cosine of the original adds this to the product of the norms (not a clamp).
NORM_OFFSET = 0.01
# The original's OTAM recursion: the TRX-family moves.
OTAM_MOVES = "otam_trx"


class PreNormAttention(nn.Module):
    """``x + Dropout(W_o · MHA(LN(x)))``: one LayerNorm for q, k and v; bias-free q/k/v maps D -> D."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"feature width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        h = self.num_heads
        y = self.norm(x)
        q, k, v = (
            proj(y).reshape(b, n, h, d // h).transpose(1, 2) for proj in (self.to_q, self.to_k, self.to_v)
        )
        attn = torch.softmax(q @ k.transpose(-1, -2) * (d // h) ** -0.5, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, d)
        return x + self.dropout(self.to_out(out))


class PrototypeTransformerLayer(nn.Module):
    def __init__(
        self, dim: int, num_heads: int, mlp_dim: int, attn_dropout: float, ffn_dropout: float
    ) -> None:
        super().__init__()
        self.attention = PreNormAttention(dim, num_heads, attn_dropout)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, mlp_dim),
            nn.GELU(),
            nn.Dropout(ffn_dropout),
            nn.Linear(mlp_dim, dim),
            nn.Dropout(ffn_dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.attention(x)
        return x + self.feed_forward(x)  # no norm before the FFN (as in the original)


class PrototypeTransformer(nn.Module):
    """``depth`` layers of :class:`PrototypeTransformerLayer` over ``[B, N, D]`` tokens (no positional encoding)."""

    def __init__(
        self, dim: int, num_heads: int, mlp_dim: int, depth: int, attn_dropout: float, ffn_dropout: float
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1; got {depth}")
        self.layers = nn.ModuleList(
            PrototypeTransformerLayer(dim, num_heads, mlp_dim, attn_dropout, ffn_dropout)
            for _ in range(depth)
        )

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


@dataclass
class CLIPFSARPrototypes:
    """One episode's class prototypes ``[way, T, D]`` (columns in sorted label order) and those labels."""

    prototypes: Tensor
    classes: Tensor


class CLIPFSARHead(nn.Module):
    """The CLIP-FSAR head on per-frame features (see the module docstring).

    ``logits = head(support [S, T, D], support_labels [S], query [Q, T, D], class_text [way, D]) -> [Q, way]``:
    ``class_text`` row i and logit column i belong to the i-th smallest support label; the support may be in any
    order. ``head.text_logits(videos [N, T, D], text [C, D]) -> [N, C]``.
    """

    def __init__(
        self,
        feat_dim: int,
        num_frames: int = 8,
        num_heads: int = 8,
        mlp_dim: int = 2048,
        depth: int = 1,
        attn_dropout: float = 0.2,
        ffn_dropout: float = 0.05,
        otam_lambda: float = 0.5,
        bidirectional: bool = True,
        merge_before: bool = False,
    ) -> None:
        super().__init__()
        if otam_lambda <= 0:
            raise ValueError(f"otam_lambda must be > 0; got {otam_lambda}")
        self.feat_dim = int(feat_dim)
        self.num_frames = int(num_frames)
        self.otam_lambda = float(otam_lambda)
        self.bidirectional = bool(bidirectional)
        self.merge_before = bool(merge_before)
        self.scale = nn.Parameter(torch.ones(1))
        self.transformer = PrototypeTransformer(
            self.feat_dim, num_heads, mlp_dim, depth, attn_dropout, ffn_dropout
        )

    # -- checks ------------------------------------------------------------------------------------------
    def _check_frames(self, x: Tensor, what: str) -> None:
        if x.dim() != 3 or x.shape[2] != self.feat_dim:
            raise ValueError(
                f"CLIP-FSAR {what} features must be [N, T, {self.feat_dim}]; got {tuple(x.shape)}"
            )

    # -- the two steps -----------------------------------------------------------------------------------
    def prototypes(self, support: Tensor, support_labels: Tensor, class_text: Tensor) -> CLIPFSARPrototypes:
        """Class prototypes ``[way, T, D]`` from the support frames and the classes' text (sorted label order)."""
        self._check_frames(support, "support")
        if support_labels.dim() != 1 or support_labels.shape[0] != support.shape[0]:
            raise ValueError(
                f"support_labels must be [S={support.shape[0]}]; got {tuple(support_labels.shape)}"
            )
        classes, inverse = torch.unique(support_labels, sorted=True, return_inverse=True)
        way = classes.shape[0]
        if class_text.dim() != 2 or tuple(class_text.shape) != (way, self.feat_dim):
            raise ValueError(
                f"class_text must be [way={way}, {self.feat_dim}] (one row per support class, in sorted label "
                f"order); got {tuple(class_text.shape)}"
            )
        t = support.shape[1]
        counts = torch.bincount(inverse, minlength=way).to(support.dtype)
        class_text = class_text.to(support.dtype)

        def class_mean(x: Tensor) -> Tensor:  # [S, ...] -> [way, ...], mean over each class's shots
            summed = x.new_zeros((way, *x.shape[1:])).index_add_(0, inverse, x)
            return summed / counts.reshape(way, *([1] * (x.dim() - 1)))

        if self.merge_before:
            tokens = torch.cat([class_mean(support), class_text[:, None, :]], dim=1)
            protos = self.transformer(tokens)[:, :t]
        else:
            tokens = torch.cat([support, class_text[inverse][:, None, :]], dim=1)
            protos = class_mean(self.transformer(tokens)[:, :t])
        return CLIPFSARPrototypes(protos, classes)

    def query_logits(self, prototypes: CLIPFSARPrototypes, query: Tensor) -> Tensor:
        """``-(OTAM(query -> prototype) + OTAM(prototype -> query))`` for every query and class: ``[Q, way]``."""
        self._check_frames(query, "query")
        z = self.transformer(query)
        protos = prototypes.prototypes
        if z.dtype == torch.float64:
            return -self._distance(z, protos.to(z.dtype))
        # float32 outside autocast: in low precision the summed costs lose the differences that decide the class
        context, (z32, p32) = full_precision(z, protos)
        with context:
            return -self._distance(z32, p32)

    def _distance(self, query: Tensor, prototypes: Tensor) -> Tensor:
        dist = frame_cosine_distance(query, prototypes, norm_offset=NORM_OFFSET)  # [Q, way, T, T]
        cost = soft_dtw(dist, gamma=self.otam_lambda, moves=OTAM_MOVES, pad=True)
        if self.bidirectional:
            cost = cost + soft_dtw(dist.transpose(-1, -2), gamma=self.otam_lambda, moves=OTAM_MOVES, pad=True)
        return cost

    def forward(self, support: Tensor, support_labels: Tensor, query: Tensor, class_text: Tensor) -> Tensor:
        return self.query_logits(self.prototypes(support, support_labels, class_text), query)

    def text_logits(self, videos: Tensor, text: Tensor) -> Tensor:
        """``scale * cos(mean over frames of videos [N, T, D], text [C, D])`` -> ``[N, C]`` (the +0.01 cosine)."""
        self._check_frames(videos, "video")
        if text.dim() != 2 or text.shape[1] != self.feat_dim:
            raise ValueError(f"text must be [C, {self.feat_dim}]; got {tuple(text.shape)}")
        return self.scale * offset_cosine_similarity(videos.mean(dim=1), text.to(videos.dtype), NORM_OFFSET)


def clip_fsar_loss(
    logits: Tensor, query_labels: Tensor, text_logits: Tensor, class_ids: Tensor, text_weight: float
) -> dict[str, Tensor]:
    """The loss of one task: ``{"few_shot": CE(logits, query_labels), "text": CE(text_logits, class_ids),
    "total": few_shot + text_weight * text}`` (mean cross-entropies; the original also divides by its 4 tasks
    per update, which is the trainer's ``tasks_per_update`` here)."""
    few_shot = F.cross_entropy(logits, query_labels)
    text = F.cross_entropy(text_logits, class_ids)
    return {"few_shot": few_shot, "text": text, "total": few_shot + text_weight * text}
