"""The few-shot head of TATs: frame descriptors, prototypes and the bidirectional mean-Hausdorff distance.

Kumar et al., ECCV 2024 (tats.md section 5). The metric is the "Bi-MHM" of HyRSM (Wang et al., CVPR 2022)
and MoLo (Wang et al., CVPR 2023), with sums instead of means as in the TATs code:

- prototype of a class = mean over its shots of the raw point tokens ``[T, N, D]`` (before the ReLU);
- frame descriptors ``f = mean_n ReLU(tokens)`` -> ``[T, D]``;
- ``d_ij = 1 - <q_i, p_j> / (|q_i| |p_j| + eps)`` with ``eps = 0.01`` added to the product of the norms;
- ``dist(q, p) = sum_i min_j d_ij + sum_j min_i d_ij``;  logits = ``-dist / temperature``.

``point_average="all"`` (faithful) averages over all N points, including those masked out by the query
mask. ``point_average="existing"`` only averages tokens that exist: a video's descriptor at frame t is the
mean of ``ReLU(tokens[t, n])`` over the points with ``mask[t, n]``; a prototype token ``(t, n)`` is the
mean over the shots where it exists, and exists if it exists in any shot (with one shot both rules agree).
A frame with no existing point gets a zero descriptor.
"""

from __future__ import annotations

import torch
from torch import Tensor

POINT_AVERAGES = ("all", "existing")


def _check_point_average(point_average: str, mask: Tensor | None) -> None:
    if point_average not in POINT_AVERAGES:
        raise ValueError(f"unknown point_average {point_average!r}; expected one of {POINT_AVERAGES}")
    if point_average == "existing" and mask is None:
        raise ValueError('point_average="existing" needs the point mask [B, T, N]')


def frame_descriptors(tokens: Tensor, mask: Tensor | None = None, point_average: str = "all") -> Tensor:
    """``tokens [B, T, N, D]`` -> ``[B, T, D]``: mean over points of ``ReLU(tokens)``."""
    _check_point_average(point_average, mask)
    act = torch.relu(tokens)
    if point_average == "all":
        return act.mean(dim=2)
    weights = mask.to(act.dtype).unsqueeze(-1)  # type: ignore[union-attr]
    return (act * weights).sum(dim=2) / weights.sum(dim=2).clamp_min(1.0)


def class_prototypes(
    tokens: Tensor, way: int, shot: int, mask: Tensor | None = None, point_average: str = "all"
) -> tuple[Tensor, Tensor | None]:
    """Class-major support tokens ``[way * shot, T, N, D]`` -> prototype tokens ``[way, T, N, D]`` (+ mask).

    ``"all"``: plain mean over shots (mask passed through as None). ``"existing"``: masked mean over shots,
    prototype mask = any shot exists.
    """
    _check_point_average(point_average, mask)
    if tokens.shape[0] != way * shot:
        raise ValueError(f"expected way*shot = {way * shot} support videos; got {tokens.shape[0]}")
    grouped = tokens.reshape(way, shot, *tokens.shape[1:])
    if point_average == "all":
        return grouped.mean(dim=1), None
    m = mask.reshape(way, shot, *mask.shape[1:])  # type: ignore[union-attr]
    w = m.to(tokens.dtype).unsqueeze(-1)
    proto = (grouped * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)
    return proto, m.any(dim=1)


def frame_distances(query_frames: Tensor, proto_frames: Tensor, eps: float = 0.01) -> Tensor:
    """Cosine distances ``1 - <q_i, p_j> / (|q_i||p_j| + eps)``: ``[Q, Tq, D]`` x ``[C, Tc, D]`` -> ``[Q, C, Tq, Tc]``."""
    if query_frames.dim() != 3 or proto_frames.dim() != 3 or query_frames.shape[-1] != proto_frames.shape[-1]:
        raise ValueError(
            f"expected query frames [Q, T, D] and prototype frames [C, T, D]; got {tuple(query_frames.shape)} "
            f"and {tuple(proto_frames.shape)}"
        )
    dots = torch.einsum("qid,cjd->qcij", query_frames, proto_frames)
    norms = torch.einsum("qi,cj->qcij", query_frames.norm(dim=-1), proto_frames.norm(dim=-1))
    return 1 - dots / (norms + eps)


def bi_mhm_reduce(d: Tensor) -> Tensor:
    """``sum_i min_j d_ij + sum_j min_i d_ij`` over the last two axes of frame distances ``[..., Ti, Tj]``.

    Shared by every Bi-MHM of fsar (TATs, HyRSM, MoLo): they differ only in how ``d`` is computed."""
    return d.min(dim=-1).values.sum(dim=-1) + d.min(dim=-2).values.sum(dim=-1)


def bi_mhm_distance(query_frames: Tensor, proto_frames: Tensor, eps: float = 0.01) -> Tensor:
    """Bidirectional mean-Hausdorff distance ``sum_i min_j d_ij + sum_j min_i d_ij``: -> ``[Q, C]``."""
    return bi_mhm_reduce(frame_distances(query_frames, proto_frames, eps))


def few_shot_logits(
    query_frames: Tensor, proto_frames: Tensor, temperature: float = 1.0, eps: float = 0.01
) -> Tensor:
    """``-bi_mhm_distance / temperature``: ``[Q, T, D]`` x ``[C, T, D]`` -> ``[Q, C]``."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    return -bi_mhm_distance(query_frames, proto_frames, eps) / temperature
