"""DINOv2 ViT backbones (Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision", TMLR 2024).

TATs (Kumar et al., 2025) uses a frozen DINOv2 ViT-B/14 and keeps the 16x16 grid of patch tokens after the
final norm for 224-px frames. Here the network is transformers' ``Dinov2Model`` built for 224 px. Official hub
checkpoints (``dinov2_vit{s,b,l}14_pretrain.pth``, made for 518 px) are converted by
:func:`convert_dinov2_hub_state_dict`, which also resizes the position embeddings once, at load time, the way
the official model does at run time (:func:`resize_dinov2_position_embeddings`; bicubic, no antialiasing,
*scale factor* (16 + 0.1) / 37). With that, the outputs equal the official model's (dependencies.md §1, §7).
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
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

PATCH_SIZE = 14
# The official models interpolate position embeddings with this offset added to the target grid side.
INTERPOLATE_OFFSET = 0.1
# name -> (hidden size, layers, heads); MLP ratio 4 for all three.
DINOV2_VARIANTS: dict[str, tuple[int, int, int]] = {
    "dinov2_vits14": (384, 12, 6),
    "dinov2_vitb14": (768, 12, 12),
    "dinov2_vitl14": (1024, 24, 16),
}

# Per-block official key suffix -> transformers suffix (the qkv projection is split separately).
_BLOCK_KEYS = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "attn.proj.weight": "attention.o_proj.weight",
    "attn.proj.bias": "attention.o_proj.bias",
    "ls1.gamma": "layer_scale1.lambda1",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
    "ls2.gamma": "layer_scale2.lambda1",
}
_TOP_KEYS = {
    "cls_token": "embeddings.cls_token",
    "mask_token": "embeddings.mask_token",
    "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
}
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def _grid_side(image_size: int) -> int:
    if image_size < PATCH_SIZE or image_size % PATCH_SIZE:
        raise ValueError(f"image_size must be a positive multiple of {PATCH_SIZE}; got {image_size}")
    return image_size // PATCH_SIZE


def resize_dinov2_position_embeddings(
    pos_embed: Tensor, grid: int, offset: float = INTERPOLATE_OFFSET
) -> Tensor:
    """Resize ``(1, 1 + M*M, D)`` position embeddings to ``(1, 1 + grid*grid, D)`` as official DINOv2 does.

    The M x M patch part is resized in float32 with bicubic interpolation, ``antialias=False`` and a scale
    factor of ``(grid + offset) / M`` on both axes (not a target size: the two give different numbers). The
    CLS position is kept as is. When M == grid nothing changes (the official model skips the resize too).
    """
    if pos_embed.dim() != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f"pos_embed must have shape (1, 1 + M*M, D); got {tuple(pos_embed.shape)}")
    num_patches = pos_embed.shape[1] - 1
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f"pos_embed has {num_patches} patch positions, which is not a square grid")
    if side == grid:
        return pos_embed.clone()
    dim = pos_embed.shape[2]
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
    patch_pos = patch_pos.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    scale = (grid + offset) / side
    resized = F.interpolate(patch_pos, scale_factor=(scale, scale), mode="bicubic", antialias=False)
    if tuple(resized.shape[-2:]) != (grid, grid):
        raise ValueError(
            f"resizing a {side}x{side} grid with offset {offset} gave {tuple(resized.shape[-2:])}"
        )
    resized = resized.permute(0, 2, 3, 1).reshape(1, grid * grid, dim).to(pos_embed.dtype)
    return torch.cat([cls_pos, resized], dim=1)


def convert_dinov2_hub_state_dict(
    state_dict: Mapping[str, Tensor], image_size: int = 224
) -> dict[str, Tensor]:
    """Official DINOv2 hub keys -> transformers ``Dinov2Model`` keys, position embeddings resized for
    ``image_size`` (a multiple of 14).

    ``blocks.i.attn.qkv`` is split with ``chunk(3, dim=0)`` into q, k, v (in that order). Any key outside the
    ViT-S/B/L hub format (e.g. SwiGLU ``mlp.w12`` of ViT-g, ``register_tokens``) is a :class:`WeightsError`.
    """
    grid = _grid_side(image_size)
    sd = unwrap_state_dict(state_dict, source="DINOv2 hub state dict")
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in sd.items():
        if key in _TOP_KEYS:
            out[_TOP_KEYS[key]] = value
        elif key == "pos_embed":
            out["embeddings.position_embeddings"] = resize_dinov2_position_embeddings(value, grid)
        elif (m := _BLOCK.match(key)) is not None and (
            m.group(2) in _BLOCK_KEYS or m.group(2) in ("attn.qkv.weight", "attn.qkv.bias")
        ):
            prefix = f"encoder.layer.{m.group(1)}."
            rest = m.group(2)
            if rest.startswith("attn.qkv."):
                kind = rest.rsplit(".", 1)[1]
                if value.shape[0] % 3:
                    raise WeightsError(
                        f"DINOv2 hub state dict: {key} has {value.shape[0]} rows, not divisible by 3"
                    )
                q, k, v = value.chunk(3, dim=0)
                out[prefix + f"attention.q_proj.{kind}"] = q
                out[prefix + f"attention.k_proj.{kind}"] = k
                out[prefix + f"attention.v_proj.{kind}"] = v
            else:
                out[prefix + _BLOCK_KEYS[rest]] = value
        else:
            unknown.append(key)
    raise_unknown_keys(
        "DINOv2 hub state dict",
        unknown,
        "an official dinov2_vit{s,b,l}14 checkpoint (no registers, no SwiGLU)",
    )
    return out


class Dinov2Backbone(FreezableBackbone):
    """Frames ``[N, 3, H, W]`` (H, W multiples of 14) -> patch grid ``[N, D, H/14, W/14]`` after the final norm.

    At ``image_size`` the stored position embeddings are used as they are; at other sizes transformers
    interpolates them (with a target size, which is not the official formula).
    """

    default_normalization = "imagenet"  # DINOv2 was trained with ImageNet statistics (TATs feeds CLIP ones)

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model  # a transformers Dinov2Model
        self.out_channels = int(model.config.hidden_size)

    def forward(self, frames: Tensor) -> Tensor:
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"DINOv2 backbone expects frames [N, 3, H, W]; got {tuple(frames.shape)}")
        h, w = frames.shape[-2:]
        if h % PATCH_SIZE or w % PATCH_SIZE:
            raise ValueError(
                f"DINOv2 needs frame sides that are multiples of {PATCH_SIZE}; got {h}x{w} (resize to e.g. 224x224)"
            )
        with self.grad_context():
            tokens = self.model(pixel_values=frames).last_hidden_state[:, 1:]
            n, _, d = tokens.shape
            return tokens.reshape(n, h // PATCH_SIZE, w // PATCH_SIZE, d).permute(0, 3, 1, 2).contiguous()


def _config(variant: str, image_size: int, num_layers: int | None) -> Any:
    from transformers import Dinov2Config

    hidden, layers, heads = DINOV2_VARIANTS[variant]
    return Dinov2Config(
        hidden_size=hidden,
        num_hidden_layers=layers if num_layers is None else num_layers,
        num_attention_heads=heads,
        mlp_ratio=4,
        image_size=image_size,
        patch_size=PATCH_SIZE,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        layerscale_value=1.0,
        qkv_bias=True,
        use_swiglu_ffn=False,
        drop_path_rate=0.0,
    )


def _load_hf_folder(variant: str, folder: Path, image_size: int, num_layers: int | None) -> Any:
    from transformers import Dinov2Model

    if not (folder / "config.json").is_file():
        raise WeightsError(
            f"{folder}: a weights folder must be a Hugging Face folder with config.json (made by save_pretrained); "
            "for an official hub checkpoint pass the .pth file itself"
        )
    loaded = Dinov2Model.from_pretrained(str(folder), local_files_only=True)
    cfg = loaded.config
    hidden, layers, heads = DINOV2_VARIANTS[variant]
    want_layers = layers if num_layers is None else num_layers
    if (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) != (hidden, want_layers, heads):
        raise WeightsError(
            f"{folder}/config.json describes a ViT with hidden_size={cfg.hidden_size}, "
            f"num_hidden_layers={cfg.num_hidden_layers}, num_attention_heads={cfg.num_attention_heads}; "
            f"{variant} needs {hidden}/{want_layers}/{heads}; choose the matching backbone name"
        )
    if cfg.image_size == image_size:
        return loaded
    # Built for another size (518 for the published models): resize the position embeddings once, officially.
    new_cfg = copy.deepcopy(cfg)
    new_cfg.image_size = image_size
    model = Dinov2Model(new_cfg)
    sd = loaded.state_dict()
    key = "embeddings.position_embeddings"
    sd[key] = resize_dinov2_position_embeddings(sd[key], _grid_side(image_size))
    load_state_dict_strictly(model, sd, source=str(folder))
    return model


def build_dinov2(
    variant: str,
    weights: str | os.PathLike[str] | None = None,
    pretrained_folder: str | os.PathLike[str] | None = None,
    frozen: bool = True,
    image_size: int = 224,
    num_layers: int | None = None,
) -> Dinov2Backbone:
    """DINOv2 ``variant`` for ``image_size`` px (default 224 -> 16x16 grid).

    ``weights``: None (random init), an official hub ``.pth`` or a HF folder. ``num_layers`` overrides the
    depth (for small tests); ``frozen`` (default) disables gradients and keeps eval mode.
    """
    if variant not in DINOV2_VARIANTS:
        raise KeyError(f"unknown DINOv2 variant {variant!r}; available: {', '.join(DINOV2_VARIANTS)}")
    _grid_side(image_size)
    if weights is None:
        from transformers import Dinov2Model

        model = Dinov2Model(_config(variant, image_size, num_layers))
    else:
        path = resolve_weights_path(weights, pretrained_folder)
        if path.is_dir():
            model = _load_hf_folder(variant, path, image_size, num_layers)
        else:
            from transformers import Dinov2Model

            model = Dinov2Model(_config(variant, image_size, num_layers))
            converted = convert_dinov2_hub_state_dict(read_state_dict_file(path), image_size=image_size)
            load_state_dict_strictly(model, converted, source=str(path))
    backbone = Dinov2Backbone(model)
    if frozen:
        backbone.freeze()
    else:
        backbone.train()
    return backbone


def _register(variant: str) -> None:
    def factory(
        weights: str | os.PathLike[str] | None = None,
        pretrained_folder: str | os.PathLike[str] | None = None,
        frozen: bool = True,
        image_size: int = 224,
        num_layers: int | None = None,
    ) -> Dinov2Backbone:
        return build_dinov2(
            variant,
            weights=weights,
            pretrained_folder=pretrained_folder,
            frozen=frozen,
            image_size=image_size,
            num_layers=num_layers,
        )

    factory.__name__ = variant
    factory.__doc__ = f"{variant}: frozen by default, 224 px -> 16x16 patch grid."
    BACKBONES.register(variant)(factory)


for _variant in DINOV2_VARIANTS:
    _register(_variant)
