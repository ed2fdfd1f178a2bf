"""Map a checkpoint of the reference Trokens code (``Pointformer``) onto :class:`fsar.models.trokens.Trokens`.

Kumar et al., ICCV 2025, reference code ``pulkitkumar95/trokens`` (names in trokens.md section 3). The names are
TATs' (:mod:`fsar.models.tats.convert`, whose rules and wrapper handling are reused), except:

- the block MLP is a ``Sequential`` of one MLP: ``blocks.<i>.mlp.0.fc{1,2}.*`` -> ``blocks.<i>.mlp.fc{1,2}.*``
  (the TATs name ``blocks.<i>.mlp.fc1.*`` is refused: it is not a Trokens checkpoint);
- the motion modules: ``hod_motion_module.*`` -> ``hod_embed.*``, ``cross_motion_module.*`` -> ``rel_embed.*``,
  with ``fc2.c_fc`` -> ``fc1``, ``fc2.c_proj`` -> ``fc2``, ``ln2`` -> ``norm``.

``dino.*`` and the dead ``spatial_pos_embed`` are dropped. Any subset of the keys (a gradient dict, say) converts
key by key; any other key raises :class:`fsar.errors.WeightsError` naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from fsar.errors import WeightsError
from fsar.models.tats.convert import rename_reference_keys, unwrap_state_dict

_MOTION_MODULES = {"hod_motion_module": "hod_embed", "cross_motion_module": "rel_embed"}
_MOTION_LAYERS = {"fc2.c_fc": "fc1", "fc2.c_proj": "fc2", "ln2": "norm"}
_MOTION_KEY = re.compile(
    r"^(hod_motion_module|cross_motion_module)\.(fc2\.c_fc|fc2\.c_proj|ln2)\.(weight|bias)$"
)
_SEQUENTIAL_MLP_KEY = re.compile(r"^blocks\.(\d+)\.mlp\.0\.(fc1|fc2)\.(weight|bias)$")
_TATS_MLP_KEY = re.compile(r"^blocks\.\d+\.mlp\.fc[12]\.(weight|bias)$")


def convert_reference_state_dict(checkpoint: Mapping[str, object]) -> dict[str, Tensor]:
    """Convert a reference Trokens state dict (or checkpoint, possibly DDP-prefixed) for :class:`Trokens`.

    Load the result with ``model.load_state_dict(sd, strict=True)``; the reference's hyper-parameters (width, T,
    classes, depth, N, bins, both motion modules on) must be the model's, which strict loading checks.
    """
    sd = unwrap_state_dict(checkpoint)
    out: dict[str, Tensor] = {}
    rest: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in sd.items():
        motion = _MOTION_KEY.match(key)
        mlp = _SEQUENTIAL_MLP_KEY.match(key)
        if motion:
            module, layer, kind = motion.groups()
            out[f"{_MOTION_MODULES[module]}.{_MOTION_LAYERS[layer]}.{kind}"] = value
        elif mlp:
            index, layer, kind = mlp.groups()
            out[f"blocks.{index}.mlp.{layer}.{kind}"] = value
        elif _TATS_MLP_KEY.match(key):
            unknown.append(key)  # a TATs name: use fsar.models.tats.convert_reference_state_dict
        else:
            rest[key] = value
    renamed, others = rename_reference_keys(rest)
    out.update(renamed)
    unknown.extend(others)
    if unknown:
        raise WeightsError(
            f"reference Trokens checkpoint has {len(unknown)} unexpected key(s): {unknown[:10]}; expected the "
            "Pointformer names of trokens.md section 3 (TATs names with blocks.<i>.mlp.0.fc{1,2}.*, plus "
            "hod_motion_module.* and cross_motion_module.* with fc2.c_fc, fc2.c_proj, ln2; dino.* is dropped). "
            "A TATs checkpoint converts with fsar.models.tats.convert_reference_state_dict"
        )
    if not out:
        raise WeightsError(
            "reference Trokens checkpoint holds no Trokens parameters (only dropped keys or nothing)"
        )
    return out
