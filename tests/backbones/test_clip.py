"""CLIP encoders: OpenAI-layout checkpoints (fp16, TorchScript or plain) against functional forwards written from
the published architecture; the tokenizer folder; errors."""

import pytest
import torch
from torch import nn

from fsar.backbones import create_backbone
from fsar.backbones.clip import TokenizerNotFoundError, load_clip_text
from fsar.errors import WeightsError
from tests.backbones.clip_layout import (
    as_openai_file,
    openai_state_dict,
    resnet_reference,
    rounded,
    text_reference,
    tiny_vocab,
    vit_reference,
    write_tiny_tokenizer,
)


class _Holder(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def save_torchscript(sd, path):
    """A TorchScript archive whose state dict has exactly ``sd``'s keys (as OpenAI's published .pt files)."""
    root = _Holder()
    for key, value in sd.items():
        *parents, name = key.split(".")
        module = root
        for part in parents:
            if not hasattr(module, part):
                module.add_module(part, _Holder())
            module = getattr(module, part)
        if value.is_floating_point():
            module.register_parameter(name, nn.Parameter(value, requires_grad=False))
        else:
            module.register_buffer(name, value)
    for extra in ("input_resolution", "context_length", "vocab_size"):
        root.register_buffer(extra, torch.tensor(224))
    import warnings

    with warnings.catch_warnings():  # torch 2.x deprecates TorchScript; OpenAI's files are TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(root), str(path))


def images(n=2, size=64, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("archive", ["plain", "torchscript"])
def test_resnet_from_an_openai_checkpoint(tmp_path, archive):
    sd = openai_state_dict("resnet", seed=1)
    path = tmp_path / "RN.pt"
    if archive == "plain":
        torch.save(as_openai_file(sd), path)
    else:
        save_torchscript(as_openai_file(sd, extras=False), path)
    backbone = create_backbone("clip_rn50", weights=path).eval()
    assert (
        backbone.training is False
        and backbone.out_channels == 32
        and backbone.default_normalization == "clip"
    )
    assert all(p.requires_grad for p in backbone.parameters())  # fine-tuned by default
    x = images()
    out = backbone(x)
    assert out.shape == (2, 32, 1, 1) and out.dtype == torch.float32
    torch.testing.assert_close(out[:, :, 0, 0], resnet_reference(rounded(sd), x), rtol=1e-4, atol=1e-4)
    # train mode uses batch statistics (the original's BatchNorm quirk): different numbers
    assert not torch.allclose(backbone.train()(x), out, atol=1e-3)


@pytest.mark.parametrize("archive", ["plain", "torchscript"])
def test_vit_from_an_openai_checkpoint(tmp_path, archive):
    sd = openai_state_dict("vit", seed=2)
    path = tmp_path / "ViT.pt"
    if archive == "plain":
        torch.save(as_openai_file(sd), path)
    else:
        save_torchscript(as_openai_file(sd, extras=False), path)
    backbone = create_backbone("clip_vit_b16", weights=path).eval()
    x = images(size=32)
    out = backbone(x)
    assert out.shape == (2, 32, 1, 1)
    torch.testing.assert_close(out[:, :, 0, 0], vit_reference(rounded(sd), x), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="32x32"):
        backbone(images(size=48))


def test_text_encoder_tokens_and_names(tmp_path):
    sd = openai_state_dict("vit", seed=3)
    torch.save(as_openai_file(sd), tmp_path / "ViT.pt")
    text = load_clip_text(tmp_path / "ViT.pt")
    assert not any(p.requires_grad for p in text.parameters()) and not text.training
    vocab = tiny_vocab()
    sot, eot = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    ids = torch.zeros(2, 77, dtype=torch.long)
    ids[0, :4] = torch.tensor([sot, 3, 7, eot])
    ids[1, :6] = torch.tensor([sot, 1, 2, 5, 9, eot])
    out = text.encode_tokens(ids)
    assert out.shape == (2, 32)
    ref = text_reference(rounded(sd), ids)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(ref[0], text_reference(rounded(sd), ids.roll(1, dims=1))[0])  # position matters

    folder = tmp_path / "tokenizer"
    write_tiny_tokenizer(folder)
    names = ["draw_sword", "kick"]
    emb = text.encode_names(names, tokenizer_folder=folder)
    expected = torch.zeros(2, 77, dtype=torch.long)
    pieces = [
        ["a</w>", "photo</w>", "of</w>", "d", "r", "a", "w</w>", "_</w>", "s", "w", "o", "r", "d</w>"],
        ["a</w>", "photo</w>", "of</w>", "k", "i", "c", "k</w>"],
    ]
    for row, toks in enumerate(pieces):
        seq = [sot] + [vocab[t] for t in toks] + [eot]
        expected[row, : len(seq)] = torch.tensor(seq)
    torch.testing.assert_close(text.tokenize(["a photo of draw_sword", "a photo of kick"], folder), expected)
    torch.testing.assert_close(emb, text_reference(rounded(sd), expected), rtol=1e-4, atol=1e-4)
    other = text.encode_names(names, prompt="{} video", tokenizer_folder=folder)
    assert not torch.allclose(other, emb)


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    torch.save(as_openai_file(openai_state_dict("vit", seed=4)), tmp_path / "ViT.pt")
    text = load_clip_text(tmp_path / "ViT.pt")
    with pytest.raises(TokenizerNotFoundError, match="no CLIP tokenizer folder.*vocab.json and merges.txt"):
        text.encode_names(["kick"])
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "vocab.json").write_text("{}")
    with pytest.raises(TokenizerNotFoundError, match=r"tok: merges.txt not found.*never downloads"):
        text.encode_names(["kick"], tokenizer_folder=tmp_path / "tok")
    with pytest.raises(WeightsError, match="never downloads"):
        load_clip_text("openai/clip-vit-base-patch16")


def test_hugging_face_folder_for_vit_and_text(tmp_path):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "vocab_size": len(tiny_vocab()),
            "bos_token_id": 59,
            "eos_token_id": 60,
            "pad_token_id": 0,
        },
        vision_config={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 16,
        },
        projection_dim=16,
    )
    model = CLIPModel(config).eval()
    model.save_pretrained(tmp_path / "hf")
    write_tiny_tokenizer(tmp_path / "hf")
    backbone = create_backbone("clip_vit_b16", weights=tmp_path / "hf").eval()
    x = images(size=32)
    with torch.no_grad():
        expected = model.get_image_features(pixel_values=x)
        expected = getattr(expected, "pooler_output", expected)
    torch.testing.assert_close(backbone(x)[:, :, 0, 0], expected, rtol=1e-5, atol=1e-5)
    text = load_clip_text(tmp_path / "hf")  # the folder is its own tokenizer folder
    ids = text.tokenize(["a photo of kick"])
    with torch.no_grad():
        ref = model.get_text_features(input_ids=ids)
        ref = getattr(ref, "pooler_output", ref)
    torch.testing.assert_close(text.encode_names(["kick"]), ref, rtol=1e-5, atol=1e-5)


