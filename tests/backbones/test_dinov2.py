"""DINOv2 backbones with random weights: shapes, freezing, hub-checkpoint conversion and the official
position-embedding resize (dependencies.md §1, §7)."""

import pytest
import torch
import torch.nn.functional as F

from fsar.backbones import convert_dinov2_hub_state_dict, create_backbone, resize_dinov2_position_embeddings
from fsar.errors import WeightsError


def make_hf_dinov2(image_size, num_layers=1, hidden=384, heads=6):
    from transformers import Dinov2Config, Dinov2Model

    cfg = Dinov2Config(
        hidden_size=hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=14,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
    )
    model = Dinov2Model(cfg).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial values everywhere (HF initialises some of these to 0/1)
        for name, p in model.named_parameters():
            p.copy_(
                torch.randn(p.shape, generator=gen) * 0.05
                + (1.0 if "norm" in name and "weight" in name else 0.0)
            )
        model.embeddings.position_embeddings.mul_(20)  # large, as in the real checkpoints
    return model


def to_official_keys(hf_sd):
    """Inverse of the dependencies.md §1 key table, written independently of fsar's converter."""
    out = {
        "cls_token": hf_sd["embeddings.cls_token"],
        "mask_token": hf_sd["embeddings.mask_token"],
        "pos_embed": hf_sd["embeddings.position_embeddings"],
        "patch_embed.proj.weight": hf_sd["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": hf_sd["embeddings.patch_embeddings.projection.bias"],
        "norm.weight": hf_sd["layernorm.weight"],
        "norm.bias": hf_sd["layernorm.bias"],
    }
    layers = {int(k.split(".")[2]) for k in hf_sd if k.startswith("encoder.layer.")}
    for i in layers:
        p = f"encoder.layer.{i}."
        b = f"blocks.{i}."
        for kind in ("weight", "bias"):
            out[b + f"attn.qkv.{kind}"] = torch.cat(
                [hf_sd[p + f"attention.{x}_proj.{kind}"] for x in ("q", "k", "v")], dim=0
            )
            out[b + f"attn.proj.{kind}"] = hf_sd[p + f"attention.o_proj.{kind}"]
            for n in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                out[b + f"{n}.{kind}"] = hf_sd[p + f"{n}.{kind}"]
        out[b + "ls1.gamma"] = hf_sd[p + "layer_scale1.lambda1"]
        out[b + "ls2.gamma"] = hf_sd[p + "layer_scale2.lambda1"]
    return {k: v.clone() for k, v in out.items()}


def official_pos_encoding(pos_embed, height, width):
    """What the official DINOv2 does at run time for a height x width input (offset 0.1, scale_factor)."""
    m = int((pos_embed.shape[1] - 1) ** 0.5)
    h0, w0 = height // 14, width // 14
    patch = pos_embed[:, 1:].float().reshape(1, m, m, -1).permute(0, 3, 1, 2)
    patch = F.interpolate(
        patch, scale_factor=((w0 + 0.1) / m, (h0 + 0.1) / m), mode="bicubic", antialias=False
    )
    return torch.cat([pos_embed[:, :1], patch.permute(0, 2, 3, 1).reshape(1, h0 * w0, -1)], dim=1)


@pytest.fixture(scope="module")
def hub_checkpoint_518(tmp_path_factory):
    """A fake official ViT-S/14 (1 block) hub checkpoint at 518 px (37x37 positions) and its HF twin."""
    model = make_hf_dinov2(518)
    sd = to_official_keys(model.state_dict())
    assert sd["pos_embed"].shape == (1, 1370, 384) and sd["blocks.0.attn.qkv.weight"].shape == (1152, 384)
    path = tmp_path_factory.mktemp("dino") / "dinov2_vits14_pretrain.pth"
    torch.save(sd, path)
    return path, model


def test_shapes_attributes_and_patch_order():
    net = create_backbone("dinov2_vits14", num_layers=1)
    assert net.out_channels == 384 and net.default_normalization == "imagenet" and net.frozen
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    out = net(x)
    assert out.shape == (2, 384, 16, 16)
    tokens = net.model(pixel_values=x).last_hidden_state
    assert torch.equal(out[1, :, 3, 5], tokens[1, 1 + 3 * 16 + 5])  # row-major grid, CLS dropped
    assert net(torch.randn(1, 3, 112, 140, generator=torch.Generator().manual_seed(1))).shape == (
        1,
        384,
        8,
        10,
    )
    with pytest.raises(ValueError, match="multiples of 14"):
        net(torch.randn(1, 3, 100, 100))


@pytest.mark.parametrize("name,dim,heads", [("dinov2_vitb14", 768, 12), ("dinov2_vitl14", 1024, 16)])
def test_larger_variants_build(name, dim, heads):
    net = create_backbone(name, num_layers=1)
    assert net.out_channels == dim and net.model.config.num_attention_heads == heads
    assert net.model.encoder.layer[0].mlp.fc1.out_features == 4 * dim
    assert net(torch.zeros(1, 3, 28, 28)).shape == (1, dim, 2, 2)


def test_frozen_stays_in_eval_without_grad_and_can_be_unfrozen():
    net = create_backbone("dinov2_vits14", num_layers=1)
    net.train()
    assert not net.training and not any(m.training for m in net.modules())
    assert not any(p.requires_grad for p in net.parameters())
    x = torch.randn(1, 3, 28, 28, requires_grad=True)
    assert not net(x).requires_grad
    trainable = create_backbone("dinov2_vits14", num_layers=1, frozen=False)
    assert trainable.training and not trainable.frozen
    trainable(x).sum().backward()
    assert trainable.model.embeddings.patch_embeddings.projection.weight.grad is not None


def test_position_embedding_resize_is_the_official_formula():
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(1, 1370, 8, generator=gen) * 20
    out = resize_dinov2_position_embeddings(pos, 16)
    patch = pos[:, 1:].reshape(1, 37, 37, 8).permute(0, 3, 1, 2)
    expected = F.interpolate(
        patch, scale_factor=16.1 / 37, mode="bicubic", antialias=False, align_corners=False
    )
    assert out.shape == (1, 257, 8)
    assert torch.equal(out[:, :1], pos[:, :1])
    assert torch.allclose(out[0, 1:], expected.flatten(2)[0].T, atol=1e-5, rtol=0)
    by_size = F.interpolate(patch, size=(16, 16), mode="bicubic", align_corners=False).flatten(2)[0].T
    assert (out[0, 1:] - by_size).abs().max() > 0.1  # the target-size resize really is different
    assert torch.equal(resize_dinov2_position_embeddings(pos, 37), pos)  # same grid: untouched


def test_hub_checkpoint_converts_with_full_key_coverage(hub_checkpoint_518):
    path, _ = hub_checkpoint_518
    sd = torch.load(path, weights_only=True)
    converted = convert_dinov2_hub_state_dict(sd, image_size=224)
    target = create_backbone("dinov2_vits14", num_layers=1).model.state_dict()
    assert set(converted) == set(target)
    assert all(converted[k].shape == target[k].shape for k in target)
    q, k, v = sd["blocks.0.attn.qkv.weight"].split(384)
    assert torch.equal(converted["encoder.layer.0.attention.q_proj.weight"], q)
    assert torch.equal(converted["encoder.layer.0.attention.k_proj.weight"], k)
    assert torch.equal(converted["encoder.layer.0.attention.v_proj.weight"], v)


def test_converted_model_equals_official_run_time_interpolation(hub_checkpoint_518):
    """At 224 px the official model interpolates its 37x37 positions on the fly; ours does it once at load."""
    path, model518 = hub_checkpoint_518
    net = create_backbone("dinov2_vits14", weights=path, num_layers=1)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    emb = model518.embeddings
    official = official_pos_encoding(emb.position_embeddings, 224, 224)
    original = emb.interpolate_pos_encoding
    emb.interpolate_pos_encoding = lambda embeddings, h, w: official
    try:
        with torch.no_grad():
            ref = model518(pixel_values=x).last_hidden_state[:, 1:]
    finally:
        emb.interpolate_pos_encoding = original
    out = net(x).flatten(2).transpose(1, 2)
    assert torch.allclose(out, ref, atol=1e-5, rtol=0)  # measured max|diff| = 0 on CPU
    # and transformers' own size-based interpolation differs, which is why fsar pre-resizes
    with torch.no_grad():
        hf_default = model518(pixel_values=x).last_hidden_state[:, 1:]
    assert (hf_default - ref).abs().max() > 1e-3  # measured 1.16


def test_bad_hub_checkpoints_are_reported(tmp_path, hub_checkpoint_518):
    path, _ = hub_checkpoint_518
    sd = torch.load(path, weights_only=True)
    with pytest.raises(WeightsError, match="unknown keys.*register_tokens"):
        convert_dinov2_hub_state_dict({**sd, "register_tokens": torch.zeros(1, 4, 384)})
    del sd["norm.weight"]
    torch.save(sd, tmp_path / "no_norm.pth")
    with pytest.raises(WeightsError, match=r"no_norm\.pth.*missing keys: layernorm\.weight"):
        create_backbone("dinov2_vits14", weights=tmp_path / "no_norm.pth", num_layers=1)
    with pytest.raises(WeightsError, match="unexpected keys: encoder.layer.0"):
        create_backbone("dinov2_vits14", weights=path, num_layers=0)


def test_hf_folder_at_518_is_resized_and_checked(tmp_path, hub_checkpoint_518):
    _, model518 = hub_checkpoint_518
    model518.save_pretrained(tmp_path / "hf518")
    net = create_backbone("dinov2_vits14", weights=tmp_path / "hf518", num_layers=1)
    assert net.model.config.image_size == 224 and net.frozen
    expected = resize_dinov2_position_embeddings(model518.embeddings.position_embeddings.detach(), 16)
    assert torch.equal(net.model.embeddings.position_embeddings, expected)
    assert torch.equal(net.model.layernorm.weight, model518.layernorm.weight)
    with pytest.raises(WeightsError, match="hidden_size=384.*dinov2_vitb14 needs 768"):
        create_backbone("dinov2_vitb14", weights=tmp_path / "hf518", num_layers=1)


def test_hf_folder_at_224_loads_unchanged(tmp_path):
    src = create_backbone("dinov2_vits14", num_layers=1)
    src.model.save_pretrained(tmp_path / "hf224")
    net = create_backbone("dinov2_vits14", weights=tmp_path / "hf224", num_layers=1)
    x = torch.randn(1, 3, 56, 56, generator=torch.Generator().manual_seed(3))
    assert torch.equal(net(x), src(x))
