"""TRX (Perrett et al., "Temporal-Relational CrossTransformers for Few-Shot Action Recognition", CVPR 2021).

``TRX`` is the head of the original code (one temporal cross-transformer per tuple cardinality, logits averaged),
vectorised over classes and queries; ``TRXClassifier`` (registry name ``"trx"``) puts it on fsar's backbones;
``trx_loop_logits`` is the loop form it is checked against; ``convert_reference_state_dict`` /
``convert_reference_classifier_state_dict`` load the original's checkpoints.
"""

from fsar.models.trx.classifier import TRXClassifier
from fsar.models.trx.convert import (
    HEAD_PARAMETERS,
    check_pe_table,
    convert_reference_classifier_state_dict,
    convert_reference_state_dict,
    fsar_resnet_state_dict,
    sequential_trunk_to_torchvision,
    unwrap_checkpoint,
)
from fsar.models.trx.cross_transformer import TemporalCrossTransformer
from fsar.models.trx.encoding import PositionalEncoding, sinusoidal_table, table_length
from fsar.models.trx.head import TRX, TRXSupport
from fsar.models.trx.loop import trx_loop_logits
from fsar.models.trx.tuples import ClassGroups, frame_tuples, group_by_label, project_tuples

__all__ = [
    "HEAD_PARAMETERS",
    "ClassGroups",
    "PositionalEncoding",
    "TRX",
    "TRXClassifier",
    "TRXSupport",
    "TemporalCrossTransformer",
    "check_pe_table",
    "convert_reference_classifier_state_dict",
    "convert_reference_state_dict",
    "frame_tuples",
    "fsar_resnet_state_dict",
    "group_by_label",
    "project_tuples",
    "sequential_trunk_to_torchvision",
    "sinusoidal_table",
    "table_length",
    "trx_loop_logits",
    "unwrap_checkpoint",
]
