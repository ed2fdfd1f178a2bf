"""Frame backbones: ``small_cnn``, ``resnet18/34/50``, ``dinov2_vit{s,b,l}14`` and ``clip_rn50`` /
``clip_vit_b16`` (CLIP image encoders, ``[N, E, 1, 1]``), built by name.

    from fsar.backbones import create_backbone
    backbone = create_backbone("dinov2_vitb14", weights="dinov2_vitb14_pretrain.pth", pretrained_folder=...)

Every backbone maps frames ``[N, 3, H, W]`` to feature maps ``[N, C, h, w]`` and has ``out_channels``,
``default_normalization`` and ``frozen``. Weights are local files or folders only; transformers is imported
only when a ResNet or DINOv2 is built.
"""

from fsar.backbones import clip, dinov2, resnet, small_cnn  # noqa: F401  (registers the backbones)
from fsar.backbones.dinov2 import (
    Dinov2Backbone,
    convert_dinov2_hub_state_dict,
    resize_dinov2_position_embeddings,
)
from fsar.backbones.freezing import FreezableBackbone
from fsar.backbones.registry import BACKBONES, create_backbone
from fsar.backbones.resnet import ResNetBackbone, convert_torchvision_resnet_state_dict
from fsar.backbones.small_cnn import SmallCNN
from fsar.backbones.weights import WeightsNotFoundError

__all__ = [
    "BACKBONES",
    "Dinov2Backbone",
    "FreezableBackbone",
    "ResNetBackbone",
    "SmallCNN",
    "WeightsNotFoundError",
    "convert_dinov2_hub_state_dict",
    "convert_torchvision_resnet_state_dict",
    "create_backbone",
    "resize_dinov2_position_embeddings",
]
