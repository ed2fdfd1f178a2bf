import math
import re

import pytest
import torch
from torch import nn

from fsar.errors import WeightsError
from fsar.models.trx import (
    HEAD_PARAMETERS,
    TRX,
    TRXClassifier,
    convert_reference_classifier_state_dict,
    convert_reference_state_dict,
    sequential_trunk_to_torchvision,
)

D, T, OUT = 8, 8, 6


def original_pe_table(length, dim):
    """The original's table as it computes it: float32, int positions times float32 frequencies."""
    pe = torch.zeros(length, dim)
    position = torch.arange(0, length).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2) * -(math.log(10000.0) / dim))
    pe[:, 0::2] = torch.sin(position * freq) * 0.1
    pe[:, 1::2] = torch.cos(position * freq) * 0.1
    return pe.unsqueeze(0)


def original_transformers(cards=(2, 3), seed=0):
    """Keys of the original ``transformers`` ModuleList (bare), with random values."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i, card in enumerate(cards):
        shapes = {
            "linear.weight": (OUT, D * card),
            "linear.bias": (OUT,),
            "norm.weight": (OUT,),
            "norm.bias": (OUT,),
        }
        for name in HEAD_PARAMETERS:
            kind = "linear" if "linear" in name else "norm"
            sd[f"{i}.{name}"] = torch.randn(shapes[f"{kind}.{name.rsplit('.', 1)[1]}"], generator=g)
        sd[f"{i}.pe.pe"] = original_pe_table(int(1.5 * T), D)
    return sd


def check_loaded(head, sd):
    for key, value in sd.items():
        if not key.endswith("pe.pe"):
            assert torch.equal(head.state_dict()[key], value), key


@pytest.mark.parametrize("prefix", ["", "transformers.", "module.transformers.", "transformers.module."])
def test_head_keys_in_every_layout_load_strictly(prefix):
    sd = original_transformers()
    head = TRX(D, T, out_dim=OUT)
    out = convert_reference_state_dict({prefix + k: v for k, v in sd.items()})
    assert set(out) == {f"transformers.{k}" for k in sd if not k.endswith("pe.pe")}
    assert len(out) == 16  # 2 cardinalities x 8 parameters (norm_v included); the PE tables are dropped
    head.load_state_dict(out, strict=True)
    check_loaded(head, {f"transformers.{k}": v for k, v in sd.items()})


def test_full_run_py_checkpoint_with_trunk():
    sd = {"transformers." + k: v for k, v in original_transformers().items()}
    sd["resnet.module.0.weight"] = torch.zeros(64, 3, 7, 7)
    checkpoint = {"iteration": 75000, "model_state_dict": sd, "optimizer_state_dict": {}}
    with pytest.raises(WeightsError, match="ignore_other_parts"):
        convert_reference_state_dict(checkpoint)
    out = convert_reference_state_dict(checkpoint, ignore_other_parts=True)
    TRX(D, T, out_dim=OUT).load_state_dict(out, strict=True)
    module_wrapped = {"module." + k: v for k, v in sd.items()}  # the whole model under DataParallel
    assert convert_reference_state_dict(module_wrapped, ignore_other_parts=True).keys() == out.keys()


def test_unknown_keys_and_wrong_tables_raise_naming_them():
    sd = original_transformers()
    sd["0.q_linear.weight"] = torch.zeros(1)
    sd["transformers.extra"] = torch.zeros(1)
    with pytest.raises(WeightsError, match=r"0\.q_linear\.weight.*transformers\.extra"):
        convert_reference_state_dict(sd)
    sd = original_transformers()
    sd["1.pe.pe"] = sd["1.pe.pe"] * 10  # not the 0.1-scaled table
    with pytest.raises(WeightsError, match=r"'1\.pe\.pe' is not TRX's sinusoidal"):
        convert_reference_state_dict(sd)
    with pytest.raises(WeightsError, match="no TRX cross-transformer parameters"):
        convert_reference_state_dict({"0.pe.pe": original_pe_table(12, D)})
    with pytest.raises(WeightsError, match="not tensors"):
        convert_reference_state_dict({"0.k_linear.weight": [1.0]})


def test_strict_loading_catches_a_missing_cardinality_or_wrong_shapes():
    out = convert_reference_state_dict(original_transformers(cards=(2,)))
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*transformers\.1\.k_linear\.weight"):
        TRX(D, T, (2, 3), out_dim=OUT).load_state_dict(out, strict=True)
    with pytest.raises(RuntimeError, match="size mismatch"):
        TRX(D, T, (3,), out_dim=OUT).load_state_dict(out, strict=True)


def test_sequential_trunk_names():
    trunk = {k: torch.zeros(1) for k in ("0.weight", "1.running_mean", "4.0.conv1.weight", "7.2.bn3.bias")}
    trunk["5.0.downsample.0.weight"] = torch.zeros(1)
    assert sorted(sequential_trunk_to_torchvision(trunk)) == [
        "bn1.running_mean",
        "conv1.weight",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer4.2.bn3.bias",
    ]


class _Trunk(nn.Module):
    out_channels = D

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, D, 8, stride=8)

    def forward(self, x):
        return self.stem(x)


def test_classifier_checkpoint_with_a_custom_trunk_converter():
    g = torch.Generator().manual_seed(1)
    sd = {"transformers." + k: v for k, v in original_transformers().items()}
    sd["resnet.module.0.weight"] = torch.randn(D, 3, 8, 8, generator=g)
    sd["resnet.module.0.bias"] = torch.randn(D, generator=g)

    def trunk_converter(trunk):
        assert set(trunk) == {"conv1.weight", "conv1.bias"}  # torchvision names, DataParallel prefix removed
        return {k.replace("conv1.", "stem."): v for k, v in trunk.items()}

    clf = TRXClassifier(_Trunk(), out_dim=OUT)
    out = convert_reference_classifier_state_dict(
        {"model_state_dict": sd}, backbone_converter=trunk_converter
    )
    clf.load_state_dict(out, strict=True)
    assert torch.equal(clf.backbone.stem.weight, sd["resnet.module.0.weight"])
    assert torch.equal(clf.head.transformers[1].norm_v.bias, sd["transformers.1.norm_v.bias"])
    with pytest.raises(WeightsError, match="not_a_resnet_key"):
        convert_reference_classifier_state_dict({**sd, "resnet.module.9.not_a_resnet_key": torch.zeros(1)})


def _sequential_name(fsar_key):
    """fsar ResNet key -> the original's nn.Sequential trunk key (to build a synthetic checkpoint)."""
    key = fsar_key.removeprefix("model.")
    if m := re.fullmatch(r"embedder\.embedder\.(convolution|normalization)\.(.+)", key):
        return ("0." if m.group(1) == "convolution" else "1.") + m.group(2)
    if m := re.fullmatch(
        r"encoder\.stages\.(\d)\.layers\.(\d+)\.layer\.(\d)\.(convolution|normalization)\.(.+)", key
    ):
        s, b, i, part, rest = m.groups()
        return f"{int(s) + 4}.{b}.{'conv' if part == 'convolution' else 'bn'}{int(i) + 1}.{rest}"
    if m := re.fullmatch(
        r"encoder\.stages\.(\d)\.layers\.(\d+)\.shortcut\.(convolution|normalization)\.(.+)", key
    ):
        s, b, part, rest = m.groups()
        return f"{int(s) + 4}.{b}.downsample.{0 if part == 'convolution' else 1}.{rest}"
    raise AssertionError(f"unexpected backbone key {fsar_key}")


@pytest.mark.slow
def test_full_checkpoint_loads_into_the_classifier_on_fsar_resnet():
    import fsar.backbones.resnet  # noqa: F401  (registers the ResNets)
    from fsar.backbones import BACKBONES

    torch.manual_seed(0)
    source = TRXClassifier(BACKBONES.create("resnet18"), out_dim=OUT)  # plays the original model's role
    target = TRXClassifier(BACKBONES.create("resnet18"), out_dim=OUT)
    sd = {}
    for key, value in source.backbone.state_dict().items():
        sd["resnet.module." + _sequential_name(key)] = value + (0 if key.endswith("tracked") else 0.01)
    for key, value in source.head.state_dict().items():
        sd[key] = value
    for i in range(2):
        sd[f"transformers.{i}.pe.pe"] = original_pe_table(12, 512)
    target.load_state_dict(convert_reference_classifier_state_dict({"model_state_dict": sd}), strict=True)
    for key, value in source.backbone.state_dict().items():
        expected = value + (0 if key.endswith("tracked") else 0.01)
        assert torch.equal(target.backbone.state_dict()[key], expected), key
    for key, value in source.head.state_dict().items():
        assert torch.equal(target.head.state_dict()[key], value), key
