"""HyRSM and MoLo converters on state dicts named as the originals' heads."""

import pytest
import torch

from fsar.errors import WeightsError
from fsar.models import hyrsm, molo
from fsar.models.hyrsm.loop import loop_pe_table

D = 16


def heads():
    return {
        "hyrsm": (hyrsm, lambda: hyrsm.HyRSM(D, num_frames=4, num_classes=5, num_heads=2)),
        "molo": (molo, lambda: molo.MoLo(D, num_frames=4, num_classes=5, num_heads=2, mlp_dim=8)),
    }


def reference_state_dict(make, seed=0, prefix=""):
    """What the original head's state_dict() holds: the head's parameters under its names, the PE table and the
    ResNet trunk, with random values."""
    torch.manual_seed(seed)
    sd = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in make().state_dict().items()}
    sd["pe.pe"] = loop_pe_table(20, D)[None]
    sd["backbone.0.weight"] = torch.randn(4, 3, 7, 7)
    sd["backbone.4.0.bn1.running_mean"] = torch.randn(4)
    return {prefix + k: v for k, v in sd.items()}


@pytest.mark.parametrize("method", ["hyrsm", "molo"])
@pytest.mark.parametrize("prefix", ["", "module."])
def test_full_reference_state_dict_loads_strictly(method, prefix):
    module, make = heads()[method]
    sd = reference_state_dict(make, prefix=prefix)
    converted = module.convert_reference_state_dict(sd)
    assert set(converted) == set(module.HEAD_KEYS)
    head = make()
    head.load_state_dict(converted, strict=True)
    for key in module.HEAD_KEYS:
        assert torch.equal(head.state_dict()[key], sd[prefix + key]), key
    # wrapped as in a training checkpoint
    assert set(module.convert_reference_state_dict({"model_state": sd})) == set(module.HEAD_KEYS)


@pytest.mark.parametrize("method", ["hyrsm", "molo"])
def test_subsets_convert_key_by_key(method):
    module, make = heads()[method]
    grads = {f"module.{k}": torch.ones(3) for k in module.HEAD_KEYS[:3]}
    assert module.convert_reference_state_dict(grads) == {
        k: grads[f"module.{k}"] for k in module.HEAD_KEYS[:3]
    }
    assert module.convert_reference_state_dict({"backbone.1.weight": torch.ones(2)}) == {}


@pytest.mark.parametrize("method", ["hyrsm", "molo"])
def test_wrong_pe_table_and_unknown_keys_raise(method):
    module, make = heads()[method]
    sd = reference_state_dict(make)
    bad_pe = dict(sd, **{"pe.pe": sd["pe.pe"] * 1.01})
    with pytest.raises(WeightsError, match="positional-encoder table"):
        module.convert_reference_state_dict(bad_pe)
    with pytest.raises(WeightsError, match=r"\[1, length, even D\]"):
        module.convert_reference_state_dict({"pe.pe": torch.zeros(20, D)})
    with pytest.raises(WeightsError, match="'module.relation_head.weight'"):
        module.convert_reference_state_dict(dict(sd, **{"module.relation_head.weight": torch.zeros(1)}))


def test_keys_of_one_method_are_refused_by_the_other():
    with pytest.raises(WeightsError, match="class_token"):
        hyrsm.convert_reference_state_dict(reference_state_dict(heads()["molo"][1]))
    with pytest.raises(WeightsError, match="layer2.0.weight"):
        molo.convert_reference_state_dict(reference_state_dict(heads()["hyrsm"][1]))
