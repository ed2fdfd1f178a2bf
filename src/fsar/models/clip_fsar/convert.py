"""Loading the original CLIP-FSAR head's weights (``CNN_OTAM_CLIPFSAR`` of ``alibaba-mmai-research/CLIP-FSAR``).

The original keeps the fine-tuned CLIP image encoder as ``backbone.*`` and the prototype transformer as
``context2.layers.{i}.{0,1}.*`` (clip_fsar.md §2); its text features are not in the state dict.
:func:`convert_reference_state_dict` maps the head's keys onto :class:`~fsar.models.clip_fsar.CLIPFSARHead`:

=============================================== =====================================================
original                                        fsar
=============================================== =====================================================
``scale``                                       ``scale``
``context2.layers.{i}.0.norm.{weight,bias}``    ``transformer.layers.{i}.attention.norm.*``
``context2.layers.{i}.0.fn.to_{q,k,v}.weight``  ``transformer.layers.{i}.attention.to_{q,k,v}.weight``
``context2.layers.{i}.0.fn.to_out.0.*``         ``transformer.layers.{i}.attention.to_out.*``
``context2.layers.{i}.1.net.{0,3}.*``           ``transformer.layers.{i}.feed_forward.{0,3}.*``
=============================================== =====================================================

``backbone.*`` (the image encoder) is dropped: load it into an fsar CLIP backbone separately. A ``module.``
prefix (DataParallel) and ``{"model_state": ...}`` / ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers are
removed. Any other key is an error naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from fsar.backbones.weights import raise_unknown_keys
from fsar.errors import WeightsError

_WRAPPERS = ("model_state", "state_dict", "model")
_ATTENTION = re.compile(
    r"^context2\.layers\.(\d+)\.0\.(norm\.(?:weight|bias)|fn\.to_[qkv]\.weight|fn\.to_out\.0\.(?:weight|bias))$"
)
_FFN = re.compile(r"^context2\.layers\.(\d+)\.1\.net\.([03])\.(weight|bias)$")


def convert_reference_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The original CLIP-FSAR model's (or head's) state dict -> :class:`CLIPFSARHead` keys (see the module
    docstring); the result loads with ``strict=True`` into a head of the same width and depth."""
    sd: Mapping = state_dict
    while isinstance(sd, Mapping) and (inner := [k for k in _WRAPPERS if isinstance(sd.get(k), Mapping)]):
        sd = sd[inner[0]]
    if not isinstance(sd, Mapping) or not sd:
        raise WeightsError("CLIP-FSAR state dict: expected a non-empty mapping of parameter names to tensors")
    out: dict[str, Tensor] = {}
    unknown = []
    for raw_key, value in sd.items():
        key = raw_key[len("module.") :] if raw_key.startswith("module.") else raw_key
        if key.startswith("backbone."):
            continue
        if not isinstance(value, Tensor):
            raise WeightsError(f"CLIP-FSAR state dict: {raw_key!r} is not a tensor ({type(value).__name__})")
        if key == "scale":
            out["scale"] = value
        elif m := _ATTENTION.match(key):
            rest = m.group(2).replace("fn.", "").replace("to_out.0.", "to_out.")
            out[f"transformer.layers.{m.group(1)}.attention.{rest}"] = value
        elif m := _FFN.match(key):
            out[f"transformer.layers.{m.group(1)}.feed_forward.{m.group(2)}.{m.group(3)}"] = value
        else:
            unknown.append(raw_key)
    raise_unknown_keys(
        "CLIP-FSAR state dict",
        unknown,
        "scale, context2.layers.<i>.{0,1}.* (the prototype transformer) and backbone.* (dropped)",
    )
    if "scale" not in out:
        raise WeightsError("CLIP-FSAR state dict: no `scale` entry; is this a CNN_OTAM_CLIPFSAR checkpoint?")
    return out
