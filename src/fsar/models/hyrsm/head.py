"""The HyRSM head: Wang et al., "Hybrid Relation Guided Set Matching for Few-shot Action Recognition", CVPR 2022.

The original's ``CNN_HyRSM_1shot`` / ``CNN_HyRSM_5shot`` (``/work/shared/specs/molo_hyrsm.md`` section 1), on
per-frame vectors ``support [S, T, D]`` and ``query [Q, T, D]``, vectorised over queries and classes:

1. intra-video: ``x' = ReLU(SA(PE(x)))`` per video (:mod:`fsar.models.temporal_attention`);
2. per-frame base-class logits ``Linear(D, num_classes)(x')`` -> ``[S+Q, T, num_classes]``;
3. set elements ``E [M, T, D]``: the class prototypes (mean of ``s'`` over each label's supports, the 5-shot head)
   or every support video (the 1-shot head). ``set_elements="auto"`` (default) takes the 1-shot head when every
   class has one support and the 5-shot head otherwise, as the original's configs do (SHOT = 1 vs SHOT >= 2); at
   one shot the two are identical (the set attention is permutation-equivariant);
4. inter-video relation, per query: the set ``[mean_t E; mean_t q'_n]`` through the post-norm multi-head attention
   of FEAT (:class:`PostNormAttention`), then ReLU -> ``R [Q, M+1, D]``;
5. fusion ``layer2 = Conv1d(2D, D, 1)`` on ``[frame; relation]``: computed as ``W_f x + W_r R + b`` (the kernel's
   two halves), so that the frame half is applied once per video and not once per (query, element) pair;
6. Bi-MHM with an **exact** cosine (HyRSM L2-normalises; MoLo's 0.01 epsilon is not used here) and **sums** over
   frames (:func:`fsar.models.tats.head.bi_mhm_reduce`); a class's distance is the mean over its elements;
   ``logits = -distance`` in sorted-label order (support labels in any order).

:func:`hyrsm_loss` is the original's training loss: ``(CE(logits) + w_cls * CE(per-frame class logits, global
labels repeated T times)) / tasks_per_batch``. Parameter names are the original's, so its checkpoints load through
:func:`fsar.models.hyrsm.convert_reference_state_dict`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsar.models.tats.head import bi_mhm_reduce
from fsar.models.temporal_attention import PositionalEncoder, PreNormSelfAttention

SET_ELEMENTS = ("auto", "videos", "prototypes")


@dataclass
class LabelGroups:
    """Support labels grouped in sorted order: ``classes [C]``, ``index [S]`` (each support's column) and
    ``weights [C, S]`` (1 / shots of the class where the support belongs to it, else 0)."""

    classes: Tensor
    index: Tensor
    weights: Tensor

    @property
    def way(self) -> int:
        return int(self.classes.numel())

    @property
    def one_shot(self) -> bool:
        return int(self.classes.numel()) == int(self.index.numel())


def group_labels(labels: Tensor, dtype: torch.dtype) -> LabelGroups:
    """Group support ``labels [S]`` (integers, any order) by sorted label."""
    if labels.dim() != 1 or labels.numel() == 0:
        raise ValueError(f"support labels must be a non-empty 1-D tensor; got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"support labels must be integers; got dtype {labels.dtype}")
    classes, index, counts = torch.unique(labels, sorted=True, return_inverse=True, return_counts=True)
    member = F.one_hot(index, classes.numel()).T.to(dtype)  # [C, S]
    return LabelGroups(classes, index, member / counts[:, None].to(dtype))


class PostNormAttention(nn.Module):
    """The post-norm multi-head attention of FEAT (Ye et al., CVPR 2020), as HyRSM uses it.

    Bias-free ``w_qs``, ``w_ks``, ``w_vs`` (D -> heads * d_k, init N(0, sqrt(2 / (D + d_k)))), heads stacked
    head-major, softmax of ``q k^T / sqrt(d_k)`` then attention dropout, heads concatenated, ``fc`` (xavier-normal
    weight) then dropout, ``LayerNorm(out + x)``.
    """

    def __init__(
        self, dim: int, num_heads: int = 8, attention_dropout: float = 0.1, dropout: float = 0.05
    ) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"the feature size {dim} must be a multiple of num_heads={num_heads}")
        self.num_heads = int(num_heads)
        self.d_k = dim // num_heads
        inner = self.num_heads * self.d_k
        self.w_qs = nn.Linear(dim, inner, bias=False)
        self.w_ks = nn.Linear(dim, inner, bias=False)
        self.w_vs = nn.Linear(dim, inner, bias=False)
        std = math.sqrt(2.0 / (dim + self.d_k))
        for linear in (self.w_qs, self.w_ks, self.w_vs):
            nn.init.normal_(linear.weight, mean=0.0, std=std)
        self.attention_dropout = nn.Dropout(p=float(attention_dropout))
        self.fc = nn.Linear(inner, dim)
        nn.init.xavier_normal_(self.fc.weight)
        self.dropout = nn.Dropout(p=float(dropout))
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        """Self-attention over the set axis: ``[N, L, D] -> [N, L, D]``."""
        n, length, _ = x.shape
        h, d_k = self.num_heads, self.d_k
        q, k, v = (w(x).reshape(n, length, h, d_k).transpose(1, 2) for w in (self.w_qs, self.w_ks, self.w_vs))
        attention = self.attention_dropout((q @ k.transpose(-1, -2) / math.sqrt(d_k)).softmax(dim=-1))
        out = (attention @ v).transpose(1, 2).reshape(n, length, h * d_k)
        return self.layer_norm(self.dropout(self.fc(out)) + x)


@dataclass
class HyRSMOutput:
    """``logits [Q, way]`` (-Bi-MHM, sorted-label columns) and ``class_logits [S+Q, T, num_classes]``."""

    logits: Tensor
    class_logits: Tensor


class HyRSM(nn.Module):
    """The HyRSM head on per-frame vectors.

    Args:
        feat_dim: D (2048 for ResNet-50).
        num_frames: T (8).
        num_classes: base classes of the classification layer (``TRAIN.NUM_CLASS``, 64 for SSv2/K100).
        num_heads: heads of both the self-attention and the set attention (8).
        pos_a, pos_b: the positional encoder's ``sqrt(D / pos_a)`` and ``pos_b`` (10, 1).
        set_elements: ``"auto"`` (the original's choice by shot, see the module docstring), ``"videos"`` (always
            the 1-shot head: per-video elements, class distance = mean over shots) or ``"prototypes"`` (always the
            5-shot head).
    """

    def __init__(
        self,
        feat_dim: int,
        num_frames: int = 8,
        num_classes: int = 64,
        num_heads: int = 8,
        pos_a: float = 10.0,
        pos_b: float = 1.0,
        set_elements: str = "auto",
    ) -> None:
        super().__init__()
        if set_elements not in SET_ELEMENTS:
            raise ValueError(f"set_elements must be one of {SET_ELEMENTS}; got {set_elements!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1; got {num_classes}")
        self.feat_dim, self.num_frames, self.num_classes = int(feat_dim), int(num_frames), int(num_classes)
        self.set_elements = set_elements
        self.pe = PositionalEncoder(self.feat_dim, pos_a, pos_b, dropout=0.1)
        self.temporal_atte_before = PreNormSelfAttention(self.feat_dim, num_heads, dropout=0.2)
        self.temporal_atte = PostNormAttention(self.feat_dim, num_heads, attention_dropout=0.1, dropout=0.05)
        self.layer2 = nn.Sequential(nn.Conv1d(2 * self.feat_dim, self.feat_dim, kernel_size=1))
        self.classification_layer = nn.Linear(self.feat_dim, self.num_classes)

    # -- per-video part ------------------------------------------------------------------------------------
    def _check_videos(self, x: Tensor, what: str) -> None:
        if x.dim() != 3 or x.shape[1] != self.num_frames or x.shape[2] != self.feat_dim:
            raise ValueError(
                f"HyRSM {what} features must be [videos, T={self.num_frames}, D={self.feat_dim}]; got {tuple(x.shape)}"
            )

    def video_frames(self, x: Tensor) -> Tensor:
        """Intra-video relation ``ReLU(SA(PE(x)))``: ``[V, T, D] -> [V, T, D]``."""
        self._check_videos(x, "video")
        return torch.relu(self.temporal_atte_before(self.pe(x)))

    def frame_class_logits(self, frames: Tensor) -> Tensor:
        """Per-frame base-class logits ``[V, T, num_classes]`` of intra-video features."""
        return self.classification_layer(frames)

    # -- episode part --------------------------------------------------------------------------------------
    def use_prototypes(self, groups: LabelGroups) -> bool:
        if self.set_elements == "auto":
            return not groups.one_shot
        return self.set_elements == "prototypes"

    def episode_logits(self, support_frames: Tensor, support_labels: Tensor, query_frames: Tensor) -> Tensor:
        """Logits ``[Q, way]`` from intra-video features (:meth:`video_frames`) of the support and the queries."""
        self._check_videos(support_frames, "support")
        self._check_videos(query_frames, "query")
        if support_labels.shape != support_frames.shape[:1]:
            raise ValueError(
                f"HyRSM needs one label per support video; got {tuple(support_labels.shape)} labels for "
                f"{support_frames.shape[0]} videos"
            )
        groups = group_labels(support_labels.to(support_frames.device), support_frames.dtype)
        if self.use_prototypes(groups):
            elements = torch.einsum("cs,std->ctd", groups.weights, support_frames)  # [C, T, D]
            element_weights = None
        else:
            elements = support_frames  # [S, T, D]
            element_weights = groups.weights
        m, d = elements.shape[0], self.feat_dim
        q = query_frames.shape[0]
        # inter-video relation, one set per query: [mean_t E; mean_t q'] -> R [Q, M+1, D]
        sets = torch.cat([elements.mean(dim=1).expand(q, m, d), query_frames.mean(dim=1)[:, None]], dim=1)
        relation = torch.relu(self.temporal_atte(sets))
        # fusion: Conv1d(2D, D, 1)([x; r]) = W_f x + W_r r + b
        conv = self.layer2[0]
        w_frame, w_relation = conv.weight[:, :d, 0], conv.weight[:, d:, 0]
        relation_part = relation @ w_relation.T + conv.bias  # [Q, M+1, D]
        fused_elements = (elements @ w_frame.T)[None] + relation_part[:, :m, None, :]  # [Q, M, T, D]
        fused_query = query_frames @ w_frame.T + relation_part[:, m, None, :]  # [Q, T, D]
        # Bi-MHM with the exact cosine, summed over frames: [Q, M]
        d_cos = 1 - torch.einsum(
            "qmtd,qud->qmtu", F.normalize(fused_elements, dim=-1), F.normalize(fused_query, dim=-1)
        )
        distance = bi_mhm_reduce(d_cos)
        if element_weights is not None:
            distance = distance @ element_weights.T  # mean over each class's supports: [Q, C]
        return -distance

    def forward(self, support: Tensor, support_labels: Tensor, query: Tensor) -> HyRSMOutput:
        s = self.video_frames(support)
        q = self.video_frames(query)
        logits = self.episode_logits(s, support_labels, q)
        return HyRSMOutput(logits=logits, class_logits=self.frame_class_logits(torch.cat([s, q], dim=0)))


def hyrsm_loss(
    out: HyRSMOutput,
    query_labels: Tensor,
    class_labels: Tensor,
    class_weight: float,
    tasks_per_batch: int = 4,
) -> dict[str, Tensor]:
    """The original's episode loss ``{"few_shot", "classification", "total"}``.

    ``few_shot`` = CE(logits, query_labels); ``classification`` = CE of the per-frame class logits against each
    video's global label ``class_labels [S+Q]`` repeated over its T frames (a mean over ``(S+Q) T`` rows);
    ``total = (few_shot + class_weight * classification) / tasks_per_batch`` (the original divides by its batch of
    tasks, ``TRAIN.BATCH_SIZE`` = 4, before accumulating gradients).
    """
    if tasks_per_batch < 1:
        raise ValueError(f"tasks_per_batch must be >= 1; got {tasks_per_batch}")
    class_logits = out.class_logits
    if class_logits.dim() != 3 or class_labels.shape != class_logits.shape[:1]:
        raise ValueError(
            f"hyrsm_loss: class_labels must hold one global label per video ({class_logits.shape[0]} = S+Q); got "
            f"shape {tuple(class_labels.shape)}"
        )
    num_classes = class_logits.shape[2]
    bad = (class_labels < 0) | (class_labels >= num_classes)
    if bool(bad.any()):
        raise ValueError(
            f"hyrsm_loss: global class labels must lie in [0, {num_classes}); got {sorted(set(class_labels[bad].tolist()))}. "
            "Set num_classes to the number of training classes and make sure the batches carry global labels"
        )
    few_shot = F.cross_entropy(out.logits, query_labels.long())
    frames = class_logits.shape[1]
    classification = F.cross_entropy(
        class_logits.flatten(0, 1), class_labels.long().repeat_interleave(frames)
    )
    total = (few_shot + class_weight * classification) / tasks_per_batch
    return {"few_shot": few_shot, "classification": classification, "total": total}
