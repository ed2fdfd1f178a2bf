"""Load state dicts of the original MoLo head (``CNN_BiMHM_MoLo``) into :class:`fsar.models.molo.MoLo`.

Wang et al., "MoLo: Motion-augmented Long-short Contrastive Learning for Few-shot Action Recognition", CVPR 2023.
The rules are those of :mod:`fsar.models.reference_keys` (``module.`` removed, ``backbone.*`` dropped, ``pe.pe``
checked and dropped, unknown keys refused, subsets converted key by key).
"""

from __future__ import annotations

from collections.abc import Mapping

from fsar.models.reference_keys import convert_head_keys

_TRANSFORMER = (
    "layers.0.0.norm.weight",
    "layers.0.0.norm.bias",
    "layers.0.0.fn.to_qkv.weight",
    "layers.0.0.fn.to_out.0.weight",
    "layers.0.0.fn.to_out.0.bias",
    "layers.0.1.net.0.weight",
    "layers.0.1.net.0.bias",
    "layers.0.1.net.3.weight",
    "layers.0.1.net.3.bias",
)
_BATCH_NORM = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

HEAD_KEYS = (
    ("scale", "scale_motion", "class_token", "class_token_motion")
    + tuple(f"{t}.{k}" for t in ("temporal_atte_before", "temporal_atte_before_motion") for k in _TRANSFORMER)
    + tuple(
        f"{c}.{k}"
        for c in ("motion_reduce", "motion_conv", "motion_up", "classification_layer")
        for k in ("weight", "bias")
    )
    + tuple(
        f"up{i}.conv.double_conv.{k}"
        for i in (1, 2, 3)
        for k in ("0.weight", *(f"1.{b}" for b in _BATCH_NORM))
    )
    + ("outc.conv.weight", "outc.conv.bias")
)
"""The original head's parameter and buffer names; fsar's :class:`~fsar.models.molo.MoLo` uses the same."""


def convert_reference_state_dict(state_dict: Mapping[str, object]) -> dict[str, object]:
    """Original MoLo keys -> :class:`fsar.models.molo.MoLo` keys (a full state dict loads with strict=True)."""
    return convert_head_keys(state_dict, frozenset(HEAD_KEYS), "MoLo")
