"""Reference checkpoint conversion, checked against an independent loop-based forward written from tats.md §3-4.

The loop-based forward below uses the reference's parameter names and computes every (video, point) and
(video, frame) attention separately, with explicit -inf key masking; it shares no code with fsar's model.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fsar.errors import WeightsError
from fsar.models.tats import TATs, convert_reference_state_dict

from .helpers import make_inputs

D, T, G, N, HEADS, CLASSES = 32, 4, 4, 6, 4, 5


def reference_state_dict(seed: int = 0, d: int = D, t: int = T, g: int = G, classes: int = CLASSES) -> dict:
    """Random parameters under the reference (``Pointformer``) names and shapes, plus dino.* and the dead key."""
    gen = torch.Generator().manual_seed(seed)
    shapes = {
        "cls_token": (1, 1, d),
        "space_pos_embed": (1, g * g, d),
        "time_pos_embed": (1, t, d),
        "spatial_pos_embed": (1, d, g, g),
        "norm.weight": (d,),
        "norm.bias": (d,),
        "pre_logits.fc.weight": (d, d),
        "pre_logits.fc.bias": (d,),
        "head.weight": (classes, d),
        "head.bias": (classes,),
        "dino.patch_embed.proj.weight": (d, 3, 14, 14),
        "dino.norm.weight": (d,),
    }
    for norm in ("norm1", "temporal_norm1", "norm2"):
        shapes[f"blocks.0.{norm}.weight"] = (d,)
        shapes[f"blocks.0.{norm}.bias"] = (d,)
    for attn in ("attn", "temporal_attn"):
        shapes[f"blocks.0.{attn}.qkv.weight"] = (3 * d, d)
        shapes[f"blocks.0.{attn}.qkv.bias"] = (3 * d,)
        shapes[f"blocks.0.{attn}.proj.weight"] = (d, d)
        shapes[f"blocks.0.{attn}.proj.bias"] = (d,)
    shapes.update(
        {
            "blocks.0.temporal_fc.weight": (d, d),
            "blocks.0.temporal_fc.bias": (d,),
            "blocks.0.mlp.fc1.weight": (4 * d, d),
            "blocks.0.mlp.fc1.bias": (4 * d,),
            "blocks.0.mlp.fc2.weight": (d, 4 * d),
            "blocks.0.mlp.fc2.bias": (d,),
        }
    )
    sd = {}
    for key, shape in shapes.items():
        value = torch.randn(shape, generator=gen)
        if "norm" in key and key.endswith(".weight") and len(shape) == 1:
            value = 1 + 0.2 * value  # non-trivial LayerNorm affines
        elif len(shape) >= 2 and not key.endswith("pos_embed") and key != "cls_token":
            value = value / math.sqrt(shape[-1])
        else:
            value = 0.2 * value
        sd[key] = value
    return sd


def reference_forward(sd: dict, features, tracks, query_mask, heads: int = HEADS, added=None):
    """Loop-based forward of the reference equations (tats.md §3-4). Returns (cls_logits [B,C], tokens [B,T,N,D]).

    ``added [B, T, N, D]`` is added to the sampled tokens (Trokens' motion embeddings, trokens.md §3)."""
    b, t, g, _, d = features.shape
    n = tracks.shape[2]
    hd = d // heads

    def lin(name, x):
        return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]

    def ln(name, x):
        return F.layer_norm(x, (d,), sd[f"{name}.weight"], sd[f"{name}.bias"], eps=1e-6)

    def attention(name, x, keys):  # x [L, D], keys [L] bool
        qkv = lin(f"{name}.qkv", x).reshape(-1, 3, heads, hd).permute(1, 2, 0, 3)  # [3, H, L, hd]
        q, k, v = qkv[0], qkv[1], qkv[2]
        logits = (q @ k.transpose(-1, -2)) * hd**-0.5
        logits = logits.masked_fill(~keys.view(1, 1, -1), float("-inf"))
        out = (logits.softmax(-1) @ v).transpose(0, 1).reshape(-1, d)
        return lin(f"{name}.proj", out)

    grid = (
        features + sd["space_pos_embed"].reshape(1, 1, g, g, d) + sd["time_pos_embed"].reshape(1, t, 1, 1, d)
    )
    grid = grid.reshape(b * t, g, g, d).permute(0, 3, 1, 2)
    x = F.grid_sample(
        grid, tracks.reshape(b * t, 1, n, 2), mode="nearest", padding_mode="zeros", align_corners=True
    )
    x = x.reshape(b, t, d, n).permute(0, 3, 1, 2)  # [B, N, T, D]
    if added is not None:
        x = x + added.permute(0, 2, 1, 3)
    logits_all, tokens_all = [], []
    for vid in range(b):
        p, mask, c = x[vid], query_mask[vid].T, sd["cls_token"].reshape(d)  # [N,T,D], [N,T], [D]
        p1 = torch.stack(
            [
                p[i]
                + lin(
                    "blocks.0.temporal_fc",
                    attention("blocks.0.temporal_attn", ln("blocks.0.temporal_norm1", p[i]), mask[i]),
                )
                for i in range(n)
            ]
        )
        p2, cls_parts = p1.clone(), []
        for f in range(t):
            seq = torch.cat([c[None], p1[:, f]])
            keys = torch.cat([torch.tensor([True]), mask[:, f]])
            r = attention("blocks.0.attn", ln("blocks.0.norm1", seq), keys)
            cls_parts.append(r[0])
            p2[:, f] = p1[:, f] + r[1:]
        z = torch.cat([(c + torch.stack(cls_parts).mean(0))[None], p2.reshape(n * t, d)])
        z = z + lin("blocks.0.mlp.fc2", F.gelu(lin("blocks.0.mlp.fc1", ln("blocks.0.norm2", z))))
        z = ln("norm", z)
        logits_all.append(lin("head", torch.tanh(lin("pre_logits.fc", z[0]))))
        tokens_all.append(z[1:].reshape(n, t, d).transpose(0, 1))
    return torch.stack(logits_all), torch.stack(tokens_all)


