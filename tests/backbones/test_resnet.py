"""ResNet backbones: shapes, and torchvision-format checkpoints converted and loaded exactly (random weights)."""

import re

import pytest
import torch

from fsar.backbones import convert_torchvision_resnet_state_dict, create_backbone
from fsar.errors import WeightsError


def to_torchvision_keys(hf_state_dict):
    """Inverse of the dependencies.md §7 key map (written independently of fsar's converter)."""
    out = {}
    for key, value in hf_state_dict.items():
        key2 = key.replace("embedder.embedder.convolution.", "conv1.").replace(
            "embedder.embedder.normalization.", "bn1."
        )
        m = re.match(r"encoder\.stages\.(\d)\.layers\.(\d+)\.(.+)", key2)
        if m:
            stage, block, rest = int(m.group(1)) + 1, m.group(2), m.group(3)
            rest = re.sub(r"^layer\.(\d)\.convolution\.", lambda g: f"conv{int(g.group(1)) + 1}.", rest)
            rest = re.sub(r"^layer\.(\d)\.normalization\.", lambda g: f"bn{int(g.group(1)) + 1}.", rest)
            rest = rest.replace("shortcut.convolution.", "downsample.0.").replace(
                "shortcut.normalization.", "downsample.1."
            )
            key2 = f"layer{stage}.{block}.{rest}"
        out[key2] = value.clone()
    return out


def randomise_bn_statistics(model, gen):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)


def test_resnet50_shape_and_attributes():
    net = create_backbone("resnet50")
    assert net.out_channels == 2048 and net.default_normalization == "imagenet" and not net.frozen
    assert net.training  # trainable and in train mode by default, as in TA2N
    out = net.eval()(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (1, 2048, 2, 2)
    assert (out >= 0).all()  # layer-4 map after the final ReLU


def test_torchvision_resnet50_checkpoint_round_trip(tmp_path):
    gen = torch.Generator().manual_seed(0)
    src = create_backbone("resnet50").eval()
    randomise_bn_statistics(src, gen)
    tv = to_torchvision_keys(src.model.state_dict())
    assert "layer1.0.downsample.0.weight" in tv and "layer4.2.conv3.weight" in tv and "bn1.running_var" in tv
    assert len(tv) == 318
    # as published: wrapped, DataParallel prefix, an fc head, no num_batches_tracked buffers
    tv = {k: v for k, v in tv.items() if not k.endswith("num_batches_tracked")}
    tv["fc.weight"], tv["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    torch.save({"state_dict": {f"module.{k}": v for k, v in tv.items()}}, tmp_path / "r50.pth")

    net = create_backbone("resnet50", weights=tmp_path / "r50.pth").eval()
    x = torch.randn(1, 3, 64, 64, generator=gen)
    with torch.no_grad():
        assert torch.equal(net(x), src(x))


def test_converter_maps_every_key_and_rejects_unknown_ones():
    sd = {
        "conv1.weight": torch.zeros(1),
        "bn1.num_batches_tracked": torch.zeros(()),
        "layer3.5.bn2.running_mean": torch.zeros(1),
        "layer2.0.downsample.1.bias": torch.zeros(1),
        "fc.weight": torch.zeros(1),
    }
    assert sorted(convert_torchvision_resnet_state_dict(sd)) == [
        "embedder.embedder.convolution.weight",
        "embedder.embedder.normalization.num_batches_tracked",
        "encoder.stages.1.layers.0.shortcut.normalization.bias",
        "encoder.stages.2.layers.5.layer.1.normalization.running_mean",
    ]
    with pytest.raises(WeightsError, match="unknown keys.*layer5.0.conv1.weight"):
        convert_torchvision_resnet_state_dict({**sd, "layer5.0.conv1.weight": torch.zeros(1)})


def test_resnet18_checkpoint_into_resnet50_lists_problems(tmp_path):
    tv = to_torchvision_keys(create_backbone("resnet18").model.state_dict())
    torch.save(tv, tmp_path / "r18.pth")
    with pytest.raises(WeightsError, match=r"r18\.pth.*missing keys: .*layer\.2\..*shape mismatches"):
        create_backbone("resnet50", weights=tmp_path / "r18.pth")


def test_hf_folder_round_trip_and_variant_check(tmp_path):
    gen = torch.Generator().manual_seed(1)
    src = create_backbone("resnet18").eval()
    randomise_bn_statistics(src, gen)
    src.model.save_pretrained(tmp_path / "r18")
    net = create_backbone("resnet18", weights=tmp_path / "r18", frozen=True)
    assert net.out_channels == 512 and net.frozen and not net.training
    x = torch.randn(2, 3, 64, 64, generator=gen)
    with torch.no_grad():
        assert torch.equal(net(x), src(x))
    assert net(x).shape == (2, 512, 2, 2)
    with pytest.raises(WeightsError, match="not resnet34"):
        create_backbone("resnet34", weights=tmp_path / "r18")


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(WeightsError, match="config.json"):
        create_backbone("resnet50", weights=tmp_path)
