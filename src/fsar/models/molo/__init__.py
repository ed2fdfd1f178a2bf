"""MoLo (Wang et al., "MoLo: Motion-augmented Long-short Contrastive Learning for Few-shot Action Recognition",
CVPR 2023).

``MoLo`` is the head of the original code, vectorised over queries and classes; ``molo_loss`` its training loss;
``frame_differences`` its reconstruction target; ``MoLoClassifier`` (registry name ``"molo"``) puts it on fsar's
backbones; ``fsar.models.molo.loop.molo_loop_output`` is the loop form it is checked against; ``convert_reference_state_dict`` loads the
original's state dicts.
"""

from fsar.models.molo.classifier import MoLoClassifier
from fsar.models.molo.convert import HEAD_KEYS, convert_reference_state_dict
from fsar.models.molo.head import (
    COSINE_EPS,
    LOSS_TERMS,
    MoLo,
    MoLoOutput,
    MoLoTokens,
    frame_differences,
    molo_loss,
)

__all__ = [
    "COSINE_EPS",
    "HEAD_KEYS",
    "LOSS_TERMS",
    "MoLo",
    "MoLoClassifier",
    "MoLoOutput",
    "MoLoTokens",
    "convert_reference_state_dict",
    "frame_differences",
    "molo_loss",
]
