"""STRM (Thatipelli et al., "Spatio-temporal Relation Modeling for Few-shot Action Recognition", CVPR 2022).

TRX (:mod:`fsar.models.trx`) with patch-level self-attention and a frame-level mixer before its cross-transformers,
and a patch-level query-class similarity classifier whose logits are added at weight 0.1. ``STRM`` is the head on
backbone maps, ``strm_loss`` its training loss, ``STRMClassifier`` (registry name ``"strm"``) puts it on fsar's
backbones, ``convert_reference_state_dict`` loads the original's checkpoints. Our description of the original:
``shared/specs/strm.md``.
"""

from fsar.models.strm.classifier import STRMClassifier
from fsar.models.strm.convert import convert_reference_classifier_state_dict, convert_reference_state_dict
from fsar.models.strm.enrichment import FrameMixer, PatchAttention, patch_tokens
from fsar.models.strm.head import STRM, STRMEncoded, STRMOutput, STRMSupport, strm_loss
from fsar.models.strm.similarity import QueryClassSimilarity

__all__ = [
    "STRM",
    "FrameMixer",
    "PatchAttention",
    "QueryClassSimilarity",
    "STRMClassifier",
    "STRMEncoded",
    "STRMOutput",
    "STRMSupport",
    "convert_reference_classifier_state_dict",
    "convert_reference_state_dict",
    "patch_tokens",
    "strm_loss",
]
