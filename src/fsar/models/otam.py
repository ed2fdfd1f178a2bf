"""OTAM: Cao et al., "Few-Shot Video Classification via Temporal Alignment", CVPR 2020.

A video is the sequence of its spatially mean-pooled frame features ``[T, C]``. The distance between a query
and a class is a soft-DTW cost (:mod:`fsar.models.soft_dtw`) over the frame distance matrix
``D[i, j] = 1 - cos(query frame i, prototype frame j)``, padded with a zero column before and after along the
prototype axis. ``moves="otam"`` (default) uses the paper's ordered moves: (i-1, j-1) and (i, j-1) inside, plus
(i-1, j) in the two padded columns; ``moves="dtw"`` allows all three everywhere, as TA2N's soft-DTW module
does; ``moves="otam_trx"`` is the TRX-family recursion ``OTAM_cum_dist`` (also the vertical move into the first
real column; :mod:`fsar.models.soft_dtw`). With ``bidirectional=True`` (default, as in those
re-implementations) the distance is the mean of the query->prototype and prototype->query costs (the TRX-family
code sums them, which only scales the logits). Logits are ``-distance / temperature``.

Shots: ``shots="mean_features"`` (default) aligns the query with one prototype per class, the per-frame mean of
the class's shots; ``shots="mean_distance"`` aligns it with every shot and averages the distances (the
re-implementations' choice). The two coincide at 1 shot.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsar.data.batch import ClipBatch
from fsar.models.base import FewShotClassifier
from fsar.models.protonet import class_major_shape, pooled_frame_features
from fsar.models.soft_dtw import MOVES, otam_distance

SHOT_MODES = ("mean_features", "mean_distance")


def frame_cosine_distance(query: Tensor, support: Tensor, norm_offset: float | None = None) -> Tensor:
    """``1 - cos`` between every query frame and every support frame: ``[Q, T, C] x [S, U, C] -> [Q, S, T, U]``.

    ``norm_offset=None``: the usual cosine (norms clamped at 1e-12). A number ``e``: ``a.b / (|a| |b| + e)``, the
    cosine of the TRX-family code (``cos_sim``, e = 0.01 in HyRSM, MoLo and CLIP-FSAR).
    """
    if norm_offset is None:
        q = F.normalize(query, dim=-1)
        s = F.normalize(support, dim=-1)
        return 1 - torch.einsum("qtc,suc->qstu", q, s)
    dots = torch.einsum("qtc,suc->qstu", query, support)
    norms = query.norm(dim=-1)[:, None, :, None] * support.norm(dim=-1)[None, :, None, :]
    return 1 - dots / (norms + norm_offset)


def offset_cosine_similarity(a: Tensor, b: Tensor, norm_offset: float) -> Tensor:
    """``a.b / (|a| |b| + norm_offset)`` for every row pair: ``[N, C] x [M, C] -> [N, M]``."""
    return (a @ b.transpose(0, 1)) / (a.norm(dim=-1)[:, None] * b.norm(dim=-1)[None, :] + norm_offset)


class OTAM(FewShotClassifier):
    """Ordered temporal alignment of query and class frames. ``encode`` returns ``[B, T, C]``.

    ``gamma``: soft-DTW smoothing (0: hard DTW). ``temperature``: logits = -distance / temperature.
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        gamma: float = 0.1,
        moves: str = "otam",
        bidirectional: bool = True,
        temperature: float = 1.0,
        shots: str = "mean_features",
    ) -> None:
        super().__init__(backbone)
        if moves not in MOVES:
            raise ValueError(f"moves must be one of {MOVES}; got {moves!r}")
        if shots not in SHOT_MODES:
            raise ValueError(f"shots must be one of {SHOT_MODES}; got {shots!r}")
        if gamma < 0 or temperature <= 0:
            raise ValueError(
                f"need gamma >= 0 and temperature > 0; got gamma={gamma}, temperature={temperature}"
            )
        self.gamma = float(gamma)
        self.moves = moves
        self.bidirectional = bidirectional
        self.temperature = float(temperature)
        self.shots = shots
        self.support: Tensor | None = None  # [way, shots or 1, T, C]

    def encode(self, batch: ClipBatch) -> Tensor:
        return pooled_frame_features(self, batch)

    def process_support_set(self, support: Tensor, support_labels: Tensor) -> None:
        if support.dim() != 3:
            raise ValueError(f"OTAM support features must be [videos, T, C]; got {tuple(support.shape)}")
        way, shot = class_major_shape(self, support, support_labels)
        self.way = way
        grouped = support.reshape(way, shot, *support.shape[1:])
        self.support = grouped.mean(dim=1, keepdim=True) if self.shots == "mean_features" else grouped

    def class_distances(self, query: Tensor) -> Tensor:
        """OTAM distance of every query to every class: ``[Q, way]``."""
        if self.support is None:
            raise RuntimeError("OTAM: call process_support_set(support, labels) before forward(query)")
        way, per_class, _, c = self.support.shape
        if query.dim() != 3 or query.shape[2] != c:
            raise ValueError(f"OTAM query features must be [Q, T, {c}]; got {tuple(query.shape)}")
        dist = frame_cosine_distance(query, self.support.flatten(0, 1))  # [Q, way * per_class, T, T']
        # float32 at least: under bf16/fp16 autocast the cumulative costs would lose their small differences
        cost = otam_distance(
            dist.float(), gamma=self.gamma, moves=self.moves, bidirectional=self.bidirectional
        )
        return cost.reshape(query.shape[0], way, per_class).mean(dim=2)

    def forward(self, query: Tensor) -> Tensor:
        return -self.class_distances(query) / self.temperature
