"""TATs network: mask semantics, permutation equivariance, shapes, initialisation, parameter count, errors."""

from __future__ import annotations

import math

import pytest
import torch

from fsar.models.tats import TATs

from .helpers import CLASSES, D, G, N, T, build_model, make_inputs


def test_output_shapes_and_gradients(small_model):
    features, tracks, mask = make_inputs()
    small_model.train()
    out = small_model(features, tracks, mask)
    assert out.cls_logits.shape == (2, CLASSES)
    assert out.tokens.shape == (2, T, N, D)
    (out.cls_logits.square().sum() + out.tokens.sum()).backward()
    for name, param in small_model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"{name} got a zero gradient"


def test_tokens_are_layer_normed(small_model):
    out = small_model(*make_inputs())
    # final LayerNorm with weight 1, bias 0 at init: zero mean, unit variance per token
    assert torch.allclose(out.tokens.mean(-1), torch.zeros(2, T, N), atol=1e-5)
    assert torch.allclose(out.tokens.var(-1, unbiased=False), torch.ones(2, T, N), atol=1e-3)


def test_masked_positions_do_not_influence_unmasked_tokens_or_cls(small_model):
    features, tracks, mask = make_inputs(seed=1)
    assert (~mask).sum() > 5
    with torch.no_grad():
        ref = small_model(features, tracks, mask)
        # 1) move the masked points elsewhere
        gen = torch.Generator().manual_seed(11)
        moved = torch.where(mask.unsqueeze(-1), tracks, torch.rand(tracks.shape, generator=gen) * 2 - 1)
        # 2) change every grid cell that no existing point samples at that frame
        ix = torch.round((moved[..., 0] + 1) / 2 * (G - 1)).long()
        iy = torch.round((moved[..., 1] + 1) / 2 * (G - 1)).long()
        inside = (ix >= 0) & (ix < G) & (iy >= 0) & (iy < G)
        used = torch.zeros(2, T, G * G, dtype=torch.bool)
        for b, t, n in (mask & inside).nonzero().tolist():
            used[b, t, iy[b, t, n] * G + ix[b, t, n]] = True
        noise = torch.randn(features.shape, generator=gen)
        perturbed = features + noise * (~used).view(2, T, G, G, 1)
        assert not torch.equal(perturbed, features)
        out = small_model(perturbed, moved, mask)
    assert torch.equal(out.cls_logits, ref.cls_logits)
    assert torch.equal(out.tokens[mask], ref.tokens[mask])
    changed = (out.tokens != ref.tokens).any(-1)
    assert changed[~mask].float().mean() > 0.9  # masked queries are still computed from their own inputs


def test_perturbing_masked_tokens_changes_them_but_nothing_else(small_model):
    features, tracks, mask = make_inputs(seed=2)
    with torch.no_grad():
        tokens = small_model.embed(features, tracks)
        cls0, out0 = small_model.transform(tokens, mask)
        noise = torch.randn(tokens.shape, generator=torch.Generator().manual_seed(5))
        cls1, out1 = small_model.transform(tokens + noise * (~mask).unsqueeze(-1), mask)
    assert torch.equal(cls0, cls1)
    assert torch.equal(out0[mask], out1[mask])
    assert (out0[~mask] != out1[~mask]).any(-1).all()


def test_point_permutation_equivariance(small_model):
    features, tracks, mask = make_inputs(seed=3)
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = small_model(features, tracks, mask)
        b = small_model(features, tracks[:, :, perm], mask[:, :, perm])
    assert (a.tokens[:, :, perm] - b.tokens).abs().max() <= 1e-5
    assert (a.cls_logits - b.cls_logits).abs().max() <= 1e-5


def test_each_video_is_encoded_independently(small_model):
    features, tracks, mask = make_inputs(seed=4)
    with torch.no_grad():
        both = small_model(features, tracks, mask)
        first = small_model(features[:1], tracks[:1], mask[:1])
    assert torch.allclose(both.tokens[:1], first.tokens, atol=1e-6)
    assert torch.allclose(both.cls_logits[:1], first.cls_logits, atol=1e-6)


def test_positional_embeddings_are_added_before_sampling(small_model):
    features, _, _ = make_inputs(seed=5)
    # point 0: cell (row 1, col 2) under the reference convention; point 1: outside the grid (u > 1 + 1/(G-1))
    tracks = torch.tensor([[2 * 2 / (G - 1) - 1, 2 * 1 / (G - 1) - 1], [1.5, 0.0]]).expand(2, T, 2, 2)
    with torch.no_grad():
        tokens = small_model.embed(features, tracks)
    expected = (
        features[:, :, 1, 2] + small_model.space_pos[0, 1 * G + 2] + small_model.time_pos[0].unsqueeze(0)
    )
    assert torch.allclose(tokens[:, :, 0], expected, atol=1e-6)
    assert torch.equal(tokens[:, :, 1], torch.zeros(2, T, D))


def test_depth_two_and_bilinear_sampling_run():
    model = build_model(depth=2, sampling="bilinear")
    out = model(*make_inputs(seed=6))
    assert out.tokens.shape == (2, T, N, D) and torch.isfinite(out.tokens).all()
    assert len(model.blocks) == 2


