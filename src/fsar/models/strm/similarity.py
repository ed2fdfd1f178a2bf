"""STRM's query-class similarity classifier on patch-enriched frames (the original's ``DistanceLoss``).

Thatipelli et al., "Spatio-temporal Relation Modeling for Few-shot Action Recognition", CVPR 2022
(``shared/specs/strm.md`` §3). One module per tuple cardinality k:

1. dropout (p = 0.1) on the support and on the query frame features (no positional encoding in this branch);
2. every k-tuple of frames (``itertools.combinations`` order, as TRX) concatenated and mapped by ``clsW``
   (Linear ``k·D -> D/2``) then ReLU;
3. for class c: the Euclidean distance (not squared) from each query tuple to every tuple of every shot of c,
   the **minimum** over those, the **mean** over the query's tuples, negated -> logit ``[q, c]``.

In the original these modules sit in a plain Python list (quirk Q1): ``clsW`` is never trained, never saved,
and ``model.eval()`` does not reach their dropout. Here they are registered modules, so ``eval()`` turns the
dropout off and the state dict holds ``clsW``; whether ``clsW`` trains is the head's ``train_clsw`` option
(default False: frozen at its random initialisation, the original's training behaviour). Gradients still flow
*through* a frozen ``clsW`` into the patch branch, as in the original.

Vectorised over queries and classes: one distance matrix ``[Q·N, way, shots·N]`` without gradient, from one
matrix product, picks each query tuple's nearest tuple of each class (classes with fewer shots are padded and
masked with +inf); the minimum is then recomputed exactly from that tuple alone, which is where the gradient of a
minimum goes (the original's ``cdist`` + ``min``, whose gradient also reaches only the nearest tuple). The tuple
projection is TRX's (:func:`fsar.models.trx.project_tuples`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsar.models.trx.tuples import ClassGroups, frame_tuples, project_tuples

SIMILARITY_DROPOUT = 0.1


class QueryClassSimilarity(nn.Module):
    """The similarity classifier of one cardinality. ``clsW`` keeps the original's name."""

    def __init__(self, feat_dim: int, num_frames: int, cardinality: int, dropout: float = SIMILARITY_DROPOUT):
        super().__init__()
        self.feat_dim, self.num_frames, self.cardinality = int(feat_dim), int(num_frames), int(cardinality)
        self.register_buffer("tuples", frame_tuples(self.num_frames, self.cardinality), persistent=False)
        self.dropout = nn.Dropout(p=float(dropout))
        self.clsW = nn.Linear(self.feat_dim * self.cardinality, self.feat_dim // 2)  # noqa: N815 (original name)

    @property
    def num_tuples(self) -> int:
        return int(self.tuples.shape[0])

    def embed(self, frames: Tensor) -> Tensor:
        """Frame features ``[V, T, D]`` -> tuple embeddings ``[V, N, D/2]`` (dropout, projection, ReLU)."""
        if frames.dim() != 3 or frames.shape[1:] != (self.num_frames, self.feat_dim):
            raise ValueError(
                f"STRM similarity expects [videos, T={self.num_frames}, D={self.feat_dim}]; got {tuple(frames.shape)}"
            )
        x = self.dropout(frames)
        return F.relu(project_tuples(x, self.clsW.weight, self.clsW.bias, self.tuples))

    @staticmethod
    def logits(support: Tensor, groups: ClassGroups, query: Tensor) -> Tensor:
        """``-mean_tuples min_class-tuples ||q - s||``: ``[Q, way]`` from :meth:`embed` outputs."""
        dtype = torch.promote_types(query.dtype, torch.float32)  # float32 at least, also under autocast
        with torch.autocast(device_type=query.device.type, enabled=False):
            cs = support[groups.index].to(dtype)  # [way, shots, N, E]
            way, shots, n, e = cs.shape
            q = query.shape[0]
            flat_query = query.to(dtype).reshape(q * n, e)
            flat_class = cs.reshape(way, shots * n, e)
            with (
                torch.no_grad()
            ):  # which class tuple is nearest: |a|² + |b|² - 2ab distances (one matrix product)
                distances = torch.cdist(flat_query[None], flat_class.reshape(1, way * shots * n, e))
                distances = distances.view(q * n, way, shots * n)
                if groups.mask is not None:
                    keep = groups.mask[:, :, None].expand(way, shots, n).reshape(1, way, shots * n)
                    distances = distances.masked_fill(~keep, float("inf"))
                nearest_index = distances.argmin(dim=-1)  # [Q·N, way]
            # the minimum recomputed exactly, with its gradient, from the nearest tuple only
            # gather, not advanced indexing: its backward (scatter_add) is deterministic on the CPU, index_put's is not
            index = nearest_index.T[:, :, None].expand(way, q * n, e)
            nearest_tuple = torch.gather(flat_class, 1, index)  # [way, Q·N, E]
            nearest = torch.linalg.vector_norm(flat_query[None] - nearest_tuple, dim=-1).T  # [Q·N, way]
            return -nearest.view(q, n, way).mean(dim=1)
