"""One temporal cross-transformer of TRX, vectorised over classes and queries.

Perrett et al., "Temporal-Relational CrossTransformers for Few-Shot Action Recognition", CVPR 2021.

For cardinality k with tuples ``t_1..t_N`` (every strictly increasing k-tuple of the T frames):

1. Every frame feature gets the positional encoding, then dropout (:mod:`fsar.models.trx.encoding`).
2. A tuple's input is the concatenation of its k frame features (k·D values). ``k_linear`` and ``v_linear``
   map it to ``out_dim``; keys then go through LayerNorm ``norm_k``. The original also builds ``norm_v`` but
   never applies it: here it exists (so checkpoints load strictly) and is applied only with
   ``apply_norm_v=True``; otherwise its parameters are frozen (they would get no gradient anyway).
3. For each class c (sorted label order) and each query tuple: scores against every tuple of every shot of c,
   divided by √out_dim, one softmax **jointly over all shots and tuples of c**; the query-specific prototype is
   the softmax-weighted sum of those tuples' values.
4. Logit ``[q, c] = -||V_q - P_qc||²_F / N`` (values minus prototypes over tuples and channels).

Differences from the original's code, all exact in real arithmetic (tests compare with the loop form,
:mod:`fsar.models.trx.loop`, to 1e-9 in float64):

- The original loops over classes, and over queries for the softmax; here every (query, class) pair is one
  batched computation (classes with unequal shots are padded and masked out of the softmax).
- A linear map of a concatenation is the sum of the per-position blocks of its weight applied to each frame,
  so each frame is projected once per tuple position (``T·k`` frame projections per video) and the tuples
  are sums of gathered rows, instead of one ``k·D``-input projection per tuple (``C(T, k)`` per video): 7x
  fewer multiply-adds for triples of 8 frames, 3.5x for pairs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fsar.models.trx.encoding import PositionalEncoding
from fsar.models.trx.tuples import ClassGroups, frame_tuples, project_tuples


class TemporalCrossTransformer(nn.Module):
    """The cross-transformer of one tuple cardinality. Parameter names are the original's."""

    def __init__(
        self,
        feat_dim: int,
        num_frames: int,
        cardinality: int,
        out_dim: int = 1152,
        dropout: float = 0.1,
        apply_norm_v: bool = False,
    ) -> None:
        super().__init__()
        if feat_dim < 1 or out_dim < 1:
            raise ValueError(f"feat_dim and out_dim must be >= 1; got {feat_dim} and {out_dim}")
        self.feat_dim, self.num_frames = int(feat_dim), int(num_frames)
        self.cardinality, self.out_dim = int(cardinality), int(out_dim)
        self.apply_norm_v = bool(apply_norm_v)
        self.register_buffer("tuples", frame_tuples(self.num_frames, self.cardinality), persistent=False)
        self.pe = PositionalEncoding(self.feat_dim, self.num_frames, dropout)
        self.k_linear = nn.Linear(self.feat_dim * self.cardinality, self.out_dim)
        self.v_linear = nn.Linear(self.feat_dim * self.cardinality, self.out_dim)
        self.norm_k = nn.LayerNorm(self.out_dim)
        self.norm_v = nn.LayerNorm(self.out_dim)
        if not self.apply_norm_v:
            self.norm_v.requires_grad_(False)  # never applied, as in the original: kept for strict loading

    @property
    def num_tuples(self) -> int:
        return int(self.tuples.shape[0])

    def embed(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """Frame features ``[B, T, D]`` -> tuple keys and values ``[B, N, out_dim]`` (N = C(T, k))."""
        if frames.dim() != 3 or frames.shape[1:] != (self.num_frames, self.feat_dim):
            raise ValueError(
                f"TRX expects frame features [videos, T={self.num_frames}, D={self.feat_dim}]; "
                f"got {tuple(frames.shape)}"
            )
        x = self.pe(frames)
        keys = self._tuple_projection(x, self.k_linear)
        values = self._tuple_projection(x, self.v_linear)
        keys = self.norm_k(keys)
        if self.apply_norm_v:
            values = self.norm_v(values)
        return keys, values

    def _tuple_projection(self, x: Tensor, linear: nn.Linear) -> Tensor:
        """``linear`` applied to every tuple's concatenated frames ``[B, N, out]``
        (:func:`fsar.models.trx.tuples.project_tuples`)."""
        return project_tuples(x, linear.weight, linear.bias, self.tuples)

    def logits(
        self, support: tuple[Tensor, Tensor], groups: ClassGroups, query: tuple[Tensor, Tensor]
    ) -> Tensor:
        """``-distance`` of every query to its query-specific prototype of every class: ``[Q, way]``.

        ``support`` and ``query`` are :meth:`embed` outputs; ``groups`` says which support rows form each class.
        """
        s_keys, s_values = support
        q_keys, q_values = query
        dtype = torch.promote_types(q_keys.dtype, torch.float32)  # float32 at least, also under autocast
        with torch.autocast(device_type=q_keys.device.type, enabled=False):
            ck = s_keys[groups.index].to(dtype)  # [way, shots, N, out]
            cv = s_values[groups.index].to(dtype)
            way, shots, n, o = ck.shape
            q = q_keys.shape[0]
            # scores of every query tuple against every tuple of every shot of every class: [Q·N, way, shots·N]
            scores = q_keys.to(dtype).reshape(q * n, o) @ ck.reshape(way * shots * n, o).T
            scores = scores.view(q * n, way, shots * n) / math.sqrt(o)
            if groups.mask is not None:
                keep = groups.mask[:, :, None].expand(way, shots, n).reshape(1, way, shots * n)
                scores = scores.masked_fill(~keep, float("-inf"))
            attention = scores.softmax(dim=-1)  # jointly over the shots and tuples of each class
            prototypes = torch.bmm(
                attention.transpose(0, 1), cv.reshape(way, shots * n, o)
            )  # [way, Q·N, out]
            diff = q_values.to(dtype).reshape(1, q * n, o) - prototypes
            return -diff.square().view(way, q, n * o).sum(dim=-1).T / n
