"""TRX written as loops, as the equations read: the check and the benchmark baseline of the vectorised head.

Perrett et al., "Temporal-Relational CrossTransformers for Few-Shot Action Recognition", CVPR 2021.

Per cardinality: positional encoding, the tuples built by concatenating their frames' features (as the
original does), ``k_linear`` / ``v_linear`` applied to each concatenation, ``norm_k`` on the keys; then a loop
over the classes (sorted labels) and, inside it, over the queries: scores of the query's tuples against all
tuples of all shots of the class, one softmax per query tuple over all of them, prototype, distance. The logits
are the mean over cardinalities. It uses the parameters of a :class:`fsar.models.trx.TRX` but none of its
vectorised code (tuple table, grouping, block projections, batched attention).
"""

from __future__ import annotations

import math
from itertools import combinations

import torch
from torch import Tensor

from fsar.models.trx.head import TRX


def trx_loop_logits(head: TRX, support: Tensor, support_labels: Tensor, query: Tensor) -> Tensor:
    """Logits ``[Q, way]`` of ``head`` computed with per-class and per-query loops."""
    n_support, n_query, num_frames = support.shape[0], query.shape[0], support.shape[1]
    labels = [int(v) for v in support_labels.tolist()]
    classes = sorted(set(labels))
    per_cardinality = []
    for transformer in head.transformers:
        out_dim = transformer.out_dim
        tuples = [list(t) for t in combinations(range(num_frames), transformer.cardinality)]
        s = transformer.pe(support)
        q = transformer.pe(query)
        s_tuples = torch.stack([s[:, t].reshape(n_support, -1) for t in tuples], dim=1)  # [S, N, k·D]
        q_tuples = torch.stack([q[:, t].reshape(n_query, -1) for t in tuples], dim=1)
        s_keys = transformer.norm_k(transformer.k_linear(s_tuples))
        q_keys = transformer.norm_k(transformer.k_linear(q_tuples))
        s_values = transformer.v_linear(s_tuples)
        q_values = transformer.v_linear(q_tuples)
        if transformer.apply_norm_v:
            s_values, q_values = transformer.norm_v(s_values), transformer.norm_v(q_values)
        columns = []
        for c in classes:
            rows = [i for i, label in enumerate(labels) if label == c]
            class_keys = s_keys[rows].reshape(-1, out_dim)  # every tuple of every shot of the class
            class_values = s_values[rows].reshape(-1, out_dim)
            column = []
            for i in range(n_query):
                attention = torch.softmax(q_keys[i] @ class_keys.T / math.sqrt(out_dim), dim=-1)
                prototype = attention @ class_values
                column.append(-(q_values[i] - prototype).square().sum() / len(tuples))
            columns.append(torch.stack(column))
        per_cardinality.append(torch.stack(columns, dim=1))
    return torch.stack(per_cardinality).mean(dim=0)
