"""ResNet backbones (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016) on transformers.

``resnet50`` is the backbone of OTAM, TRX and TA2N: torchvision's ImageNet ResNet-50 ("v1.5": stride on the 3x3
conv) with ``fc`` and ``avgpool`` removed, returning the layer-4 map after the final ReLU (2048 x 7 x 7 at 224 px).
Here it is transformers' ``ResNetModel(ResNetConfig())`` (the same v1.5 network); torchvision-format checkpoints
are converted with :func:`convert_torchvision_resnet_state_dict` (key map: /work/shared/specs/dependencies.md §7).
``resnet18`` / ``resnet34`` use basic blocks (512 channels out).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from fsar.backbones.freezing import FreezableBackbone
from fsar.backbones.registry import BACKBONES
from fsar.backbones.weights import (
    load_state_dict_strictly,
    raise_unknown_keys,
    read_state_dict_file,
    resolve_weights_path,
    unwrap_state_dict,
)
from fsar.errors import WeightsError

# name -> (layer_type, depths, hidden_sizes)
RESNET_VARIANTS: dict[str, tuple[str, list[int], list[int]]] = {
    "resnet18": ("basic", [2, 2, 2, 2], [64, 128, 256, 512]),
    "resnet34": ("basic", [3, 4, 6, 3], [64, 128, 256, 512]),
    "resnet50": ("bottleneck", [3, 4, 6, 3], [256, 512, 1024, 2048]),
}

_STEM = re.compile(r"^(conv1|bn1)\.(.+)$")
_BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.(conv|bn)([1-3])\.(.+)$")
_DOWNSAMPLE = re.compile(r"^layer([1-4])\.(\d+)\.downsample\.([01])\.(.+)$")


def convert_torchvision_resnet_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """torchvision ResNet keys -> transformers ``ResNetModel`` keys (``fc.*`` dropped).

    Accepts ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers and a ``module.`` prefix; BatchNorm's
    ``num_batches_tracked`` may be present or not. Any other key is a :class:`WeightsError` listing it.
    """
    sd = unwrap_state_dict(state_dict, source="torchvision ResNet state dict")
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in sd.items():
        if key.startswith("fc."):
            continue
        if m := _STEM.match(key):
            part = "convolution" if m.group(1) == "conv1" else "normalization"
            out[f"embedder.embedder.{part}.{m.group(2)}"] = value
        elif m := _BLOCK.match(key):
            stage, block, kind, idx, rest = m.groups()
            part = "convolution" if kind == "conv" else "normalization"
            out[f"encoder.stages.{int(stage) - 1}.layers.{block}.layer.{int(idx) - 1}.{part}.{rest}"] = value
        elif m := _DOWNSAMPLE.match(key):
            stage, block, idx, rest = m.groups()
            part = "convolution" if idx == "0" else "normalization"
            out[f"encoder.stages.{int(stage) - 1}.layers.{block}.shortcut.{part}.{rest}"] = value
        else:
            unknown.append(key)
    raise_unknown_keys(
        "torchvision ResNet state dict", unknown, "conv1/bn1/layer1-4/fc keys of a torchvision ResNet"
    )
    return out


class ResNetBackbone(FreezableBackbone):
    """Frames ``[N, 3, H, W]`` -> layer-4 map ``[N, C, H/32, W/32]`` (C = 2048 for ResNet-50)."""

    default_normalization = "imagenet"

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model  # a transformers ResNetModel
        self.out_channels = int(model.config.hidden_sizes[-1])

    def forward(self, frames: Tensor) -> Tensor:
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"ResNet backbone expects frames [N, 3, H, W]; got {tuple(frames.shape)}")
        with self.grad_context():
            return self.model(pixel_values=frames).last_hidden_state


def _build(variant: str) -> Any:
    from transformers import ResNetConfig, ResNetModel

    layer_type, depths, hidden_sizes = RESNET_VARIANTS[variant]
    config = ResNetConfig(
        layer_type=layer_type,
        depths=depths,
        hidden_sizes=hidden_sizes,
        embedding_size=64,
        hidden_act="relu",
        downsample_in_first_stage=False,
        downsample_in_bottleneck=False,
    )
    return ResNetModel(config)


def _load_hf_folder(variant: str, folder: Path) -> Any:
    from transformers import ResNetModel

    if not (folder / "config.json").is_file():
        raise WeightsError(
            f"{folder}: a weights folder must be a Hugging Face folder with config.json (made by save_pretrained); "
            "for a torchvision checkpoint pass the .pth file itself"
        )
    model = ResNetModel.from_pretrained(str(folder), local_files_only=True)
    layer_type, depths, hidden_sizes = RESNET_VARIANTS[variant]
    cfg = model.config
    found = (cfg.layer_type, list(cfg.depths), list(cfg.hidden_sizes))
    if found != (layer_type, depths, hidden_sizes):
        raise WeightsError(
            f"{folder}/config.json describes a ResNet with layer_type={found[0]}, depths={found[1]}, "
            f"hidden_sizes={found[2]}, which is not {variant}; choose the matching backbone name"
        )
    return model


def build_resnet(
    variant: str,
    weights: str | os.PathLike[str] | None = None,
    pretrained_folder: str | os.PathLike[str] | None = None,
    frozen: bool = False,
) -> ResNetBackbone:
    """ResNet ``variant`` with random init (``weights=None``), a torchvision checkpoint file or a HF folder."""
    if variant not in RESNET_VARIANTS:
        raise KeyError(f"unknown ResNet variant {variant!r}; available: {', '.join(RESNET_VARIANTS)}")
    if weights is None:
        backbone = ResNetBackbone(_build(variant))
    else:
        path = resolve_weights_path(weights, pretrained_folder)
        if path.is_dir():
            backbone = ResNetBackbone(_load_hf_folder(variant, path))
        else:
            backbone = ResNetBackbone(_build(variant))
            converted = convert_torchvision_resnet_state_dict(read_state_dict_file(path))
            load_state_dict_strictly(backbone.model, converted, source=str(path))
    # Like any new nn.Module it starts in train mode (from_pretrained returns eval mode), unless frozen.
    if frozen:
        backbone.freeze()
    else:
        backbone.train()
    return backbone


def _register(variant: str) -> None:
    def factory(
        weights: str | os.PathLike[str] | None = None,
        pretrained_folder: str | os.PathLike[str] | None = None,
        frozen: bool = False,
    ) -> ResNetBackbone:
        return build_resnet(variant, weights=weights, pretrained_folder=pretrained_folder, frozen=frozen)

    factory.__name__ = variant
    factory.__doc__ = f"{variant}: trainable by default (as in TA2N/OTAM); ``frozen=True`` freezes it."
    BACKBONES.register(variant)(factory)


for _variant in RESNET_VARIANTS:
    _register(_variant)
