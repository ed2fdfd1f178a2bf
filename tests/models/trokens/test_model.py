"""The Trokens network (trokens.md section 3) on top of TATs: embeddings, NaN rules, gradients, errors."""

from __future__ import annotations

import pytest
import torch

from fsar.models.tats import TATs, TATsOutput
from fsar.models.trokens import Trokens, hod_features, relative_motion_features

from ..tats.helpers import make_inputs

B, T, G, N, D, HEADS, CLASSES = 2, 4, 4, 6, 32, 4, 5


def build(**overrides) -> Trokens:
    kwargs = dict(feat_dim=D, num_frames=T, num_points=N, num_classes=CLASSES, num_heads=HEADS, grid_size=G)
    kwargs.update(overrides)
    return Trokens(**kwargs).eval()


def inputs(seed: int = 0):
    features, tracks, mask = make_inputs(seed=seed, b=B, t=T, g=G, n=N, d=D)
    vis = torch.rand(B, T, N, generator=torch.Generator().manual_seed(seed + 100)) > 0.25
    return features, tracks, mask, vis


def test_defaults_and_parameter_count_match_the_reference():
    model = Trokens(device="meta")
    assert (model.feat_dim, model.num_frames, model.num_points, model.num_classes, model.num_bins) == (
        768,
        8,
        256,
        64,
        32,
    )
    count = sum(p.numel() for p in model.parameters())
    # trokens.md §3: 17,484,352 with the reference's dead spatial_pos_embed (196,608), which fsar does not create
    assert count == 17_484_352 - 196_608
    assert model.hod_embed.norm.eps == 1e-5 and model.blocks[0].mlp_norm.eps == 1e-6
    assert model.hod_embed.fc1.weight.shape == (4 * 768, 32) and model.rel_embed.fc1.weight.shape == (
        3072,
        512,
    )


def test_forward_is_tats_plus_the_motion_embeddings():
    features, tracks, mask, vis = inputs()
    model = build()
    out = model(features, tracks, mask, vis)
    assert isinstance(out, TATsOutput)
    assert out.cls_logits.shape == (B, CLASSES) and out.tokens.shape == (B, T, N, D)
    hod_emb, rel_emb = model.motion_embeddings(tracks, vis)
    assert hod_emb.shape == rel_emb.shape == (B, T, N, D)
    assert torch.allclose(hod_emb, model.hod_embed(hod_features(tracks)))
    assert torch.allclose(rel_emb, model.rel_embed(relative_motion_features(tracks, vis)))
    # the same computation through TATs' public pieces
    tokens = model.embed(features, tracks) + hod_emb + rel_emb
    cls, expected = model.transform(tokens, mask)
    assert torch.allclose(out.tokens, expected, atol=1e-6)
    assert torch.allclose(out.cls_logits, model.classify(cls), atol=1e-6)
    # a given hod= is used instead of the computed one
    assert torch.allclose(model(features, tracks, mask, vis, hod=hod_features(tracks)).tokens, out.tokens)
    other = model(features, tracks, mask, vis, hod=torch.ones(B, T, N, 32))
    assert not torch.allclose(other.tokens, out.tokens)


def test_motion_embedding_layers_by_hand():
    model = build()
    x = torch.randn(3, 32, generator=torch.Generator().manual_seed(2))
    e = model.hod_embed
    h = x @ e.fc1.weight.T + e.fc1.bias
    h = h * torch.sigmoid(1.702 * h)  # QuickGELU
    h = h @ e.fc2.weight.T + e.fc2.bias
    h = (h - h.mean(-1, keepdim=True)) / torch.sqrt(h.var(-1, unbiased=False, keepdim=True) + 1e-5)
    assert torch.allclose(e(x), h, atol=1e-5)


def test_without_motion_it_is_tats_with_the_same_seed():
    features, tracks, mask, vis = inputs(1)
    plain = build(use_hod=False, use_relative_motion=False, init_seed=3)
    tats = TATs(
        feat_dim=D, num_frames=T, num_points=N, num_classes=CLASSES, num_heads=HEADS, grid_size=G, init_seed=3
    )
    assert torch.equal(plain(features, tracks, mask, vis).tokens, tats.eval()(features, tracks, mask).tokens)
    full = build(init_seed=3)
    tats_sd = tats.state_dict()
    assert all(torch.equal(full.state_dict()[k], v) for k, v in tats_sd.items())  # TATs part unchanged
    assert set(full.state_dict()) - set(tats_sd) == {
        f"{m}.{layer}.{kind}"
        for m in ("hod_embed", "rel_embed")
        for layer in ("fc1", "fc2", "norm")
        for kind in ("weight", "bias")
    }