def test_converted_checkpoint_loads_strictly_and_reproduces_the_reference_equations():
    sd = reference_state_dict()
    checkpoint = {
        "epoch": 50,
        "model_state": {f"module.{k}": v for k, v in sd.items()},
        "optimizer_state": {},
    }
    converted = convert_reference_state_dict(checkpoint)
    assert not any(k.startswith("dino.") for k in converted) and "spatial_pos_embed" not in converted
    model = TATs(feat_dim=D, num_frames=T, num_points=N, num_classes=CLASSES, num_heads=HEADS, grid_size=G)
    model.load_state_dict(converted, strict=True)
    block = model.blocks[0]
    assert torch.equal(block.spatial_norm.weight, sd["blocks.0.norm1.weight"])
    assert torch.equal(block.mlp_norm.bias, sd["blocks.0.norm2.bias"])
    assert torch.equal(block.spatial_attn.qkv.weight, sd["blocks.0.attn.qkv.weight"])
    assert torch.equal(model.pre_logits.weight, sd["pre_logits.fc.weight"])

    features, tracks, mask = make_inputs(seed=9, t=T, g=G, n=N, d=D)
    with torch.no_grad():
        out = model.eval()(features, tracks, mask)
        ref_logits, ref_tokens = reference_forward(sd, features, tracks, mask)
    assert (out.cls_logits - ref_logits).abs().max() <= 1e-5
    assert (out.tokens - ref_tokens).abs().max() <= 1e-5
    assert ref_logits.abs().max() > 0.1  # a non-trivial comparison


def test_plain_unprefixed_state_dict_converts_too():
    sd = reference_state_dict(seed=1)
    model = TATs(feat_dim=D, num_frames=T, num_points=N, num_classes=CLASSES, num_heads=HEADS, grid_size=G)
    model.load_state_dict(convert_reference_state_dict(sd), strict=True)
    assert torch.equal(model.space_pos, sd["space_pos_embed"])


def test_unknown_keys_raise_naming_the_key():
    sd = reference_state_dict()
    sd["blocks.0.attn.relative_bias"] = torch.zeros(3)
    with pytest.raises(WeightsError, match="blocks.0.attn.relative_bias"):
        convert_reference_state_dict(sd)
    with pytest.raises(WeightsError, match="not a tensor"):
        convert_reference_state_dict({"cls_token": [1, 2]})
    with pytest.raises(WeightsError, match="no TATs parameters"):
        convert_reference_state_dict({"dino.norm.weight": torch.ones(2)})


def test_shape_mismatch_is_caught_by_strict_loading():
    sd = reference_state_dict(t=8)  # trained with 8 frames, model built for 4
    model = TATs(feat_dim=D, num_frames=T, num_points=N, num_classes=CLASSES, num_heads=HEADS, grid_size=G)
    with pytest.raises(RuntimeError, match="time_pos"):
        model.load_state_dict(convert_reference_state_dict(sd), strict=True)
