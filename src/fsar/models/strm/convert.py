"""Load checkpoints of the original STRM code (``Anirudh257/strm``) into fsar's :class:`~fsar.models.strm.STRM`.

Thatipelli et al., "Spatio-temporal Relation Modeling for Few-shot Action Recognition", CVPR 2022
(parameter names: ``shared/specs/strm.md`` §11).

Original name (after removing every DataParallel ``module.`` segment)   -> fsar name
- ``transformers.<i>.{k_linear,v_linear,norm_k,norm_v}.{weight,bias}``   -> ``trx.transformers.<i>.…``
- ``attn_pat.{gamma,query_proj.*,key_proj.*,value_conv.*}``              -> ``patch_attention.…``
- ``attn_pat.Bot_MLP.{inp_fc,hid_fc,out_fc}.*``                          -> ``patch_attention.mlp.…``
- ``fr_enrich.Tok_MLP.{inp_fc,out_fc}.*``                                -> ``frame_mixer.token_mlp.…``
- ``fr_enrich.Bot_MLP.{inp_fc,out_fc}.*``                                -> ``frame_mixer.channel_mlp.…``
- ``new_dist_loss_post_pat.<i>.clsW.{weight,bias}`` (optional)           -> ``similarity.<i>.clsW.…``
- ``transformers.<i>.pe.pe``, ``attn_pat.pe.pe``, ``fr_enrich.pe.pe``: checked to be TRX's 0.1-scaled sinusoid
  (:func:`fsar.models.trx.check_pe_table`), then dropped (fsar computes them).
- ``resnet.*``: the backbone, not the head: raises unless ``ignore_other_parts=True`` (then skipped).

The original never saves ``clsW`` (its modules sit in a plain list, quirk Q1), so a converted released
checkpoint lacks exactly the ``similarity.<i>.clsW`` keys: load it with ``strict=False`` and check that those are
the only missing keys (the patch branch then uses fsar's random ``clsW``, as any fresh run of the original
would). With the clsW keys added the result loads with ``strict=True``. A dict of parameter gradients under the
same names (no ``pe.pe`` entries) converts the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from torch import Tensor

from fsar.errors import WeightsError
from fsar.models.trx.convert import (
    HEAD_PARAMETERS,
    check_pe_table,
    fsar_resnet_state_dict,
    sequential_trunk_to_torchvision,
    unwrap_checkpoint,
)

_LINEAR = ("weight", "bias")
_RENAMES: dict[str, str] = {
    "attn_pat.gamma": "patch_attention.gamma",
    **{
        f"attn_pat.{m}.{k}": f"patch_attention.{m}.{k}"
        for m in ("query_proj", "key_proj", "value_conv")
        for k in _LINEAR
    },
    **{
        f"attn_pat.Bot_MLP.{m}.{k}": f"patch_attention.mlp.{m}.{k}"
        for m in ("inp_fc", "hid_fc", "out_fc")
        for k in _LINEAR
    },
    **{
        f"fr_enrich.Tok_MLP.{m}.{k}": f"frame_mixer.token_mlp.{m}.{k}"
        for m in ("inp_fc", "out_fc")
        for k in _LINEAR
    },
    **{
        f"fr_enrich.Bot_MLP.{m}.{k}": f"frame_mixer.channel_mlp.{m}.{k}"
        for m in ("inp_fc", "out_fc")
        for k in _LINEAR
    },
}
_TRANSFORMER = re.compile(r"^transformers\.(\d+)\.(.+)$")
_CLSW = re.compile(r"^new_dist_loss_post_pat\.(\d+)\.clsW\.(weight|bias)$")
_PE_TABLES = re.compile(r"^(transformers\.\d+|attn_pat|fr_enrich)\.pe\.pe$")


def _without_module(key: str) -> str:
    return ".".join(part for part in key.split(".") if part != "module")


def convert_reference_state_dict(
    state_dict: Mapping[str, object], *, ignore_other_parts: bool = False
) -> dict[str, Tensor]:
    """Original ``CNN_STRM`` state dict, ``run.py`` checkpoint (``model_state_dict``) or gradient dict -> state
    dict of :class:`fsar.models.strm.STRM` (see the module docstring for the names).

    Raises :class:`fsar.errors.WeightsError` on unknown keys (listing them), on a positional-encoding table that
    is not TRX's, on ``resnet.*`` keys unless ``ignore_other_parts=True``, and when nothing of the head is found.
    """
    out: dict[str, Tensor] = {}
    trunk: list[str] = []
    unknown: list[str] = []
    for key, value in unwrap_checkpoint(state_dict, owner="STRM").items():
        name = _without_module(key)
        transformer = _TRANSFORMER.match(name)
        clsw = _CLSW.match(name)
        if name in _RENAMES:
            out[_RENAMES[name]] = value
        elif transformer and transformer.group(2) in HEAD_PARAMETERS:
            out["trx." + name] = value
        elif clsw:
            out[f"similarity.{clsw.group(1)}.clsW.{clsw.group(2)}"] = value
        elif _PE_TABLES.match(name):
            check_pe_table(key, value, owner="STRM")
        elif name.startswith("resnet."):
            trunk.append(key)
        else:
            unknown.append(key)
    if unknown:
        shown = ", ".join(repr(k) for k in unknown[:20]) + (
            f" ... ({len(unknown)} in all)" if len(unknown) > 20 else ""
        )
        raise WeightsError(
            f"state dict keys not recognised as parts of the original STRM model: {shown}. Expected "
            "transformers.<i>.*, attn_pat.*, fr_enrich.*, new_dist_loss_post_pat.<i>.clsW.* and resnet.* "
            "(optionally with module. segments, or in a {'model_state_dict': ...} checkpoint)"
        )
    if trunk and not ignore_other_parts:
        raise WeightsError(
            f"{len(trunk)} state dict keys belong to the original ResNet trunk (resnet.*, e.g. {trunk[0]!r}), not the "
            "STRM head; pass ignore_other_parts=True to convert only the head"
        )
    if not out:
        raise WeightsError(
            "the state dict holds no STRM head parameters (transformers.*, attn_pat.*, fr_enrich.*)"
        )
    return out


def convert_reference_classifier_state_dict(
    state_dict: Mapping[str, object],
    *,
    backbone_converter: Callable[[Mapping[str, Tensor]], Mapping[str, Tensor]] | None = None,
) -> dict[str, Tensor]:
    """A whole original ``CNN_STRM`` state dict / ``run.py`` checkpoint -> state dict of
    :class:`fsar.models.strm.STRMClassifier`: the head as :func:`convert_reference_state_dict` under ``head.``;
    ``resnet.[module.]<j>.*`` -> torchvision names (:func:`fsar.models.trx.sequential_trunk_to_torchvision`) ->
    ``backbone.*`` through ``backbone_converter`` (default: fsar's ResNet backbones). Without clsW keys (a released
    checkpoint) the result misses exactly ``head.similarity.<i>.clsW.*``."""
    head_part: dict[str, Tensor] = {}
    trunk: dict[str, Tensor] = {}
    for key, value in unwrap_checkpoint(state_dict, owner="STRM").items():
        name = _without_module(key)
        if name.startswith("resnet."):
            trunk[name[len("resnet.") :]] = value
        else:
            head_part[key] = value
    out = {"head." + k: v for k, v in convert_reference_state_dict(head_part).items()}
    if trunk:
        converter = backbone_converter if backbone_converter is not None else fsar_resnet_state_dict
        for key, value in converter(sequential_trunk_to_torchvision(trunk)).items():
            out["backbone." + key] = value
    return out
