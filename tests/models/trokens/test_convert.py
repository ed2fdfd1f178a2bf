"""Reference Trokens checkpoints: names (trokens.md §3), strict loading, and the reference equations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fsar.errors import WeightsError
from fsar.models.trokens import Trokens, convert_reference_state_dict

from ..tats.helpers import make_inputs
from ..tats.test_convert import CLASSES, HEADS, D, G, N, T, reference_forward, reference_state_dict

BINS = 8


def reference_trokens_state_dict(seed: int = 0) -> dict:
    """Random parameters under the reference Trokens names: TATs' with ``mlp.0.``, plus both motion modules."""
    sd = {k.replace(".mlp.fc", ".mlp.0.fc"): v for k, v in reference_state_dict(seed).items()}
    gen = torch.Generator().manual_seed(seed + 1)
    for module, width in (("hod_motion_module", BINS), ("cross_motion_module", 2 * N)):
        sd[f"{module}.fc2.c_fc.weight"] = torch.randn(4 * D, width, generator=gen) / math.sqrt(width)
        sd[f"{module}.fc2.c_fc.bias"] = 0.1 * torch.randn(4 * D, generator=gen)
        sd[f"{module}.fc2.c_proj.weight"] = torch.randn(D, 4 * D, generator=gen) / math.sqrt(4 * D)
        sd[f"{module}.fc2.c_proj.bias"] = 0.1 * torch.randn(D, generator=gen)
        sd[f"{module}.ln2.weight"] = 1 + 0.2 * torch.randn(D, generator=gen)
        sd[f"{module}.ln2.bias"] = 0.2 * torch.randn(D, generator=gen)
    return sd


def reference_motion(sd: dict, module: str, x: torch.Tensor) -> torch.Tensor:
    h = x @ sd[f"{module}.fc2.c_fc.weight"].T + sd[f"{module}.fc2.c_fc.bias"]
    h = h * torch.sigmoid(1.702 * h)
    h = h @ sd[f"{module}.fc2.c_proj.weight"].T + sd[f"{module}.fc2.c_proj.bias"]
    return F.layer_norm(h, (D,), sd[f"{module}.ln2.weight"], sd[f"{module}.ln2.bias"], eps=1e-5)


def reference_hod(tracks: torch.Tensor) -> torch.Tensor:
    """Loop-based HoD with the inverted weights (trokens.md §1), ``[B, T, N, 2]`` -> ``[B, T, N, BINS]``."""
    b, t, n, _ = tracks.shape
    out = torch.zeros(b, t, n, BINS)
    for i in range(b):
        for f in range(1, t):
            for k in range(n):
                du, dv = (tracks[i, f, k] - tracks[i, f - 1, k]).tolist()
                s = BINS * (math.atan2(dv, du) / math.pi + 1) / 2
                lo = math.floor(s)
                out[i, f, k, lo % BINS] += math.hypot(du, dv) * (s - lo)
                out[i, f, k, (lo + 1) % BINS] += math.hypot(du, dv) * (1 - (s - lo))
    return out


def build() -> Trokens:
    return Trokens(
        feat_dim=D,
        num_frames=T,
        num_points=N,
        num_classes=CLASSES,
        num_heads=HEADS,
        grid_size=G,
        num_bins=BINS,
    ).eval()


