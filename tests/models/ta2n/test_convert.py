import pytest
import torch
from torch import nn

from fsar.errors import WeightsError
from fsar.models.ta2n import (
    REFERENCE_KEY_TABLE,
    TA2N,
    TA2NClassifier,
    convert_reference_classifier_state_dict,
    convert_reference_state_dict,
)

C, CA = 16, 12  # dim = (C, C'), different so that swapped shapes would show


def _bn(prefix, ch):
    return {
        f"{prefix}.weight": (ch,),
        f"{prefix}.bias": (ch,),
        f"{prefix}.running_mean": (ch,),
        f"{prefix}.running_var": (ch,),
        f"{prefix}.num_batches_tracked": (),
    }


def original_module_shapes(c=C, ca=CA):
    """Key names and shapes of the original TA2N module, written out from ta2n.md §3.1."""
    shapes = {
        "firststage.locnet.0.weight": (64, c, 3, 3, 3),
        "firststage.locnet.0.bias": (64,),
        **_bn("firststage.locnet.1", 64),
        "firststage.locnet.4.weight": (128, 64, 3, 3, 3),
        "firststage.locnet.4.bias": (128,),
        **_bn("firststage.locnet.5", 128),
        "firststage.locnet.10.weight": (32, 128),
        "firststage.locnet.10.bias": (32,),
        "firststage.locnet.12.weight": (2, 32),
        "firststage.locnet.12.bias": (2,),
        "secondstage.keynet.weight": (ca, c, 1),
        "secondstage.querynet.weight": (ca, c, 1),
        "secondstage.valuenet.weight": (c, c, 1),
        "secondstage.mvnet.0.weight": (128, 2 * c, 3, 3, 3),
        "secondstage.mvnet.0.bias": (128,),
        **_bn("secondstage.mvnet.1", 128),
        "secondstage.mvnet.4.weight": (128, 128, 3, 3, 3),
        "secondstage.mvnet.4.bias": (128,),
        **_bn("secondstage.mvnet.5", 128),
        "secondstage.mvnet.10.weight": (64, 128, 1),
        "secondstage.mvnet.10.bias": (64,),
        "secondstage.mvnet.12.weight": (2, 64, 1),
        "secondstage.mvnet.12.bias": (2,),
        "keynet_multi.weight": (ca, c, 1),
        "querynet_multi.weight": (ca, c, 1),
        "valuenet_multi.weight": (c, c, 1),
    }
    return shapes


def synthetic_state_dict(prefix="", seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in original_module_shapes().items():
        if key.endswith("num_batches_tracked"):
            out[prefix + key] = torch.tensor(7)
        else:
            out[prefix + key] = torch.randn(shape, generator=g)
    return out


def test_key_table_covers_every_original_key():
    assert set(REFERENCE_KEY_TABLE) == set(original_module_shapes())
    assert len(set(REFERENCE_KEY_TABLE.values())) == len(REFERENCE_KEY_TABLE) == 42


@pytest.mark.parametrize("prefix", ["", "align.", "ta2n.", "module.", "module.align."])
def test_synthetic_original_state_dict_loads_strictly(prefix):
    sd = synthetic_state_dict(prefix)
    model = TA2N(T=8, shot=1, dim=(C, CA))
    model.load_state_dict(convert_reference_state_dict(sd), strict=True)
    assert torch.equal(model.ttm.conv1.weight, sd[prefix + "firststage.locnet.0.weight"])
    assert torch.equal(model.ttm.fc2.bias, sd[prefix + "firststage.locnet.12.bias"])
    assert torch.equal(model.acm.key_proj.weight, sd[prefix + "secondstage.keynet.weight"])
    assert torch.equal(model.acm.offset_net.bn2.running_var, sd[prefix + "secondstage.mvnet.5.running_var"])
    assert torch.equal(model.acm.offset_net.fc1.weight, sd[prefix + "secondstage.mvnet.10.weight"])
    assert torch.equal(model.fusion.value_proj.weight, sd[prefix + "valuenet_multi.weight"])
    assert int(model.ttm.bn1.num_batches_tracked) == 7


def test_checkpoint_wrapper_is_unwrapped():
    ckpt = {"iteration": "best", "model_state_dict": synthetic_state_dict("align.")}
    TA2N(T=8, dim=(C, CA)).load_state_dict(convert_reference_state_dict(ckpt), strict=True)


def test_unknown_keys_raise_listing_them():
    sd = synthetic_state_dict()
    sd["secondstage.mvnet.99.weight"] = torch.zeros(1)
    sd["align.extra"] = torch.zeros(1)
    with pytest.raises(WeightsError, match=r"secondstage\.mvnet\.99\.weight.*extra|extra.*mvnet\.99"):
        convert_reference_state_dict(sd)


def test_full_model_keys_need_an_explicit_choice():
    sd = synthetic_state_dict("align.")
    sd["resnet.module.conv1.weight"] = torch.zeros(64, 3, 7, 7)
    sd["protypicalNet.norm_layer.weight"] = torch.ones(5)
    with pytest.raises(WeightsError, match="ignore_other_parts"):
        convert_reference_state_dict(sd)
    out = convert_reference_state_dict(sd, ignore_other_parts=True)
    TA2N(T=8, dim=(C, CA)).load_state_dict(out, strict=True)


class _Trunk(nn.Module):
    out_channels = C

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, C, 8, stride=8)

    def forward(self, x):
        return self.stem(x)


