"""Load checkpoints of the original TA2N code (R00Kie-Liu/TA2N) into fsar's TA2N / TA2NClassifier.

Liu et al., "TA2N: Two-Stage Action Alignment Network for Few-shot Action Recognition", AAAI 2022.
Key names of the original: ``/work/shared/specs/ta2n.md`` §3.1 (module) and §2, §8 item 9 (training script).

The original module keys are ``firststage.locnet.{0,1,4,5,10,12}.*`` (TTM), ``secondstage.{keynet,querynet,
valuenet}.weight`` and ``secondstage.mvnet.{0,1,4,5,10,12}.*`` (ACM), ``{keynet,querynet,valuenet}_multi.weight``
(multi-shot fusion). Its training script's model (``CNN``) holds the module as ``align.*``, the torchvision
ResNet trunk as ``resnet.*`` (``resnet.module.*`` under DataParallel) and ``protypicalNet.norm_layer.*``
(the ``--dist_norm`` LayerNorm, always present). Checkpoints are ``{"model_state_dict": ..., ...}``.
Every tensor keeps its shape: only names change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import Tensor

from fsar.errors import WeightsError

_SEQUENTIAL_LAYERS = {"0": "conv1", "1": "bn1", "4": "conv2", "5": "bn2", "10": "fc1", "12": "fc2"}
_PARAM_SUFFIXES = {
    "conv1": ("weight", "bias"),
    "conv2": ("weight", "bias"),
    "fc1": ("weight", "bias"),
    "fc2": ("weight", "bias"),
    "bn1": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
    "bn2": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
}


def _module_key_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for index, layer in _SEQUENTIAL_LAYERS.items():
        for suffix in _PARAM_SUFFIXES[layer]:
            table[f"firststage.locnet.{index}.{suffix}"] = f"ttm.{layer}.{suffix}"
            table[f"secondstage.mvnet.{index}.{suffix}"] = f"acm.offset_net.{layer}.{suffix}"
    for original, ours in (("keynet", "key_proj"), ("querynet", "query_proj"), ("valuenet", "value_proj")):
        table[f"secondstage.{original}.weight"] = f"acm.{ours}.weight"
        table[f"{original}_multi.weight"] = f"fusion.{ours}.weight"
    return table


REFERENCE_KEY_TABLE: dict[str, str] = _module_key_table()
"""Original TA2N module key -> fsar TA2N key (complete: 42 entries)."""


def _strip(key: str, prefix: str) -> str:
    while key.startswith(prefix):
        key = key[len(prefix) :]
    return key


def _split_reference_key(key: str) -> tuple[str, str]:
    """-> (part, key inside the part); part is "ta2n", "trunk", "dist_norm" or "unknown"."""
    k = _strip(key, "module.")
    if k.startswith("resnet."):
        return "trunk", _strip(k[len("resnet.") :], "module.")
    if k.startswith("protypicalNet."):
        rest = k[len("protypicalNet.") :]
        return ("dist_norm", rest[len("norm_layer.") :]) if rest.startswith("norm_layer.") else ("unknown", k)
    for prefix in ("align.", "ta2n."):
        if k.startswith(prefix):
            k = _strip(k[len(prefix) :], "module.")
            break
    return ("ta2n", k) if k in REFERENCE_KEY_TABLE else ("unknown", k)


def _unwrap(state_dict: Mapping[str, object]) -> Mapping[str, object]:
    inner = state_dict.get("model_state_dict") if isinstance(state_dict, Mapping) else None
    return inner if isinstance(inner, Mapping) else state_dict


def _raise_unknown(keys: list[str], what: str) -> None:
    shown = ", ".join(repr(k) for k in keys[:20]) + (f" ... ({len(keys)} in all)" if len(keys) > 20 else "")
    raise WeightsError(
        f"state dict keys not recognised as {what}: {shown}. Expected the original TA2N names "
        "(firststage.locnet.*, secondstage.*, {keynet,querynet,valuenet}_multi.*, optionally under align. / "
        "ta2n. / module.); remove or rename these keys and retry"
    )


def convert_reference_state_dict(
    state_dict: Mapping[str, Tensor], *, ignore_other_parts: bool = False
) -> dict[str, Tensor]:
    """Original TA2N state dict -> state dict of :class:`fsar.models.ta2n.TA2N`.

    Accepts the module's own keys, or the training script's model/checkpoint (prefixes ``align.``, ``ta2n.``,
    ``module.``; a ``{"model_state_dict": ...}`` checkpoint is unwrapped). The ResNet trunk (``resnet.*``) and
    the logit LayerNorm (``protypicalNet.norm_layer.*``) are not part of the TA2N module: they raise an error
    unless ``ignore_other_parts=True`` (or use :func:`convert_reference_classifier_state_dict`).
    Unknown keys always raise :class:`fsar.errors.WeightsError` listing them.
    """
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    other: list[str] = []
    for key, value in _unwrap(state_dict).items():
        part, inner = _split_reference_key(key)
        if part == "ta2n":
            out[REFERENCE_KEY_TABLE[inner]] = value  # type: ignore[assignment]
        elif part in ("trunk", "dist_norm"):
            other.append(key)
        else:
            unknown.append(key)
    if unknown:
        _raise_unknown(unknown, "parts of the original TA2N module")
    if other and not ignore_other_parts:
        raise WeightsError(
            f"{len(other)} state dict keys belong to the original full model, not the TA2N module (e.g. "
            f"{other[0]!r}); pass ignore_other_parts=True to convert only the TA2N module, or use "
            "convert_reference_classifier_state_dict for TA2NClassifier"
        )
    return out


def _default_trunk_converter() -> Callable[[Mapping[str, Tensor]], Mapping[str, Tensor]]:
    try:
        from fsar.backbones.resnet import convert_torchvision_resnet_state_dict
    except ImportError as exc:
        raise WeightsError(
            "the checkpoint holds a torchvision ResNet trunk (resnet.*) but "
            "fsar.backbones.resnet.convert_torchvision_resnet_state_dict is not available; pass "
            "backbone_converter=<function mapping torchvision ResNet keys to your backbone's keys>"
        ) from exc

    def convert(trunk: Mapping[str, Tensor]) -> dict[str, Tensor]:
        # fsar's ResNetBackbone holds the transformers ResNetModel as `model`.
        return {"model." + k: v for k, v in convert_torchvision_resnet_state_dict(trunk).items()}

    return convert


def convert_reference_classifier_state_dict(
    state_dict: Mapping[str, Tensor],
    *,
    backbone_converter: Callable[[Mapping[str, Tensor]], Mapping[str, Tensor]] | None = None,
) -> dict[str, Tensor]:
    """The original training script's model (``CNN``) -> state dict of :class:`TA2NClassifier`.

    ``align.*`` -> ``ta2n.*`` (via :data:`REFERENCE_KEY_TABLE`), ``protypicalNet.norm_layer.*`` ->
    ``logit_norm.*``, and ``resnet.[module.]*`` (torchvision names) -> ``backbone.*`` through
    ``backbone_converter`` (default: ``fsar.backbones.resnet.convert_torchvision_resnet_state_dict`` under ``model.``, the layout of
    fsar's ``resnet50`` backbone).
    Unknown keys raise :class:`fsar.errors.WeightsError` listing them.
    """
    out: dict[str, Tensor] = {}
    trunk: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in _unwrap(state_dict).items():
        part, inner = _split_reference_key(key)
        if part == "ta2n":
            out["ta2n." + REFERENCE_KEY_TABLE[inner]] = value  # type: ignore[assignment]
        elif part == "dist_norm":
            out["logit_norm." + inner] = value  # type: ignore[assignment]
        elif part == "trunk":
            trunk[inner] = value  # type: ignore[assignment]
        else:
            unknown.append(key)
    if unknown:
        _raise_unknown(unknown, "parts of the original TA2N model (align., resnet., protypicalNet.)")
    if trunk:
        converter = backbone_converter if backbone_converter is not None else _default_trunk_converter()
        for key, value in converter(trunk).items():
            out["backbone." + key] = value
    return out
