"""HyRSM written as loops, as the equations read: the check and the benchmark baseline of the vectorised head.

Wang et al., "Hybrid Relation Guided Set Matching for Few-shot Action Recognition", CVPR 2022
(``/work/shared/specs/molo_hyrsm.md`` section 1). It uses the parameters of a :class:`fsar.models.hyrsm.HyRSM` but
none of its code: the positional table from Python's ``math`` with the original's indices, attention head by head
and video by video, the fusion as a ``Conv1d`` on the concatenation ``[frames; relation]`` for every (query,
element) pair, and the Bi-MHM distance frame pair by frame pair. Eval mode only (no dropout).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from fsar.models.hyrsm.head import HyRSM


def loop_pe_table(length: int, dim: int) -> Tensor:
    """The original's table: ``sin(pos / 10000^(2i/D))`` at even i, ``cos(pos / 10000^(2(i+1)/D))`` at i + 1,
    in Python floats, stored in float32."""
    rows = []
    for pos in range(length):
        row = [0.0] * dim
        for i in range(0, dim, 2):
            row[i] = math.sin(pos / (10000 ** ((2 * i) / dim)))
            row[i + 1] = math.cos(pos / (10000 ** ((2 * (i + 1)) / dim)))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float32)


def loop_positional_encoding(x: Tensor, pos_a: float, pos_b: float) -> Tensor:
    """``x [L, D] * sqrt(D / pos_a) + pos_b * table[:L]`` for one video."""
    length, dim = x.shape
    return x * math.sqrt(dim / pos_a) + pos_b * loop_pe_table(length, dim).to(x.dtype)


def loop_self_attention(x: Tensor, block, num_heads: int) -> Tensor:
    """The pre-norm self-attention of one video ``x [L, D]``: ``x + W_o(MHSA(LN(x)))``, head by head."""
    dim = x.shape[1]
    dh = dim // num_heads
    y = F.layer_norm(x, (dim,), block.norm.weight, block.norm.bias, block.norm.eps)
    qkv = y @ block.fn.to_qkv.weight.T
    heads = []
    for h in range(num_heads):
        q = qkv[:, h * dh : (h + 1) * dh]
        k = qkv[:, dim + h * dh : dim + (h + 1) * dh]
        v = qkv[:, 2 * dim + h * dh : 2 * dim + (h + 1) * dh]
        heads.append(torch.softmax(q @ k.T * dh**-0.5, dim=-1) @ v)
    linear = block.fn.to_out[0]
    return x + torch.cat(heads, dim=1) @ linear.weight.T + linear.bias


def loop_set_attention(x: Tensor, mha, num_heads: int) -> Tensor:
    """FEAT's post-norm multi-head attention over one set ``x [L, D]``, head by head."""
    dim = x.shape[1]
    dk = mha.d_k
    heads = []
    for h in range(num_heads):
        rows = slice(h * dk, (h + 1) * dk)
        q = x @ mha.w_qs.weight[rows].T
        k = x @ mha.w_ks.weight[rows].T
        v = x @ mha.w_vs.weight[rows].T
        heads.append(torch.softmax(q @ k.T / math.sqrt(dk), dim=-1) @ v)
    out = torch.cat(heads, dim=1) @ mha.fc.weight.T + mha.fc.bias
    return F.layer_norm(out + x, (dim,), mha.layer_norm.weight, mha.layer_norm.bias, mha.layer_norm.eps)


def loop_bi_mhm(a: Tensor, b: Tensor, eps: float = 0.0) -> Tensor:
    """``sum_i min_j d_ij + sum_j min_i d_ij`` with ``d_ij = 1 - <a_i, b_j> / (|a_i| |b_j| + eps)``, row by row."""
    d = torch.stack([1 - (b @ ai) / (ai.norm() * b.norm(dim=1) + eps) for ai in a])  # [Ta, Tb]
    return sum(d[i].min() for i in range(d.shape[0])) + sum(d[:, j].min() for j in range(d.shape[1]))


def hyrsm_loop_intra(head: HyRSM, videos: Tensor) -> list[Tensor]:
    """``ReLU(SA(PE(x)))`` of every video, one at a time."""
    heads = head.temporal_atte_before.fn.num_heads
    return [
        torch.relu(
            loop_self_attention(
                loop_positional_encoding(v, head.pe.pos_a, head.pe.pos_b), head.temporal_atte_before, heads
            )
        )
        for v in videos
    ]


def hyrsm_loop_logits(
    head: HyRSM, support: Tensor, support_labels: Tensor, query: Tensor
) -> tuple[Tensor, Tensor]:
    """``(logits [Q, way], class_logits [S+Q, T, num_classes])`` of ``head`` in eval mode, with loops."""
    s = hyrsm_loop_intra(head, support)
    q = hyrsm_loop_intra(head, query)
    linear = head.classification_layer
    class_logits = torch.stack([x @ linear.weight.T + linear.bias for x in s + q])
    labels = [int(v) for v in support_labels.tolist()]
    classes = sorted(set(labels))
    one_shot = len(classes) == len(labels)
    prototypes = head.set_elements == "prototypes" or (head.set_elements == "auto" and not one_shot)
    if prototypes:
        elements = [torch.stack([s[i] for i, y in enumerate(labels) if y == c]).mean(dim=0) for c in classes]
        element_labels = classes
    else:
        elements, element_labels = s, labels
    conv = head.layer2[0]
    num_heads = head.temporal_atte.num_heads
    logits = []
    for n in range(len(q)):
        the_set = torch.stack([e.mean(dim=0) for e in elements] + [q[n].mean(dim=0)])
        relation = torch.relu(loop_set_attention(the_set, head.temporal_atte, num_heads))

        def fuse(frames: Tensor, r: Tensor) -> Tensor:
            pair = torch.cat([frames, r.expand_as(frames)], dim=1)  # [T, 2D]
            return F.conv1d(pair.T[None], conv.weight, conv.bias)[0].T  # [T, D]

        fused_query = fuse(q[n], relation[len(elements)])
        distances = [loop_bi_mhm(fuse(e, relation[m]), fused_query) for m, e in enumerate(elements)]
        row = []
        for c in classes:
            mine = [dist for dist, y in zip(distances, element_labels, strict=True) if y == c]
            row.append(-sum(mine) / len(mine))
        logits.append(torch.stack(row))
    return torch.stack(logits), class_logits


def loop_cross_entropy(logits: Tensor, labels: list[int]) -> Tensor:
    """Mean over rows of ``-log softmax(row)[label]``, row by row."""
    terms = [-(row[y] - torch.logsumexp(row, dim=0)) for row, y in zip(logits, labels, strict=True)]
    return sum(terms) / len(terms)
