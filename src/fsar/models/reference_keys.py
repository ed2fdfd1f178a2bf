"""Convert state dicts of the HyRSM / MoLo code base (alibaba-mmai-research/HyRSM, /MoLo) to fsar's heads.

Wang et al., "Hybrid Relation Guided Set Matching for Few-shot Action Recognition", CVPR 2022; Wang et al., "MoLo:
Motion-augmented Long-short Contrastive Learning for Few-shot Action Recognition", CVPR 2023.

fsar's :class:`fsar.models.hyrsm.HyRSM` and :class:`fsar.models.molo.MoLo` use the original heads' parameter names,
so a key is renamed only by removing what is not part of the head:

- a ``module.`` prefix (DataParallel / DistributedDataParallel) is removed;
- ``backbone.*`` (the ResNet trunk) is dropped: fsar's heads hold no backbone;
- ``pe.pe`` (the positional-encoder table, a saved constant) is checked against
  :func:`fsar.models.temporal_attention.hyrsm_pe_table` and dropped (fsar recomputes it); a different table raises;
- every other key must be one of the head's parameters or buffers, else :class:`fsar.errors.WeightsError` names it.

Any subset of the keys is accepted and converted key by key (e.g. to map a dict of gradients); a full state dict gives
a dict that loads with ``strict=True``. Checkpoints that wrap the state dict (``model_state``, ``state_dict``,
``model_state_dict``) are unwrapped.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import torch
from torch import Tensor

from fsar.errors import WeightsError
from fsar.models.temporal_attention import hyrsm_pe_table

PE_KEY = "pe.pe"
_WRAPPERS = ("model_state", "state_dict", "model_state_dict")


def _unwrap(state_dict: Mapping[str, object], method: str) -> dict[str, object]:
    sd: object = state_dict
    for wrapper in _WRAPPERS:
        inner = sd.get(wrapper) if isinstance(sd, Mapping) else None
        if isinstance(inner, Mapping):
            sd = inner
            break
    if not isinstance(sd, Mapping):
        raise WeightsError(f"{method} checkpoint: expected a mapping of parameter names to tensors")
    return dict(sd)


def check_pe_table(key: str, table: object, method: str) -> None:
    """Raise unless ``table`` is the original's ``[1, L, D]`` positional-encoder table."""
    if not isinstance(table, Tensor) or table.dim() != 3 or table.shape[0] != 1 or table.shape[2] % 2:
        shape = tuple(table.shape) if isinstance(table, Tensor) else type(table).__name__
        raise WeightsError(f"{method} checkpoint: {key!r} should be a [1, length, even D] table; got {shape}")
    expected = hyrsm_pe_table(table.shape[1], table.shape[2], dtype=torch.float64)
    error = (table[0].detach().double().cpu() - expected).abs().max().item()
    if error > 1e-5:
        raise WeightsError(
            f"{method} checkpoint: {key!r} is not the HyRSM/MoLo positional-encoder table (max difference "
            f"{error:.3g}); fsar computes that table itself and cannot load a different one"
        )


def convert_head_keys(
    state_dict: Mapping[str, object], head_keys: Collection[str], method: str
) -> dict[str, object]:
    """The conversion above for a head whose parameter/buffer names are ``head_keys``."""
    out: dict[str, object] = {}
    unknown: list[str] = []
    for key, value in _unwrap(state_dict, method).items():
        name = key
        while name.startswith("module."):
            name = name[len("module.") :]
        if name.startswith("backbone."):
            continue
        if name == PE_KEY:
            check_pe_table(key, value, method)
        elif name in head_keys:
            out[name] = value
        else:
            unknown.append(key)
    if unknown:
        shown = ", ".join(repr(k) for k in unknown[:20]) + (
            f" ... ({len(unknown)} in all)" if len(unknown) > 20 else ""
        )
        raise WeightsError(
            f"{method} checkpoint: keys that are not parts of the original {method} head: {shown}. Expected the "
            f"head's own parameters (e.g. {sorted(head_keys)[:4]}), pe.pe and backbone.* (dropped), optionally under "
            "module."
        )
    return out
