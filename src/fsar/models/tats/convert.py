"""Map a checkpoint of the reference TATs code (``Pointformer``) onto :class:`fsar.models.tats.TATs`.

Kumar et al., ECCV 2024, reference code ``pulkitkumar95/tats`` (names listed in tats.md section 4).

- Wrappers are removed: a dict holding ``"model_state"`` (the reference's checkpoint format), ``"state_dict"``
  or ``"model"`` is unwrapped; a ``"module."`` prefix (DDP) is stripped.
- ``dino.*`` (the frozen DINOv2 backbone, saved in every reference checkpoint) and the dead
  ``spatial_pos_embed`` are dropped; both are unused by the reference's default forward.
- Renamed: ``space_pos_embed`` -> ``space_pos``, ``time_pos_embed`` -> ``time_pos``, ``pre_logits.fc`` ->
  ``pre_logits``, and inside ``blocks.<i>``: ``temporal_norm1`` -> ``temporal_norm``, ``norm1`` ->
  ``spatial_norm``, ``attn`` -> ``spatial_attn``, ``norm2`` -> ``mlp_norm``. Shapes are unchanged.

Any other key raises :class:`fsar.errors.WeightsError` naming it, so nothing is silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from fsar.errors import WeightsError

_WRAPPER_KEYS = ("model_state", "state_dict", "model")
_DROPPED_PREFIXES = ("dino.",)
_DROPPED_KEYS = ("spatial_pos_embed",)
_TOP_LEVEL = {
    "cls_token": "cls_token",
    "space_pos_embed": "space_pos",
    "time_pos_embed": "time_pos",
    "norm.weight": "norm.weight",
    "norm.bias": "norm.bias",
    "pre_logits.fc.weight": "pre_logits.weight",
    "pre_logits.fc.bias": "pre_logits.bias",
    "head.weight": "head.weight",
    "head.bias": "head.bias",
}
_BLOCK_MODULES = {
    "temporal_norm1": "temporal_norm",
    "norm1": "spatial_norm",
    "norm2": "mlp_norm",
    "temporal_attn.qkv": "temporal_attn.qkv",
    "temporal_attn.proj": "temporal_attn.proj",
    "attn.qkv": "spatial_attn.qkv",
    "attn.proj": "spatial_attn.proj",
    "temporal_fc": "temporal_fc",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)\.(weight|bias)$")


def unwrap_state_dict(checkpoint: Mapping[str, object]) -> dict[str, Tensor]:
    """Return the flat parameter dict of a (possibly wrapped, possibly DDP-prefixed) checkpoint."""
    sd: Mapping[str, object] = checkpoint
    for key in _WRAPPER_KEYS:
        inner = sd.get(key)
        if isinstance(inner, Mapping):
            sd = inner
            break
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        name = key[len("module.") :] if key.startswith("module.") else key
        if not isinstance(value, Tensor):
            raise WeightsError(
                f"reference TATs checkpoint: key {key!r} holds a {type(value).__name__}, not a tensor; pass the "
                f"model state dict (or a dict wrapping it under one of {_WRAPPER_KEYS})"
            )
        out[name] = value
    return out


def rename_reference_keys(sd: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Rename the TATs keys of a flat reference state dict and drop the unused ones.

    Returns ``(renamed, unknown)``: ``unknown`` lists the keys that are not TATs ``Pointformer`` names (the
    callers raise on them; Trokens' converter renames its own keys before calling this)."""
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in sd.items():
        if key.startswith(_DROPPED_PREFIXES) or key in _DROPPED_KEYS:
            continue
        if key in _TOP_LEVEL:
            out[_TOP_LEVEL[key]] = value
            continue
        match = _BLOCK_KEY.match(key)
        if match and match.group(2) in _BLOCK_MODULES:
            index, module, kind = match.groups()
            out[f"blocks.{index}.{_BLOCK_MODULES[module]}.{kind}"] = value
            continue
        unknown.append(key)
    return out, unknown


def convert_reference_state_dict(checkpoint: Mapping[str, object]) -> dict[str, Tensor]:
    """Convert a reference ``Pointformer`` state dict (or checkpoint) into a state dict for :class:`TATs`.

    Load the result with ``model.load_state_dict(sd, strict=True)``; the reference's hyper-parameters
    (width, T, classes, depth) must be the model's, which strict loading checks through the shapes.
    """
    out, unknown = rename_reference_keys(unwrap_state_dict(checkpoint))
    if unknown:
        raise WeightsError(
            f"reference TATs checkpoint has {len(unknown)} unexpected key(s): {unknown[:10]}; expected the "
            "Pointformer names of tats.md section 4 (cls_token, space_pos_embed, time_pos_embed, blocks.<i>.*, "
            "norm.*, pre_logits.fc.*, head.*, dino.*). Is this a TATs checkpoint?"
        )
    if not out:
        raise WeightsError(
            "reference TATs checkpoint holds no TATs parameters (only dropped keys or nothing)"
        )
    return out
