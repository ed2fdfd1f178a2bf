"""TA2N (Liu et al., "TA2N: Two-Stage Action Alignment Network for Few-shot Action Recognition", AAAI 2022).

``TA2N`` is the module of the original code (TTM -> multi-shot fusion -> ACM), faithful by default and with
exact fast paths (``impl="fast"``); ``TA2NClassifier`` is the few-shot classifier of its training script.
"""

from fsar.models.ta2n.acm import ACM, OffsetNet
from fsar.models.ta2n.classifier import TA2NClassifier
from fsar.models.ta2n.convert import (
    REFERENCE_KEY_TABLE,
    convert_reference_classifier_state_dict,
    convert_reference_state_dict,
)
from fsar.models.ta2n.distance import timewise_cos
from fsar.models.ta2n.fusion import MultiShotFusion
from fsar.models.ta2n.masks import pooling_weights, soft_box_mask
from fsar.models.ta2n.module import TA2N, TA2NDiagnostics
from fsar.models.ta2n.ttm import TTM

__all__ = [
    "ACM",
    "MultiShotFusion",
    "OffsetNet",
    "REFERENCE_KEY_TABLE",
    "TA2N",
    "TA2NClassifier",
    "TA2NDiagnostics",
    "TTM",
    "convert_reference_classifier_state_dict",
    "convert_reference_state_dict",
    "pooling_weights",
    "soft_box_mask",
    "timewise_cos",
]
