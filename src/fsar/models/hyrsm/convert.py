"""Load state dicts of the original HyRSM head (``CNN_HyRSM_1shot`` / ``CNN_HyRSM_5shot``) into
:class:`fsar.models.hyrsm.HyRSM`.

Wang et al., "Hybrid Relation Guided Set Matching for Few-shot Action Recognition", CVPR 2022. The rules are those of
:mod:`fsar.models.reference_keys` (``module.`` removed, ``backbone.*`` dropped, ``pe.pe`` checked and dropped, unknown
keys refused, subsets converted key by key).
"""

from __future__ import annotations

from collections.abc import Mapping

from fsar.models.reference_keys import convert_head_keys

HEAD_KEYS = (
    "temporal_atte_before.norm.weight",
    "temporal_atte_before.norm.bias",
    "temporal_atte_before.fn.to_qkv.weight",
    "temporal_atte_before.fn.to_out.0.weight",
    "temporal_atte_before.fn.to_out.0.bias",
    "temporal_atte.w_qs.weight",
    "temporal_atte.w_ks.weight",
    "temporal_atte.w_vs.weight",
    "temporal_atte.fc.weight",
    "temporal_atte.fc.bias",
    "temporal_atte.layer_norm.weight",
    "temporal_atte.layer_norm.bias",
    "layer2.0.weight",
    "layer2.0.bias",
    "classification_layer.weight",
    "classification_layer.bias",
)
"""The original head's parameter names; fsar's :class:`~fsar.models.hyrsm.HyRSM` uses the same."""


def convert_reference_state_dict(state_dict: Mapping[str, object]) -> dict[str, object]:
    """Original HyRSM keys -> :class:`fsar.models.hyrsm.HyRSM` keys (a full state dict loads with strict=True)."""
    return convert_head_keys(state_dict, frozenset(HEAD_KEYS), "HyRSM")