def test_wrong_or_broken_checkpoints_are_refused(tmp_path):
    rn, vit = openai_state_dict("resnet", seed=5), openai_state_dict("vit", seed=5)
    torch.save(as_openai_file(rn), tmp_path / "RN.pt")
    torch.save(as_openai_file(vit), tmp_path / "ViT.pt")
    with pytest.raises(WeightsError, match="not a CLIP ViT checkpoint"):
        create_backbone("clip_vit_b16", weights=tmp_path / "RN.pt")
    with pytest.raises(WeightsError, match="not a CLIP ResNet checkpoint"):
        create_backbone("clip_rn50", weights=tmp_path / "ViT.pt")
    torch.save(as_openai_file(rn | {"visual.extra.weight": torch.zeros(2)}), tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match="unexpected keys: extra.weight"):
        create_backbone("clip_rn50", weights=tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match="not found"):
        create_backbone("clip_rn50", weights=tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match="Hugging Face has no CLIP ResNet"):
        create_backbone("clip_rn50", weights=tmp_path)


@pytest.mark.slow
def test_published_sizes_with_random_weights():
    torch.manual_seed(0)
    rn = create_backbone("clip_rn50").eval()
    assert rn.out_channels == 1024 and sum(p.numel() for p in rn.parameters()) == pytest.approx(
        38.3e6, rel=0.01
    )
    with torch.no_grad():
        assert rn(torch.randn(1, 3, 224, 224)).shape == (1, 1024, 1, 1)
    vit = create_backbone("clip_vit_b16", frozen=True)
    assert vit.out_channels == 512 and not vit.training
    assert sum(p.numel() for p in vit.parameters()) == pytest.approx(86.2e6, rel=0.01)
    with torch.no_grad():
        assert vit(torch.randn(1, 3, 224, 224)).shape == (1, 512, 1, 1)
