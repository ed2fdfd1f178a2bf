"""Local pretrained-weight files: finding them, reading them and loading converted state dicts strictly.

fsar never downloads anything. A ``weights`` argument is a local path: a checkpoint file (``.pth``, ``.pt``,
``.bin``, ``.safetensors``) or a Hugging Face folder made by ``save_pretrained`` (``config.json`` + weights).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fsar.errors import WeightsError

# Wrappers that training scripts put around a state dict ({"state_dict": {...}}, {"model": {...}}).
_WRAPPER_KEYS = ("state_dict", "model", "module")
# Looks like "owner/name" (a Hugging Face hub id) rather than a file on disk.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# How many key names an error message lists before it summarises the rest.
_MAX_LISTED_KEYS = 20


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """A weights path does not exist. Both a ``WeightsError`` and a ``FileNotFoundError``."""


def resolve_weights_path(
    weights: str | os.PathLike[str], pretrained_folder: str | os.PathLike[str] | None = None
) -> Path:
    """Return the existing local path named by ``weights``.

    A relative ``weights`` is looked up in ``pretrained_folder`` when one is given (then in the working
    directory). Raises :class:`WeightsNotFoundError` naming every place tried and saying how to get the file.
    """
    raw = str(weights)
    path = Path(raw).expanduser()
    candidates = [path]
    if pretrained_folder is not None and not path.is_absolute():
        candidates.insert(0, Path(pretrained_folder).expanduser() / path)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    message = f"weights not found: {raw!r} (looked for {tried}). "
    if _HUB_ID.match(raw) and not raw.startswith("."):
        # Refused whatever HF_HUB_OFFLINE says: a hub id is never resolved online.
        message += (
            "It looks like a Hugging Face hub id, and fsar never downloads weights. On a machine with internet "
            f"access run `huggingface-cli download {raw} --local-dir <folder>`, copy the folder here and pass "
            "its path. "
        )
    else:
        message += (
            "Pass an existing local checkpoint file (.pth/.pt/.bin/.safetensors) or a Hugging Face folder "
            "(config.json + weights) made by save_pretrained; fsar never downloads weights. "
        )
    message += "Use weights=None for random initialisation."
    raise WeightsNotFoundError(message)


def read_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a checkpoint file into a flat ``{name: tensor}`` dict (unwrapped, ``module.`` prefix removed)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file not found: {path}; pass an existing checkpoint file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name and what to do
        raise WeightsError(
            f"{path}: cannot read the checkpoint ({type(exc).__name__}: {exc}). Expected a torch state dict "
            "saved with torch.save (tensors only) or a .safetensors file."
        ) from exc
    return unwrap_state_dict(obj, source=str(path))


def unwrap_state_dict(obj: Any, source: str = "state dict") -> dict[str, Tensor]:
    """Strip ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers and a common ``module.`` prefix."""
    while isinstance(obj, Mapping):
        inner = [k for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)]
        if not inner:
            break
        obj = obj[inner[0]]
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{source}: expected a non-empty mapping of parameter names to tensors")
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise WeightsError(
            f"{source}: entries that are not tensors: {_list_keys(bad)}; expected a plain state dict "
            "(optionally wrapped as {'state_dict': ...} or {'model': ...})"
        )
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def load_state_dict_strictly(module: nn.Module, state_dict: Mapping[str, Tensor], source: str) -> None:
    """Load ``state_dict`` into ``module``; any missing, unexpected or mis-shaped key is a :class:`WeightsError`.

    The only tolerated gap is BatchNorm's ``num_batches_tracked`` counter, which many published checkpoints omit
    (it does not change the output in eval mode); it keeps the module's value.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in state_dict
        if k in own and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_list_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_list_keys(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches: {_list_keys(mismatched)}")
    if problems:
        raise WeightsError(
            f"{source}: the weights do not fit the model ({'; '.join(problems)}). Check that the file is for "
            "this backbone variant and in the expected format."
        )
    module.load_state_dict(dict(state_dict), strict=False)


def _list_keys(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED_KEYS])
    if len(keys) > _MAX_LISTED_KEYS:
        shown += f", ... ({len(keys) - _MAX_LISTED_KEYS} more)"
    return shown


def raise_unknown_keys(what: str, unknown: list[str], expected: str) -> None:
    """Raise ``WeightsError`` listing the keys a converter could not map (nothing is silently dropped)."""
    if unknown:
        raise WeightsError(f"{what}: unknown keys {_list_keys(unknown)}; expected {expected}")