def test_motion_modules_use_pytorch_default_init_from_a_seed():
    model = build(init_seed=0)
    bound = 1 / 32**0.5  # kaiming_uniform(a=sqrt 5) and the bias both give U(+-1/sqrt(fan_in))
    w = model.hod_embed.fc1.weight
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound and w.std() > 0.5 * bound / 3**0.5
    assert torch.equal(model.rel_embed.norm.weight, torch.ones(D))
    assert torch.equal(build(init_seed=0).hod_embed.fc1.weight, w)
    assert not torch.equal(build(init_seed=1).hod_embed.fc1.weight, w)
    state = torch.get_rng_state()
    build(init_seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched


def test_switching_one_motion_off():
    features, tracks, mask, vis = inputs(2)
    hod_only = build(use_relative_motion=False)
    rel_only = build(use_hod=False)
    assert hod_only.rel_embed is None and rel_only.hod_embed is None
    hod_emb, rel_emb = hod_only.motion_embeddings(tracks, vis)
    assert rel_emb is None and hod_emb.shape == (B, T, N, D)
    assert rel_only(features, tracks, mask, vis).tokens.shape == (B, T, N, D)


def test_visibility_none_means_every_point_visible():
    features, tracks, mask, _ = inputs(3)
    model = build(use_hod=False)
    all_visible = torch.ones(B, T, N, dtype=torch.bool)
    assert torch.equal(
        model(features, tracks, mask).tokens, model(features, tracks, mask, all_visible).tokens
    )


def test_nan_coordinates_sample_zero_appearance_and_inputs_stay_untouched():
    features, tracks, mask, vis = inputs(4)
    tracks[0, 2, 1, 0] = float("nan")
    tracks[1, 0, 3, 1] = float("nan")
    before = [x.clone() for x in (features, tracks, mask, vis)]
    model = build()
    out = model(features, tracks, mask, vis)
    assert torch.isfinite(out.tokens).all() and torch.isfinite(out.cls_logits).all()
    clean = tracks.nan_to_num(0.0)
    appearance = model.embed(features, clean)
    appearance[0, 2, 1] = 0
    appearance[1, 0, 3] = 0
    hod_emb = model.hod_embed(hod_features(clean))
    rel_vis = vis.clone()
    rel_vis[0, 2, 1] = False  # NaN u: not visible for the relative motion; NaN v alone stays visible
    rel_emb = model.rel_embed(relative_motion_features(clean, rel_vis))
    _, expected = model.transform(appearance + hod_emb + rel_emb, mask)
    assert torch.allclose(out.tokens, expected, atol=1e-6)
    for now, then in zip((features, tracks, mask, vis), before):
        assert torch.equal(now.nan_to_num(5.0), then.nan_to_num(5.0))


def test_gradients_reach_features_tracks_and_every_parameter():
    features, tracks, mask, vis = inputs(5)
    features.requires_grad_(True)
    tracks.requires_grad_(True)
    model = build().train()
    out = model(features, tracks, mask, vis)
    (out.cls_logits.sum() + out.tokens.pow(2).mean()).backward()
    assert features.grad.abs().sum() > 0
    assert tracks.grad is not None and tracks.grad.abs().sum() > 0  # through the relative motion
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_clear_errors():
    features, tracks, mask, vis = inputs()
    model = build()
    with pytest.raises(ValueError, match="num_points must be a fixed"):
        Trokens(num_points=None, device="meta")
    with pytest.raises(ValueError, match="hod must be"):
        model(features, tracks, mask, vis, hod=torch.zeros(B, T, N, 8))
    with pytest.raises(ValueError, match="visibility must be a bool"):
        model(features, tracks, mask, vis.float())
    with pytest.raises(ValueError, match="expects num_points=6"):
        model(features, tracks[:, :, :4], mask[:, :, :4], vis[:, :, :4])


# -- motion_gate (not in the original) ------------------------------------------------------------------


def test_default_has_no_gate_and_is_ungated():
    model = build()
    assert model.motion_gate is None and model.hod_gate is None and model.rel_gate is None
    assert not any("gate" in name for name in model.state_dict())


def test_zero_gate_starts_exactly_as_tats_and_a_gate_scales_each_embedding():
    features, tracks, mask, vis = inputs(2)
    tats = TATs(
        feat_dim=D, num_frames=T, num_points=N, num_classes=CLASSES, num_heads=HEADS, grid_size=G, init_seed=3
    ).eval()
    closed = build(motion_gate=0.0, init_seed=3)
    assert {n for n in closed.state_dict() if "gate" in n} == {"hod_gate", "rel_gate"}
    assert closed.hod_gate.shape == () and closed.hod_gate.item() == 0.0
    out = closed(features, tracks, mask, vis)
    ref = tats(features, tracks, mask)
    assert torch.equal(out.tokens, ref.tokens) and torch.equal(out.cls_logits, ref.cls_logits)
    # same motion modules as the ungated model with the same seed; the gates multiply them
    plain, half = build(init_seed=3), build(motion_gate=0.5, init_seed=3)
    with torch.no_grad():
        half.rel_gate.fill_(-2.0)
    assert all(torch.equal(half.state_dict()[k], v) for k, v in plain.state_dict().items())
    hod_emb, rel_emb = half.motion_embeddings(tracks, vis)
    cls, expected = half.transform(half.embed(features, tracks) + 0.5 * hod_emb - 2.0 * rel_emb, mask)
    assert torch.allclose(half(features, tracks, mask, vis).tokens, expected, atol=1e-6)
    # only the embeddings that are on get a gate
    assert build(motion_gate=0.0, use_hod=False).hod_gate is None


def test_gate_gradients():
    features, tracks, mask, vis = inputs(5)
    closed = build(motion_gate=0.0).train()
    out = closed(features, tracks, mask, vis)
    (out.cls_logits.sum() + out.tokens.pow(2).mean()).backward()
    assert closed.hod_gate.grad.abs() > 0 and closed.rel_gate.grad.abs() > 0
    # a closed gate passes no gradient to its embedding yet
    assert closed.hod_embed.fc1.weight.grad.abs().sum() == 0
    assert closed.rel_embed.norm.bias.grad.abs().sum() == 0
    opened = build(motion_gate=0.25).train()
    out = opened(features, tracks, mask, vis)
    (out.cls_logits.sum() + out.tokens.pow(2).mean()).backward()
    missing = [n for n, p in opened.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_bad_gate_is_refused():
    with pytest.raises(ValueError, match="motion_gate must be a finite number"):
        build(motion_gate=float("nan"))
