"""Load checkpoints of the original TRX code (tobyperrett/trx) into fsar's TRX head and TRX classifier.

Perrett et al., "Temporal-Relational CrossTransformers for Few-Shot Action Recognition", CVPR 2021.

The original model ``CNN_TRX`` holds:

- ``transformers.<i>.{k_linear,v_linear,norm_k,norm_v}.{weight,bias}``: one cross-transformer per cardinality
  (``i`` indexes ``temp_set``). fsar's :class:`~fsar.models.trx.TRX` uses the same names, so these keep their
  name (under ``head.`` in the classifier). ``norm_v`` is never applied by the original; its parameters are
  kept so that checkpoints load strictly (see ``apply_norm_v``).
- ``transformers.<i>.pe.pe``: the positional-encoding table ``[1, int(1.5 T), D]``, a saved constant. fsar
  recomputes it, so the converter checks that the saved table is the sinusoidal one scaled by 0.1 (raising
  otherwise) and drops it.
- ``resnet.<j>.*`` (``resnet.module.<j>.*`` when the trunk ran under DataParallel): torchvision's ResNet as
  ``nn.Sequential(*children[:-1])``, so ``0`` = conv1, ``1`` = bn1, ``4``-``7`` = layer1-layer4. These are
  renamed to torchvision names and then mapped by fsar's ResNet converter
  (:func:`fsar.backbones.resnet.convert_torchvision_resnet_state_dict`).

Checkpoints of ``run.py`` are ``{"model_state_dict": ..., "optimizer_state_dict": ..., ...}``; the final model
is a bare state dict. A ``module.`` prefix anywhere in front is removed. Unknown keys always raise
:class:`fsar.errors.WeightsError` listing them; nothing is silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from fsar.errors import WeightsError
from fsar.models.trx.encoding import sinusoidal_table

HEAD_PARAMETERS = tuple(
    f"{layer}.{kind}" for layer in ("k_linear", "v_linear", "norm_k", "norm_v") for kind in ("weight", "bias")
)
"""Parameter names inside one original cross-transformer (fsar's are identical)."""

PE_KEY = "pe.pe"
_HEAD_KEY = re.compile(r"^(\d+)\.(.+)$")
_SEQUENTIAL_TRUNK = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
_WRAPPERS = ("model_state_dict", "state_dict", "model")


def _strip(key: str, prefix: str) -> str:
    while key.startswith(prefix):
        key = key[len(prefix) :]
    return key


def unwrap_checkpoint(state_dict: Mapping[str, object], owner: str = "TRX") -> dict[str, Tensor]:
    """The parameter mapping of a bare state dict or of a ``run.py`` checkpoint holding one under
    ``model_state_dict`` (or ``state_dict`` / ``model``); every value must be a tensor."""
    sd: Mapping[str, object] = state_dict
    for wrapper in _WRAPPERS:
        inner = sd.get(wrapper) if isinstance(sd, Mapping) else None
        if isinstance(inner, Mapping):
            sd = inner
            break
    if not isinstance(sd, Mapping) or not sd:
        raise WeightsError(f"{owner} checkpoint: expected a non-empty mapping of parameter names to tensors")
    bad = [k for k, v in sd.items() if not isinstance(v, Tensor)]
    if bad:
        raise WeightsError(
            f"{owner} checkpoint: entries that are not tensors: {bad[:10]}; pass the model state dict or a run.py "
            f"checkpoint (a dict holding it under one of {_WRAPPERS})"
        )
    return dict(sd)  # type: ignore[arg-type]


def _split(key: str) -> tuple[str, str]:
    """-> (part, key inside the part); part is "head", "pe", "trunk" or "unknown"."""
    k = _strip(key, "module.")
    if k.startswith("resnet."):
        return "trunk", _strip(k[len("resnet.") :], "module.")
    if k.startswith("transformers."):
        k = _strip(k[len("transformers.") :], "module.")
    match = _HEAD_KEY.match(k)
    if match and match.group(2) in HEAD_PARAMETERS:
        return "head", k
    if match and match.group(2) == PE_KEY:
        return "pe", k
    return "unknown", key


def check_pe_table(key: str, table: Tensor, owner: str = "TRX") -> None:
    """Raise unless ``table`` (saved under ``key``) is TRX's ``[1, length, D]`` sinusoid scaled by 0.1."""
    if table.dim() != 3 or table.shape[0] != 1 or table.shape[2] % 2:
        raise WeightsError(
            f"{owner} checkpoint: {key!r} should be a [1, length, even D] table; got {tuple(table.shape)}"
        )
    expected = sinusoidal_table(table.shape[1], table.shape[2], dtype=torch.float64)
    error = (table[0].double().cpu() - expected).abs().max().item()
    if error > 1e-5:
        raise WeightsError(
            f"{owner} checkpoint: {key!r} is not TRX's sinusoidal positional encoding scaled by 0.1 (max difference "
            f"{error:.3g}); fsar computes that table itself and cannot load a different one"
        )


def _raise_unknown(keys: list[str]) -> None:
    if keys:
        shown = ", ".join(repr(k) for k in keys[:20]) + (
            f" ... ({len(keys)} in all)" if len(keys) > 20 else ""
        )
        raise WeightsError(
            f"state dict keys not recognised as parts of the original TRX model: {shown}. Expected "
            "[transformers.]<i>.{k_linear,v_linear,norm_k,norm_v}.{weight,bias}, <i>.pe.pe and resnet.<j>.* "
            "(optionally under module. or in a {'model_state_dict': ...} checkpoint)"
        )


def _head_and_trunk(state_dict: Mapping[str, object]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    head: dict[str, Tensor] = {}
    trunk: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in unwrap_checkpoint(state_dict).items():
        part, inner = _split(key)
        if part == "head":
            head["transformers." + inner] = value
        elif part == "pe":
            check_pe_table(key, value)
        elif part == "trunk":
            trunk[inner] = value
        else:
            unknown.append(key)
    _raise_unknown(unknown)
    return head, trunk


def convert_reference_state_dict(
    state_dict: Mapping[str, object], *, ignore_other_parts: bool = False
) -> dict[str, Tensor]:
    """Original TRX keys -> state dict of :class:`fsar.models.trx.TRX` (load with ``strict=True``).

    Accepts the ``transformers`` ModuleList's own keys (``0.k_linear.weight``, ...), the same under
    ``transformers.``, or a whole ``CNN_TRX`` state dict / ``run.py`` checkpoint. The ResNet trunk
    (``resnet.*``) is not part of the head: it raises unless ``ignore_other_parts=True``; to load it too, use
    :func:`convert_reference_classifier_state_dict` for :class:`fsar.models.trx.TRXClassifier`.
    """
    head, trunk = _head_and_trunk(state_dict)
    if trunk and not ignore_other_parts:
        raise WeightsError(
            f"{len(trunk)} state dict keys belong to the original ResNet trunk (resnet.*), not the TRX head; pass "
            "ignore_other_parts=True to convert only the head, or use convert_reference_classifier_state_dict "
            "for TRXClassifier"
        )
    if not head:
        raise WeightsError(
            "the state dict holds no TRX cross-transformer parameters (<i>.k_linear.weight, ...)"
        )
    return head


def sequential_trunk_to_torchvision(trunk: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``nn.Sequential(*resnet.children()[:-1])`` keys (``0.weight``, ``4.0.conv1.weight``) -> torchvision names
    (``conv1.weight``, ``layer1.0.conv1.weight``); keys that already use torchvision names pass unchanged."""
    out: dict[str, Tensor] = {}
    for key, value in trunk.items():
        head, _, rest = key.partition(".")
        out[f"{_SEQUENTIAL_TRUNK[head]}.{rest}" if head in _SEQUENTIAL_TRUNK else key] = value
    return out


def fsar_resnet_state_dict(trunk: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """torchvision ResNet keys -> fsar's ResNet backbone (``resnet18/34/50``) keys, under ``model.``."""
    from fsar.backbones.resnet import convert_torchvision_resnet_state_dict

    # fsar's ResNetBackbone holds the transformers ResNetModel as `model`.
    return {"model." + k: v for k, v in convert_torchvision_resnet_state_dict(trunk).items()}


def convert_reference_classifier_state_dict(
    state_dict: Mapping[str, object],
    *,
    backbone_converter: Callable[[Mapping[str, Tensor]], Mapping[str, Tensor]] | None = None,
) -> dict[str, Tensor]:
    """A whole original ``CNN_TRX`` state dict / checkpoint -> state dict of :class:`TRXClassifier`.

    ``transformers.*`` -> ``head.transformers.*``; ``resnet.[module.]<j>.*`` -> torchvision names ->
    ``backbone.*`` through ``backbone_converter`` (default: fsar's ResNet converter under ``model.``, the layout
    of fsar's ``resnet18/34/50`` backbones). Unknown keys raise :class:`fsar.errors.WeightsError`.
    """
    head, trunk = _head_and_trunk(state_dict)
    out = {"head." + k: v for k, v in head.items()}
    if trunk:
        converter = backbone_converter if backbone_converter is not None else fsar_resnet_state_dict
        for key, value in converter(sequential_trunk_to_torchvision(trunk)).items():
            out["backbone." + key] = value
    return out
