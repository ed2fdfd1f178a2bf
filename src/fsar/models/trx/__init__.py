"""TRX (Perrett et al., "Temporal-Relational CrossTransformers for Few-Shot Action Recognition", CVPR 2021).

``TRX`` is the head of the original code (one temporal cross-transformer per tuple cardinality, logits averaged),
vectorised over classes and queries; ``trx_loop_logits`` is the loop form it is checked against.
"""

from fsar.models.trx.cross_transformer import TemporalCrossTransformer
from fsar.models.trx.encoding import PositionalEncoding, sinusoidal_table, table_length
from fsar.models.trx.head import TRX, TRXSupport
from fsar.models.trx.loop import trx_loop_logits
from fsar.models.trx.tuples import ClassGroups, frame_tuples, group_by_label

__all__ = [
    "ClassGroups",
    "PositionalEncoding",
    "TRX",
    "TRXSupport",
    "TemporalCrossTransformer",
    "frame_tuples",
    "group_by_label",
    "sinusoidal_table",
    "table_length",
    "trx_loop_logits",
]
