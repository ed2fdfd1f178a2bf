"""HyRSM (Wang et al., "Hybrid Relation Guided Set Matching for Few-shot Action Recognition", CVPR 2022).

``HyRSM`` is the head of the original code (both its 1-shot and 5-shot forms), vectorised over queries and
classes; ``hyrsm_loss`` its training loss; ``HyRSMClassifier`` (registry name ``"hyrsm"``) puts it on fsar's
backbones; ``fsar.models.hyrsm.loop.hyrsm_loop_logits`` is the loop form it is checked against; ``convert_reference_state_dict`` loads the
original's state dicts.
"""

from fsar.models.hyrsm.classifier import HyRSMClassifier
from fsar.models.hyrsm.convert import HEAD_KEYS, convert_reference_state_dict
from fsar.models.hyrsm.head import HyRSM, HyRSMOutput, PostNormAttention, group_labels, hyrsm_loss

__all__ = [
    "HEAD_KEYS",
    "HyRSM",
    "HyRSMClassifier",
    "HyRSMOutput",
    "PostNormAttention",
    "convert_reference_state_dict",
    "group_labels",
    "hyrsm_loss",
]
