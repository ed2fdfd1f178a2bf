"""Frame tuples and class grouping for TRX (Perrett et al., "Temporal-Relational CrossTransformers for Few-Shot
Action Recognition", CVPR 2021).

A cross-transformer of cardinality ``k`` compares every strictly increasing ``k``-tuple of frame indices
(``itertools.combinations(range(T), k)``, in that order): 28 pairs and 56 triples for T = 8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import Tensor


def frame_tuples(num_frames: int, cardinality: int) -> Tensor:
    """``[C(T, k), k]`` long tensor of the strictly increasing frame-index tuples, in ``combinations`` order."""
    if cardinality < 1 or cardinality > num_frames:
        raise ValueError(
            f"a tuple cardinality must be between 1 and the number of frames ({num_frames}); got {cardinality}"
        )
    tuples = torch.tensor(list(combinations(range(num_frames), cardinality)), dtype=torch.long)
    assert tuples.shape == (math.comb(num_frames, cardinality), cardinality)
    return tuples


@dataclass(frozen=True)
class ClassGroups:
    """Support videos grouped by class, classes in sorted label order.

    classes: [way] the distinct labels, sorted. index: [way, max_shot] support rows of each class (padded with
    the class's first row). mask: [way, max_shot] True for real shots, or None when every class has max_shot.
    """

    classes: Tensor
    index: Tensor
    mask: Tensor | None

    @property
    def way(self) -> int:
        return int(self.classes.numel())


def group_by_label(labels: Tensor) -> ClassGroups:
    """Group support rows by label, in any order, keeping each class's rows in their given order."""
    if labels.dim() != 1 or labels.numel() == 0:
        raise ValueError(f"support labels must be a non-empty 1-D tensor; got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"support labels must be integers; got dtype {labels.dtype}")
    classes, inverse, counts = torch.unique(labels, sorted=True, return_inverse=True, return_counts=True)
    order = torch.argsort(inverse, stable=True)  # rows of class 0 first, then class 1, ...
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(labels.numel(), device=labels.device) - starts[inverse[order]]
    max_shot = int(counts.max())
    index = starts[:, None].expand(-1, max_shot).clone()
    index = order[index]  # padding: the class's first row
    index[inverse[order], slot] = order
    if bool((counts == max_shot).all()):
        return ClassGroups(classes, index, None)
    mask = torch.arange(max_shot, device=labels.device)[None, :] < counts[:, None]
    return ClassGroups(classes, index, mask)


def project_tuples(x: Tensor, weight: Tensor, bias: Tensor | None, tuples: Tensor) -> Tensor:
    """A linear map ``k·D -> out`` applied to every tuple's concatenated frames: ``x [B, T, D]``, ``weight
    [out, k·D]``, ``tuples [N, k]`` -> ``[B, N, out]``.

    Computed as the sum over tuple positions j of the weight's j-th column block applied to each frame (one
    matrix product per position, ``T·k`` frame projections per video) and gathered per tuple, instead of one
    ``k·D``-input projection per tuple (``C(T, k)`` per video); equal in real arithmetic.
    """
    d = x.shape[-1]
    if weight.shape[1] != d * tuples.shape[1]:
        raise ValueError(
            f"a tuple projection of {tuples.shape[1]} frames of size {d} needs a weight with {d * tuples.shape[1]} "
            f"input columns; got {tuple(weight.shape)}"
        )
    out = bias
    for j in range(tuples.shape[1]):
        # columns j·D..(j+1)·D of the weight: a strided view, no copy
        per_frame = F.linear(x, weight[:, j * d : (j + 1) * d])  # [B, T, out]
        gathered = per_frame[:, tuples[:, j]]  # [B, N, out]
        out = gathered if out is None else out + gathered
    return out
