"""CLIP encoders (Radford et al., "Learning Transferable Visual Models From Natural Language Supervision",
ICML 2021) from local OpenAI checkpoints: the image encoders of CLIP-FSAR (Wang et al., IJCV 2023) and the
text encoder for its class-name prompts.

- ``clip_rn50``: OpenAI's ModifiedResNet (:class:`ModifiedResNet`, written here from the published architecture:
  a 3-conv stem with a 2x2 average pool, bottlenecks that downsample with an average pool before the last 1x1
  conv and in the shortcut, and a QKV attention pool over the 7x7 map plus its mean token). Frames
  ``[B, 3, 224, 224]`` -> the attention-pool output ``[B, 1024, 1, 1]``.
- ``clip_vit_b16``: transformers' ``CLIPVisionModelWithProjection`` (QuickGELU): ``ln_post(CLS) @ proj``,
  ``[B, 512, 1, 1]``.
- :func:`load_clip_text`: transformers' ``CLIPTextModelWithProjection``; ``encode_tokens`` takes the feature at
  the end-of-text token (the largest id, as OpenAI's ``argmax``) after ``ln_final``, times ``text_projection``.

Outputs are not L2-normalised; inputs use CLIP's normalisation (``default_normalization = "clip"``).

Weights: an OpenAI ``.pt`` (a TorchScript archive as published, or a plain state dict), whose fp16 values are read
as float32 (CLIP-FSAR runs CLIP in float32) and whose extra integer entries ``input_resolution``,
``context_length`` and ``vocab_size`` are ignored; or, for ViT-B/16 and the text encoder, a local Hugging Face
CLIP folder (``save_pretrained``). Widths and depths are read from the weights. Nothing is downloaded; the
tokenizer is a local folder with CLIP's ``vocab.json`` and ``merges.txt``.

OpenAI -> transformers key map (``i`` a block): ``conv1`` -> ``embeddings.patch_embedding``,
``class_embedding`` -> ``embeddings.class_embedding``, ``positional_embedding`` -> ``embeddings.position_embedding
.weight``, ``ln_pre`` -> ``pre_layrnorm``, ``transformer.resblocks.i.attn.in_proj_{weight,bias}`` -> ``encoder
.layers.i.self_attn.{q,k,v}_proj`` (``chunk(3)`` in q, k, v order), ``attn.out_proj`` -> ``self_attn.out_proj``,
``ln_1``/``ln_2`` -> ``layer_norm1``/``layer_norm2``, ``mlp.c_fc``/``mlp.c_proj`` -> ``mlp.fc1``/``mlp.fc2``,
``ln_post`` -> ``post_layernorm``, ``proj`` -> ``visual_projection.weight`` (transposed); text: ``token_embedding``
-> ``embeddings.token_embedding``, ``ln_final`` -> ``final_layer_norm``, ``text_projection`` (transposed).
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fsar.backbones.freezing import FreezableBackbone
from fsar.backbones.registry import BACKBONES
from fsar.backbones.weights import (
    load_state_dict_strictly,
    raise_unknown_keys,
    resolve_weights_path,
)
from fsar.errors import WeightsError

# Integer entries of OpenAI's checkpoints that are not weights.
EXTRA_INT_KEYS = ("input_resolution", "context_length", "vocab_size")
CONTEXT_LENGTH = 77
TOKENIZER_FILES = ("vocab.json", "merges.txt")
# The published architectures (random initialisation builds these).
RN50 = {"layers": (3, 4, 6, 3), "width": 64, "output_dim": 1024, "input_resolution": 224}
VIT_B16 = {"width": 768, "layers": 12, "patch_size": 16, "input_resolution": 224, "output_dim": 512}


# -- reading OpenAI checkpoints --------------------------------------------------------------------------------
def _is_torchscript_archive(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in archive.namelist())


def read_openai_clip_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """An OpenAI CLIP ``.pt`` (TorchScript archive or plain state dict) as a float32 ``{name: tensor}`` dict,
    without the extra integer entries (``input_resolution``, ``context_length``, ``vocab_size``)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"CLIP weights file not found: {path}; pass an existing OpenAI .pt file")
    try:
        if _is_torchscript_archive(path):
            with (
                warnings.catch_warnings()
            ):  # OpenAI ships TorchScript; torch 2.x warns that jit is deprecated
                warnings.simplefilter("ignore", DeprecationWarning)
                obj: Any = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file and what to do
        raise WeightsError(
            f"{path}: cannot read the CLIP checkpoint ({type(exc).__name__}: {exc}). Expected OpenAI's .pt "
            "(a TorchScript archive) or a plain state dict saved with torch.save."
        ) from exc
    while isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{path}: expected a CLIP state dict (a mapping of names to tensors)")
    out: dict[str, Tensor] = {}
    bad = []
    for key, value in obj.items():
        key = key[len("module.") :] if key.startswith("module.") else key
        if key in EXTRA_INT_KEYS:
            continue
        if not isinstance(value, Tensor):
            bad.append(key)
            continue
        out[key] = value.float() if value.is_floating_point() else value
    if bad:
        raise WeightsError(f"{path}: entries that are not tensors: {bad[:10]}; expected a CLIP state dict")
    return out