def test_full_training_checkpoint_maps_onto_the_classifier():
    g = torch.Generator().manual_seed(1)
    sd = synthetic_state_dict("align.")
    sd["resnet.module.conv1.weight"] = torch.randn(C, 3, 8, 8, generator=g)
    sd["resnet.module.conv1.bias"] = torch.randn(C, generator=g)
    sd["protypicalNet.norm_layer.weight"] = torch.randn(5, generator=g)
    sd["protypicalNet.norm_layer.bias"] = torch.randn(5, generator=g)

    def trunk_converter(trunk):
        assert set(trunk) == {"conv1.weight", "conv1.bias"}  # torchvision names, DataParallel prefix removed
        return {k.replace("conv1.", "stem."): v for k, v in trunk.items()}

    clf = TA2NClassifier(_Trunk(), way=5, dim=(C, CA))
    out = convert_reference_classifier_state_dict(
        {"model_state_dict": sd}, backbone_converter=trunk_converter
    )
    clf.load_state_dict(out, strict=True)
    assert torch.equal(clf.backbone.stem.weight, sd["resnet.module.conv1.weight"])
    assert torch.equal(clf.logit_norm.bias, sd["protypicalNet.norm_layer.bias"])
    assert torch.equal(clf.ta2n.acm.offset_net.conv1.weight, sd["align.secondstage.mvnet.0.weight"])


def test_default_trunk_converter_is_fsar_resnet_and_reports_bad_keys():
    sd = synthetic_state_dict("align.")
    sd["resnet.module.not_a_resnet_key"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="not_a_resnet_key"):
        convert_reference_classifier_state_dict(sd)
    with pytest.raises(WeightsError, match="protypicalNet.head"):
        convert_reference_classifier_state_dict({"protypicalNet.head.weight": torch.zeros(1)})


def _torchvision_name(fsar_key: str) -> str:
    """Inverse of fsar's torchvision -> transformers ResNet key map (for building a synthetic checkpoint)."""
    import re

    key = fsar_key.removeprefix("model.")
    if m := re.fullmatch(r"embedder\.embedder\.(convolution|normalization)\.(.+)", key):
        return ("conv1." if m.group(1) == "convolution" else "bn1.") + m.group(2)
    if m := re.fullmatch(
        r"encoder\.stages\.(\d)\.layers\.(\d+)\.layer\.(\d)\.(convolution|normalization)\.(.+)", key
    ):
        s, b, i, part, rest = m.groups()
        return f"layer{int(s) + 1}.{b}.{'conv' if part == 'convolution' else 'bn'}{int(i) + 1}.{rest}"
    if m := re.fullmatch(
        r"encoder\.stages\.(\d)\.layers\.(\d+)\.shortcut\.(convolution|normalization)\.(.+)", key
    ):
        s, b, part, rest = m.groups()
        return f"layer{int(s) + 1}.{b}.downsample.{0 if part == 'convolution' else 1}.{rest}"
    raise AssertionError(f"unexpected backbone key {fsar_key}")


@pytest.mark.slow
def test_full_checkpoint_with_resnet_trunk_loads_into_classifier_on_fsar_resnet():
    import fsar.backbones.resnet  # noqa: F401  (registers the ResNets)
    from fsar.backbones import BACKBONES

    torch.manual_seed(0)
    source = TA2NClassifier(BACKBONES.create("resnet18"), way=5)  # plays the original model's role
    target = TA2NClassifier(BACKBONES.create("resnet18"), way=5)
    g = torch.Generator().manual_seed(2)
    sd = {}
    for key, value in source.backbone.state_dict().items():
        sd["resnet.module." + _torchvision_name(key)] = value + (0 if key.endswith("tracked") else 0.01)
    inverse = {v: k for k, v in REFERENCE_KEY_TABLE.items()}
    for key, value in source.ta2n.state_dict().items():
        sd["align." + inverse[key]] = value
    sd["protypicalNet.norm_layer.weight"] = torch.randn(5, generator=g)
    sd["protypicalNet.norm_layer.bias"] = torch.randn(5, generator=g)
    target.load_state_dict(convert_reference_classifier_state_dict({"model_state_dict": sd}), strict=True)
    for key, value in source.backbone.state_dict().items():
        expected = value + (0 if key.endswith("tracked") else 0.01)
        assert torch.equal(target.backbone.state_dict()[key], expected), key