def test_occlusion_masking():
    model = build_model(mask_occluded=True)
    features, tracks, mask = make_inputs(seed=7)
    with pytest.raises(ValueError, match="visibility"):
        model(features, tracks, mask)
    visibility = torch.ones_like(mask)
    visibility[:, 1:, 0] = False  # point 0 is occluded after frame 0
    visibility[1, :, 1] = False  # point 1 of video 1 is never visible: guarded, no NaN
    with torch.no_grad():
        ref = model(features, tracks, mask, visibility)
        moved = tracks.clone()
        moved[:, 1:, 0] = -tracks[:, 1:, 0]
        out = model(features, moved, mask, visibility)
    assert torch.isfinite(ref.tokens).all() and torch.isfinite(ref.cls_logits).all()
    keep = mask & visibility
    assert torch.equal(out.cls_logits, ref.cls_logits)
    assert torch.equal(out.tokens[keep], ref.tokens[keep])
    # without occlusion masking the same perturbation reaches the CLS
    plain = build_model()
    with torch.no_grad():
        assert not torch.equal(
            plain(features, tracks, mask).cls_logits, plain(features, moved, mask).cls_logits
        )


def test_fully_masked_trajectory_is_an_error(small_model):
    features, tracks, mask = make_inputs()
    mask[1, :, 7] = False
    with pytest.raises(ValueError, match="point 7 of video 1"):
        small_model(features, tracks, mask)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda f, tr, m: (f[:, :3], tr[:, :3], m[:, :3]), "num_frames=4"),
        (lambda f, tr, m: (f[..., :16], tr, m), "feat_dim=32"),
        (lambda f, tr, m: (f, tr[:, :, :5], m[:, :, :5]), "num_points=12"),
        (lambda f, tr, m: (f, tr, m.float()), "query_mask must be a bool"),
        (lambda f, tr, m: (f, tr.index_fill(2, torch.tensor([3]), float("nan")), m), "NaN"),
    ],
)
def test_bad_inputs_raise_clear_errors(small_model, change, match):
    with pytest.raises(ValueError, match=match):
        small_model(*change(*make_inputs()))


def test_initialisation_follows_the_reference():
    state = torch.get_rng_state()
    model = build_model(feat_dim=64, num_frames=8, num_points=None, init_seed=3)
    assert torch.equal(state, torch.get_rng_state()), "construction must not touch the global RNG"
    for name, param, (fan_in, fan_out) in [
        ("cls_token", model.cls_token, (64, 64)),
        ("space_pos", model.space_pos, (G * G * 64, 64)),
        ("time_pos", model.time_pos, (8 * 64, 64)),
    ]:
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert param.abs().max() <= bound, name
        assert param.abs().max() > 0.9 * bound, name
    block = model.blocks[0]
    w = block.mlp.fc1.weight
    assert 0.019 < w.std().item() < 0.021 and w.abs().max() < 0.12
    assert torch.equal(block.mlp.fc1.bias, torch.zeros_like(block.mlp.fc1.bias))
    assert torch.equal(block.spatial_attn.qkv.bias, torch.zeros_like(block.spatial_attn.qkv.bias))
    assert torch.equal(block.temporal_norm.weight, torch.ones(64)) and torch.equal(
        model.norm.bias, torch.zeros(64)
    )
    # seeded: same seed, same weights; another seed, other weights
    again = build_model(feat_dim=64, num_frames=8, num_points=None, init_seed=3)
    other = build_model(feat_dim=64, num_frames=8, num_points=None, init_seed=4)
    assert torch.equal(model.head.weight, again.head.weight)
    assert not torch.equal(model.head.weight, other.head.weight)


def test_reference_xavier_bounds_at_full_size():
    model = TATs(feat_dim=768, num_frames=8, num_points=256, num_classes=64, device="meta")
    bounds = []
    for param in (model.cls_token, model.space_pos, model.time_pos):
        fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(param)
        bounds.append(math.sqrt(6 / (fan_in + fan_out)))
    assert bounds == pytest.approx([0.0625, 0.005514, 0.02946], rel=1e-3)


def test_parameter_count_at_full_size():
    model = TATs(
        feat_dim=768, num_frames=8, num_points=256, num_classes=64, depth=1, num_heads=8, device="meta"
    )

    def count(module_or_param) -> int:
        if isinstance(module_or_param, torch.nn.Parameter):
            return module_or_param.numel()
        return sum(p.numel() for p in module_or_param.parameters())

    # the dead reference `spatial_pos_embed` (196,608) is not built: 11,083,840 - 196,608
    assert count(model) == 10_887_232
    assert {
        "cls": count(model.cls_token),
        "space_pos": count(model.space_pos),
        "time_pos": count(model.time_pos),
        "block": count(model.blocks),
        "final LN": count(model.norm),
        "pre_logits": count(model.pre_logits),
        "head": count(model.head),
    } == {
        "cls": 768,
        "space_pos": 196_608,
        "time_pos": 6_144,
        "block": 10_042_368,
        "final LN": 1_536,
        "pre_logits": 590_592,
        "head": 49_216,
    }
    block = model.blocks[0]
    assert count(block.temporal_attn.qkv) == count(block.spatial_attn.qkv) == 1_771_776
    assert (
        count(block.temporal_attn.proj)
        == count(block.temporal_fc)
        == count(block.spatial_attn.proj)
        == 590_592
    )
    assert count(block.mlp.fc1) == 2_362_368 and count(block.mlp.fc2) == 2_360_064
    norms = [m for m in block.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert [count(m) for m in norms] == [1_536] * 3