def test_reference_checkpoint_loads_strictly_and_reproduces_the_reference_equations():
    sd = reference_trokens_state_dict()
    checkpoint = {"epoch": 50, "model_state": {f"module.{k}": v for k, v in sd.items()}}
    converted = convert_reference_state_dict(checkpoint)
    assert not any(k.startswith("dino.") for k in converted) and "spatial_pos_embed" not in converted
    model = build()
    model.load_state_dict(converted, strict=True)
    assert torch.equal(model.blocks[0].mlp.fc1.weight, sd["blocks.0.mlp.0.fc1.weight"])
    assert torch.equal(model.hod_embed.fc1.weight, sd["hod_motion_module.fc2.c_fc.weight"])
    assert torch.equal(model.rel_embed.norm.bias, sd["cross_motion_module.ln2.bias"])

    features, tracks, mask = make_inputs(seed=9, t=T, g=G, n=N, d=D)
    vis = torch.rand(tracks.shape[:3], generator=torch.Generator().manual_seed(4)) > 0.3
    rel = torch.zeros(*tracks.shape[:3], 2 * N)
    for m in range(N):
        for k in range(N):
            pair = (vis[:, :, m] & vis[:, :, k]).unsqueeze(-1).float()
            rel[:, :, m, 2 * k : 2 * k + 2] = (tracks[:, :, m] - tracks[:, :, k]) * pair
    added = reference_motion(sd, "hod_motion_module", reference_hod(tracks))
    added = added + reference_motion(sd, "cross_motion_module", rel)
    tats_names = {k.replace(".mlp.0.fc", ".mlp.fc"): v for k, v in sd.items()}
    with torch.no_grad():
        out = model(features, tracks, mask, vis)
        ref_logits, ref_tokens = reference_forward(tats_names, features, tracks, mask, added=added)
    assert (out.cls_logits - ref_logits).abs().max() <= 1e-4
    assert (out.tokens - ref_tokens).abs().max() <= 1e-4
    assert ref_logits.abs().max() > 0.1


def test_subsets_and_gradient_dicts_convert_key_by_key():
    sd = reference_trokens_state_dict()
    part = {k: v for k, v in sd.items() if k.startswith("cross_motion_module.")}
    assert set(convert_reference_state_dict(part)) == {
        f"rel_embed.{layer}.{kind}" for layer in ("fc1", "fc2", "norm") for kind in ("weight", "bias")
    }
    grads = {"module.blocks.0.mlp.0.fc2.bias": torch.ones(D), "module.time_pos_embed": torch.ones(1, T, D)}
    assert set(convert_reference_state_dict(grads)) == {"blocks.0.mlp.fc2.bias", "time_pos"}


def test_unknown_or_tats_named_keys_are_refused():
    sd = reference_trokens_state_dict()
    with pytest.raises(WeightsError, match=r"blocks\.0\.mlp\.fc1\.weight"):
        convert_reference_state_dict({**sd, "blocks.0.mlp.fc1.weight": torch.zeros(1)})
    with pytest.raises(WeightsError, match="hod_motion_module.fc1.weight"):
        convert_reference_state_dict({**sd, "hod_motion_module.fc1.weight": torch.zeros(1)})
    with pytest.raises(WeightsError, match=r"blocks\.0\.mlp\.1\.fc1\.weight"):
        convert_reference_state_dict({**sd, "blocks.0.mlp.1.fc1.weight": torch.zeros(1)})
    with pytest.raises(WeightsError, match="no Trokens parameters"):
        convert_reference_state_dict({"dino.norm.weight": torch.ones(2), "spatial_pos_embed": torch.ones(1)})


def test_strict_loading_catches_a_different_number_of_points():
    sd = reference_trokens_state_dict()
    model = Trokens(
        feat_dim=D,
        num_frames=T,
        num_points=N + 2,
        num_classes=CLASSES,
        num_heads=HEADS,
        grid_size=G,
        num_bins=BINS,
    )
    with pytest.raises(RuntimeError, match="rel_embed.fc1.weight"):
        model.load_state_dict(convert_reference_state_dict(sd), strict=True)
    no_hod = Trokens(
        feat_dim=D,
        num_frames=T,
        num_points=N,
        num_classes=CLASSES,
        num_heads=HEADS,
        grid_size=G,
        use_hod=False,
    )
    with pytest.raises(RuntimeError, match="Unexpected key"):
        no_hod.load_state_dict(convert_reference_state_dict(sd), strict=True)