def _check_has(sd: Mapping[str, Tensor], keys: Sequence[str], what: str, source: str) -> None:
    missing = [k for k in keys if k not in sd]
    if missing:
        raise WeightsError(
            f"{source}: not {what} (missing {missing}); pass the matching OpenAI CLIP checkpoint"
        )


def _count_blocks(sd: Mapping[str, Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.")
    ids = {int(m.group(1)) for k in sd if (m := pattern.match(k))}
    if ids != set(range(len(ids))):
        raise WeightsError(f"blocks under {prefix!r} are not numbered 0..n-1: {sorted(ids)}")
    return len(ids)


# -- ModifiedResNet (RN50) --------------------------------------------------------------------------------------
class CLIPBottleneck(nn.Module):
    """OpenAI's anti-aliased bottleneck: 1x1 -> 3x3 -> avgpool(stride) -> 1x1 (x4); shortcut avgpool -> 1x1 -> BN."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu3 = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride > 1 or inplanes != planes * self.expansion:
            self.downsample = nn.Sequential(
                OrderedDict(
                    [
                        ("-1", nn.AvgPool2d(stride)),
                        ("0", nn.Conv2d(inplanes, planes * self.expansion, 1, stride=1, bias=False)),
                        ("1", nn.BatchNorm2d(planes * self.expansion)),
                    ]
                )
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu3(out + identity)


class AttentionPool2d(nn.Module):
    """QKV attention of the map's mean token over [mean; the H*W tokens], with learned positions; ``c_proj`` out."""

    def __init__(self, spatial_dim: int, embed_dim: int, num_heads: int, output_dim: int) -> None:
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(spatial_dim**2 + 1, embed_dim) / embed_dim**0.5)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim)
        self.num_heads = num_heads
        self.spatial_dim = spatial_dim

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        if h * w != self.spatial_dim**2:
            raise ValueError(
                f"the CLIP attention pool was trained on a {self.spatial_dim}x{self.spatial_dim} map; got {h}x{w} "
                f"(feed {self.spatial_dim * 32}x{self.spatial_dim * 32} frames)"
            )
        tokens = x.flatten(2).transpose(1, 2)  # [N, HW, C]
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1) + self.positional_embedding
        heads, dh = self.num_heads, c // self.num_heads
        q = self.q_proj(tokens[:, :1]).reshape(n, 1, heads, dh).transpose(1, 2)
        k = self.k_proj(tokens).reshape(n, -1, heads, dh).transpose(1, 2)
        v = self.v_proj(tokens).reshape(n, -1, heads, dh).transpose(1, 2)
        attn = torch.softmax((q * dh**-0.5) @ k.transpose(-1, -2), dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(n, c)
        return self.c_proj(out)


class ModifiedResNet(nn.Module):
    """OpenAI CLIP's ResNet image encoder; parameter names as in OpenAI's ``visual.*`` (without the prefix)."""

    def __init__(
        self,
        layers: Sequence[int] = RN50["layers"],
        output_dim: int = RN50["output_dim"],
        heads: int | None = None,
        input_resolution: int = RN50["input_resolution"],
        width: int = RN50["width"],
    ) -> None:
        super().__init__()
        if input_resolution % 32:
            raise ValueError(f"input_resolution must be a multiple of 32; got {input_resolution}")
        self.input_resolution = input_resolution
        self.output_dim = output_dim
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(2)
        inplanes = width
        stages = []
        for i, blocks in enumerate(layers):
            planes, stride = width * 2**i, 1 if i == 0 else 2
            stage = [CLIPBottleneck(inplanes, planes, stride)]
            inplanes = planes * CLIPBottleneck.expansion
            stage += [CLIPBottleneck(inplanes, planes) for _ in range(1, blocks)]
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        embed_dim = width * 32
        self.attnpool = AttentionPool2d(
            input_resolution // 32, embed_dim, heads if heads is not None else embed_dim // 64, output_dim
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.avgpool(self.relu3(self.bn3(self.conv3(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.attnpool(x)


def modified_resnet_config(sd: Mapping[str, Tensor], source: str = "CLIP state dict") -> dict[str, Any]:
    """ModifiedResNet arguments read from OpenAI ``visual.*`` keys (as OpenAI's ``build_model`` does)."""
    _check_has(
        sd,
        [
            "visual.layer1.0.conv1.weight",
            "visual.attnpool.positional_embedding",
            "visual.attnpool.c_proj.weight",
        ],
        "a CLIP ResNet checkpoint",
        source,
    )
    layers = tuple(_count_blocks(sd, f"visual.layer{b}.") for b in (1, 2, 3, 4))
    width = int(sd["visual.layer1.0.conv1.weight"].shape[0])
    side = math.isqrt(int(sd["visual.attnpool.positional_embedding"].shape[0]) - 1)
    return {
        "layers": layers,
        "width": width,
        "output_dim": int(sd["visual.attnpool.c_proj.weight"].shape[0]),
        "heads": width * 32 // 64,
        "input_resolution": side * 32,
    }


def convert_openai_visual_resnet(
    sd: Mapping[str, Tensor], source: str = "CLIP state dict"
) -> dict[str, Tensor]:
    """``visual.*`` of an OpenAI RN checkpoint -> :class:`ModifiedResNet` keys (the prefix removed); text keys
    are left out, anything else is an error."""
    out, unknown = {}, []
    for key, value in sd.items():
        if key.startswith("visual."):
            out[key[len("visual.") :]] = value
        elif not _is_text_key(key):
            unknown.append(key)
    raise_unknown_keys(
        source, unknown, "the keys of an OpenAI CLIP checkpoint (visual.*, text encoder, logit_scale)"
    )
    return out


# -- transformers' ViT and text transformer -------------------------------------------------------------------
_TEXT_TOP = (
    "token_embedding.",
    "positional_embedding",
    "transformer.",
    "ln_final.",
    "text_projection",
    "logit_scale",
)


def _is_text_key(key: str) -> bool:
    return key.startswith(_TEXT_TOP)


_BLOCK_SUFFIX = {
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
}


def _convert_block(rest: str, value: Tensor, prefix: str, out: dict[str, Tensor]) -> bool:
    if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
        kind = "weight" if rest.endswith("weight") else "bias"
        for name, part in zip("qkv", value.chunk(3, dim=0)):
            out[f"{prefix}self_attn.{name}_proj.{kind}"] = part
        return True
    if rest in _BLOCK_SUFFIX:
        out[prefix + _BLOCK_SUFFIX[rest]] = value
        return True
    return False


_RESBLOCK = re.compile(r"^transformer\.resblocks\.(\d+)\.(.+)$")


def convert_openai_visual_vit(sd: Mapping[str, Tensor], source: str = "CLIP state dict") -> dict[str, Tensor]:
    """``visual.*`` of an OpenAI ViT checkpoint -> transformers ``CLIPVisionModelWithProjection`` keys."""
    top = {
        "conv1.weight": "vision_model.embeddings.patch_embedding.weight",
        "class_embedding": "vision_model.embeddings.class_embedding",
        "positional_embedding": "vision_model.embeddings.position_embedding.weight",
        "ln_pre.weight": "vision_model.pre_layrnorm.weight",
        "ln_pre.bias": "vision_model.pre_layrnorm.bias",
        "ln_post.weight": "vision_model.post_layernorm.weight",
        "ln_post.bias": "vision_model.post_layernorm.bias",
    }
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in sd.items():
        if not key.startswith("visual."):
            if not _is_text_key(key):
                unknown.append(key)
            continue
        rest = key[len("visual.") :]
        if rest in top:
            out[top[rest]] = value
        elif rest == "proj":
            out["visual_projection.weight"] = value.t().contiguous()
        elif (m := _RESBLOCK.match(rest)) and _convert_block(
            m.group(2), value, f"vision_model.encoder.layers.{m.group(1)}.", out
        ):
            pass
        else:
            unknown.append(key)
    raise_unknown_keys(source, unknown, "the keys of an OpenAI CLIP ViT checkpoint")
    return out


def convert_openai_text(sd: Mapping[str, Tensor], source: str = "CLIP state dict") -> dict[str, Tensor]:
    """The text encoder of an OpenAI checkpoint -> transformers ``CLIPTextModelWithProjection`` keys
    (``visual.*`` and ``logit_scale`` left out)."""
    top = {
        "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "positional_embedding": "text_model.embeddings.position_embedding.weight",
        "ln_final.weight": "text_model.final_layer_norm.weight",
        "ln_final.bias": "text_model.final_layer_norm.bias",
    }
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in sd.items():
        if key.startswith("visual.") or key == "logit_scale":
            continue
        if key in top:
            out[top[key]] = value
        elif key == "text_projection":
            out["text_projection.weight"] = value.t().contiguous()
        elif (m := _RESBLOCK.match(key)) and _convert_block(
            m.group(2), value, f"text_model.encoder.layers.{m.group(1)}.", out
        ):
            pass
        else:
            unknown.append(key)
    raise_unknown_keys(source, unknown, "the keys of an OpenAI CLIP checkpoint")
    return out


def _vision_config(width: int, layers: int, patch_size: int, input_resolution: int, output_dim: int) -> Any:
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=layers,
        num_attention_heads=max(1, width // 64),
        image_size=input_resolution,
        patch_size=patch_size,
        projection_dim=output_dim,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )


def vit_config_from_state_dict(sd: Mapping[str, Tensor], source: str = "CLIP state dict") -> dict[str, int]:
    _check_has(
        sd,
        ["visual.conv1.weight", "visual.positional_embedding", "visual.proj"],
        "a CLIP ViT checkpoint",
        source,
    )
    patch = int(sd["visual.conv1.weight"].shape[-1])
    grid = math.isqrt(int(sd["visual.positional_embedding"].shape[0]) - 1)
    return {
        "width": int(sd["visual.conv1.weight"].shape[0]),
        "layers": _count_blocks(sd, "visual.transformer.resblocks."),
        "patch_size": patch,
        "input_resolution": patch * grid,
        "output_dim": int(sd["visual.proj"].shape[1]),
    }


# -- the image backbones ----------------------------------------------------------------------------------------
class CLIPImageBackbone(FreezableBackbone):
    """Frames ``[B, 3, R, R]`` (CLIP-normalised) -> CLIP image embeddings ``[B, E, 1, 1]`` (not normalised)."""

    default_normalization = "clip"

    def __init__(self, encoder: nn.Module, out_channels: int, input_resolution: int, kind: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.out_channels = int(out_channels)
        self.input_resolution = int(input_resolution)
        self.kind = kind  # "resnet" (ModifiedResNet) or "vit" (transformers CLIPVisionModelWithProjection)

    def forward(self, frames: Tensor) -> Tensor:
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"CLIP backbone expects frames [N, 3, H, W]; got {tuple(frames.shape)}")
        r = self.input_resolution
        if tuple(frames.shape[-2:]) != (r, r):
            raise ValueError(f"this CLIP image encoder takes {r}x{r} frames; got {tuple(frames.shape[-2:])}")
        with self.grad_context():
            if self.kind == "vit":
                out = self.encoder(pixel_values=frames).image_embeds
            else:
                out = self.encoder(frames)
        return out[:, :, None, None]


def build_clip_rn50(weights=None, pretrained_folder=None, frozen: bool = False) -> CLIPImageBackbone:
    if weights is None:
        encoder = ModifiedResNet(
            **{k: RN50[k] for k in ("layers", "width", "output_dim", "input_resolution")}
        )
    else:
        path = resolve_weights_path(weights, pretrained_folder)
        if path.is_dir():
            raise WeightsError(
                f"{path}: clip_rn50 needs OpenAI's RN50.pt file (Hugging Face has no CLIP ResNet format)"
            )
        sd = read_openai_clip_state_dict(path)
        encoder = ModifiedResNet(**modified_resnet_config(sd, str(path)))
        load_state_dict_strictly(encoder, convert_openai_visual_resnet(sd, str(path)), source=str(path))
    backbone = CLIPImageBackbone(encoder, encoder.output_dim, encoder.input_resolution, "resnet")
    return backbone.freeze() if frozen else backbone.train()


def _load_hf_part(folder: Path, part: str) -> Any:
    """``CLIP{Vision,Text}ModelWithProjection`` from a local Hugging Face folder (a whole ``CLIPModel`` or just
    that part). Weights the folder lacks are an error (transformers would initialise them randomly)."""
    from transformers import (
        CLIPConfig,
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    if not (folder / "config.json").is_file():
        raise WeightsError(
            f"{folder}: a CLIP weights folder must be a Hugging Face folder with config.json (save_pretrained); "
            "for OpenAI's checkpoint pass the .pt file itself"
        )
    model_cls = CLIPVisionModelWithProjection if part == "vision" else CLIPTextModelWithProjection
    part_cls = CLIPVisionConfig if part == "vision" else CLIPTextConfig
    raw = json.loads((folder / "config.json").read_text())
    if raw.get("model_type") == "clip":
        whole = CLIPConfig.from_pretrained(str(folder), local_files_only=True)
        config = getattr(whole, f"{part}_config")
        config.projection_dim = whole.projection_dim  # the projection width is set on the whole model
    else:
        config = part_cls.from_pretrained(str(folder), local_files_only=True)
    model, info = model_cls.from_pretrained(
        str(folder), config=config, local_files_only=True, output_loading_info=True
    )
    missing = sorted(info.get("missing_keys", []))
    mismatched = info.get("mismatched_keys", [])
    if missing or mismatched:
        raise WeightsError(
            f"{folder}: the folder does not hold the CLIP {part} encoder's weights (missing {missing[:10]}, "
            f"mismatched {list(mismatched)[:10]}); save a CLIPModel with save_pretrained"
        )
    return model


def build_clip_vit_b16(weights=None, pretrained_folder=None, frozen: bool = False) -> CLIPImageBackbone:
    from transformers import CLIPVisionModelWithProjection

    if weights is None:
        encoder = CLIPVisionModelWithProjection(_vision_config(**VIT_B16))
    else:
        path = resolve_weights_path(weights, pretrained_folder)
        if path.is_dir():
            encoder = _load_hf_part(path, "vision")
        else:
            sd = read_openai_clip_state_dict(path)
            encoder = CLIPVisionModelWithProjection(
                _vision_config(**vit_config_from_state_dict(sd, str(path)))
            )
            load_state_dict_strictly(encoder, convert_openai_visual_vit(sd, str(path)), source=str(path))
    cfg = encoder.config
    backbone = CLIPImageBackbone(encoder, cfg.projection_dim, cfg.image_size, "vit")
    return backbone.freeze() if frozen else backbone.train()


@BACKBONES.register("clip_rn50")
def clip_rn50(
    weights: str | os.PathLike[str] | None = None,
    pretrained_folder: str | os.PathLike[str] | None = None,
    frozen: bool = False,
) -> CLIPImageBackbone:
    """CLIP RN50 image encoder -> ``[B, 1024, 1, 1]``; trainable by default (CLIP-FSAR fine-tunes it)."""
    return build_clip_rn50(weights, pretrained_folder, frozen)


@BACKBONES.register("clip_vit_b16")
def clip_vit_b16(
    weights: str | os.PathLike[str] | None = None,
    pretrained_folder: str | os.PathLike[str] | None = None,
    frozen: bool = False,
) -> CLIPImageBackbone:
    """CLIP ViT-B/16 image encoder -> ``[B, 512, 1, 1]``; trainable by default."""
    return build_clip_vit_b16(weights, pretrained_folder, frozen)


# -- the text encoder -------------------------------------------------------------------------------------------
class TokenizerNotFoundError(WeightsError, FileNotFoundError):
    """No local CLIP tokenizer folder (``vocab.json`` + ``merges.txt``)."""


def load_clip_tokenizer(folder: str | os.PathLike[str] | None) -> Any:
    """transformers' ``CLIPTokenizer`` from a local folder holding ``vocab.json`` and ``merges.txt``."""
    hint = (
        "fsar never downloads it: copy CLIP's tokenizer files (vocab.json and merges.txt, e.g. from the "
        "Hugging Face folder openai/clip-vit-base-patch16, or OpenAI's bpe_simple_vocab_16e6 converted to "
        "them) to a local folder and pass it as tokenizer_folder"
    )
    if folder is None:
        raise TokenizerNotFoundError(f"no CLIP tokenizer folder was given; {hint}")
    path = Path(folder).expanduser()
    missing = [name for name in TOKENIZER_FILES if not (path / name).is_file()]
    if missing:
        raise TokenizerNotFoundError(f"CLIP tokenizer folder {path}: {', '.join(missing)} not found; {hint}")
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(path), local_files_only=True)


class CLIPTextEncoder(nn.Module):
    """CLIP's text transformer: ``encode_tokens(ids [N, L]) -> [N, E]`` and ``encode_names(names) -> [C, E]``."""

    def __init__(self, model: Any, tokenizer_folder: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.model = model  # transformers CLIPTextModelWithProjection
        self.context_length = int(model.config.max_position_embeddings)
        self.out_channels = int(model.config.projection_dim)
        self.tokenizer_folder = tokenizer_folder
        self._tokenizer: Any = None
        self._tokenizer_source: Any = None

    def encode_tokens(self, ids: Tensor) -> Tensor:
        """Token ids ``[N, L]`` (start, text, end-of-text, zero padding) -> ``[N, E]``: the final-norm feature at
        ``argmax(ids)`` (the end-of-text token has the largest id) times ``text_projection``; not normalised."""
        if ids.dim() != 2 or ids.shape[1] > self.context_length:
            raise ValueError(f"ids must be [N, <= {self.context_length}]; got {tuple(ids.shape)}")
        hidden = self.model.text_model(input_ids=ids).last_hidden_state  # after final_layer_norm
        eot = hidden[torch.arange(ids.shape[0], device=ids.device), ids.argmax(dim=-1)]
        return self.model.text_projection(eot)

    def tokenize(
        self, texts: Sequence[str], tokenizer_folder: str | os.PathLike[str] | None = None
    ) -> Tensor:
        """OpenAI's ``tokenize``: start + BPE tokens + end-of-text, zero-padded to the context length; too long a
        text is an error (as OpenAI's ``truncate=False``)."""
        folder = tokenizer_folder if tokenizer_folder is not None else self.tokenizer_folder
        if self._tokenizer is None or self._tokenizer_source != folder:
            self._tokenizer, self._tokenizer_source = load_clip_tokenizer(folder), folder
        rows = []
        for text in texts:
            ids = list(self._tokenizer(text)["input_ids"])
            if len(ids) > self.context_length:
                raise ValueError(f"text {text!r} is {len(ids)} tokens long; CLIP takes {self.context_length}")
            rows.append(ids + [0] * (self.context_length - len(ids)))
        return torch.tensor(rows, dtype=torch.long)

    @torch.no_grad()
    def encode_names(
        self,
        names: Sequence[str],
        prompt: str = "a photo of {}",
        tokenizer_folder: str | os.PathLike[str] | None = None,
    ) -> Tensor:
        """``prompt.format(name)`` for each name (used verbatim, underscores included) -> ``[C, E]``."""
        if "{}" not in prompt:
            raise ValueError(f"prompt must contain '{{}}' where the class name goes; got {prompt!r}")
        ids = self.tokenize([prompt.format(n) for n in names], tokenizer_folder)
        device = self.model.text_projection.weight.device
        return self.encode_tokens(ids.to(device))


def _text_config(sd: Mapping[str, Tensor], source: str) -> Any:
    from transformers import CLIPTextConfig

    _check_has(
        sd,
        ["token_embedding.weight", "positional_embedding", "ln_final.weight", "text_projection"],
        "a CLIP checkpoint with a text encoder",
        source,
    )
    width = int(sd["ln_final.weight"].shape[0])
    vocab = int(sd["token_embedding.weight"].shape[0])
    return CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=_count_blocks(sd, "transformer.resblocks."),
        num_attention_heads=max(1, width // 64),
        max_position_embeddings=int(sd["positional_embedding"].shape[0]),
        projection_dim=int(sd["text_projection"].shape[1]),
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        bos_token_id=vocab - 2,
        eos_token_id=vocab - 1,
        pad_token_id=0,
    )


def load_clip_text(
    path: str | os.PathLike[str], tokenizer_folder: str | os.PathLike[str] | None = None
) -> CLIPTextEncoder:
    """CLIP's text encoder from an OpenAI ``.pt`` or a local Hugging Face CLIP folder, in eval mode and frozen.

    ``tokenizer_folder`` (``vocab.json`` + ``merges.txt``) is used by ``encode_names``; a Hugging Face folder that
    holds those files is its own tokenizer folder.
    """
    from transformers import CLIPTextModelWithProjection

    weights = resolve_weights_path(path)
    if weights.is_dir():
        model = _load_hf_part(weights, "text")
        if tokenizer_folder is None and all((weights / n).is_file() for n in TOKENIZER_FILES):
            tokenizer_folder = weights
    else:
        sd = read_openai_clip_state_dict(weights)
        model = CLIPTextModelWithProjection(_text_config(sd, str(weights)))
        load_state_dict_strictly(model, convert_openai_text(sd, str(weights)), source=str(weights))
    encoder = CLIPTextEncoder(model, tokenizer_folder)
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder.eval()


__all__ = [
    "AttentionPool2d",
    "CLIPImageBackbone",
    "CLIPTextEncoder",
    "ModifiedResNet",
    "TokenizerNotFoundError",
    "convert_openai_text",
    "convert_openai_visual_resnet",
    "convert_openai_visual_vit",
    "load_clip_text",
    "load_clip_tokenizer",
    "read_openai_clip_state_dict",
]
