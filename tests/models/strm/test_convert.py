"""convert_reference_state_dict on state dicts named and shaped as the original CNN_STRM's (shared/specs/strm.md
§11), written here from that list."""

import math

import pytest
import torch

from fsar.errors import WeightsError
from fsar.models.strm import STRM, convert_reference_state_dict, strm_loss

D, T, OUT = 8, 8, 6


def original_pe_table(length, dim):
    """The original's table as it computes it (float32), [1, length, dim]."""
    pe = torch.zeros(length, dim)
    position = torch.arange(0, length).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2) * -(math.log(10000.0) / dim))
    pe[:, 0::2] = torch.sin(position * freq) * 0.1
    pe[:, 1::2] = torch.cos(position * freq) * 0.1
    return pe.unsqueeze(0)


def original_shapes(cards=(2,), clsw=False):
    """Original parameter names (single-GPU naming) and shapes, without the pe tables."""
    shapes = {}
    for i, k in enumerate(cards):
        for layer in ("k_linear", "v_linear"):
            shapes[f"transformers.{i}.{layer}.weight"] = (OUT, k * D)
            shapes[f"transformers.{i}.{layer}.bias"] = (OUT,)
        for layer in ("norm_k", "norm_v"):
            shapes[f"transformers.{i}.{layer}.weight"] = (OUT,)
            shapes[f"transformers.{i}.{layer}.bias"] = (OUT,)
        if clsw:
            shapes[f"new_dist_loss_post_pat.{i}.clsW.weight"] = (D // 2, k * D)
            shapes[f"new_dist_loss_post_pat.{i}.clsW.bias"] = (D // 2,)
    shapes["attn_pat.gamma"] = (1,)
    for layer in ("query_proj", "key_proj", "value_conv"):
        shapes[f"attn_pat.{layer}.weight"] = (D, D)
        shapes[f"attn_pat.{layer}.bias"] = (D,)
    for layer, shape in {"inp_fc": (D // 2, D), "hid_fc": (D // 2, D // 2), "out_fc": (D, D // 2)}.items():
        shapes[f"attn_pat.Bot_MLP.{layer}.weight"] = shape
        shapes[f"attn_pat.Bot_MLP.{layer}.bias"] = (shape[0],)
    for layer in ("inp_fc", "out_fc"):
        shapes[f"fr_enrich.Tok_MLP.{layer}.weight"] = (T, T)
        shapes[f"fr_enrich.Tok_MLP.{layer}.bias"] = (T,)
        shapes[f"fr_enrich.Bot_MLP.{layer}.weight"] = (D, D)
        shapes[f"fr_enrich.Bot_MLP.{layer}.bias"] = (D,)
    return shapes


def original_state_dict(cards=(2,), clsw=False, seed=0, data_parallel=False):
    g = torch.Generator().manual_seed(seed)
    sd = {name: torch.randn(shape, generator=g) for name, shape in original_shapes(cards, clsw).items()}
    for i in range(len(cards)):
        sd[f"transformers.{i}.pe.pe"] = original_pe_table(12, D)
    sd["attn_pat.pe.pe"] = original_pe_table(24, D)
    sd["fr_enrich.pe.pe"] = original_pe_table(12, D)
    if data_parallel:  # 4 GPUs: attn_pat and fr_enrich (and the resnet) ran under DataParallel
        sd = {
            k.replace("attn_pat.", "attn_pat.module.").replace("fr_enrich.", "fr_enrich.module."): v
            for k, v in sd.items()
        }
    return sd


def _head(cards=(2,)):
    torch.manual_seed(0)
    return STRM(D, T, cards, out_dim=OUT)


@pytest.mark.parametrize("data_parallel", [False, True])
def test_full_original_state_dict_loads_strictly_and_values_land_where_named(data_parallel):
    sd = original_state_dict(cards=(2, 3), clsw=True, data_parallel=data_parallel)
    checkpoint = {
        "iteration": 10,
        "model_state_dict": sd,
        "optimizer_state_dict": {"state": {}},
        "scheduler": None,
    }
    for source in (sd, checkpoint, {"module." + k: v for k, v in sd.items()}):
        head = _head((2, 3))
        converted = convert_reference_state_dict(source)
        head.load_state_dict(converted, strict=True)
        assert len(converted) == len(head.state_dict())
    p = "attn_pat.module." if data_parallel else "attn_pat."
    f = "fr_enrich.module." if data_parallel else "fr_enrich."
    pairs = {
        "trx.transformers.1.k_linear.weight": "transformers.1.k_linear.weight",
        "trx.transformers.0.norm_v.bias": "transformers.0.norm_v.bias",
        "patch_attention.gamma": p + "gamma",
        "patch_attention.value_conv.weight": p + "value_conv.weight",
        "patch_attention.mlp.hid_fc.weight": p + "Bot_MLP.hid_fc.weight",
        "frame_mixer.token_mlp.inp_fc.weight": f + "Tok_MLP.inp_fc.weight",
        "frame_mixer.channel_mlp.out_fc.bias": f + "Bot_MLP.out_fc.bias",
        "similarity.1.clsW.weight": "new_dist_loss_post_pat.1.clsW.weight",
    }
    state = head.state_dict()
    for ours, theirs in pairs.items():
        assert torch.equal(state[ours], sd[theirs]), ours


def test_released_checkpoint_without_clsw_misses_exactly_clsw():
    head = _head()
    result = head.load_state_dict(convert_reference_state_dict(original_state_dict()), strict=False)
    assert sorted(result.missing_keys) == ["similarity.0.clsW.bias", "similarity.0.clsW.weight"]
    assert result.unexpected_keys == []


def test_gradient_dict_converts_to_the_same_names():
    """The gradients of a model, named as the original's parameters, land on fsar's parameters of the same name."""
    head = _head((2, 3))
    head.load_state_dict(convert_reference_state_dict(original_state_dict((2, 3), clsw=True)))
    head.patch_attention.gamma.data.fill_(0.5)
    g = torch.Generator().manual_seed(1)
    support, query = torch.randn(4, T, D, 5, 5, generator=g), torch.randn(2, T, D, 5, 5, generator=g)
    loss = strm_loss(head(support, torch.tensor([1, 0, 1, 0]), query), torch.tensor([0, 1]))
    loss.backward()
    ours = {n: p.grad for n, p in head.named_parameters() if p.grad is not None}
    names = original_shapes((2, 3), clsw=True)
    converted_names = convert_reference_state_dict({k: torch.zeros(s) for k, s in names.items()})
    original_of = {}
    for original in names:
        (fsar_name,) = convert_reference_state_dict({original: torch.zeros(names[original])}).keys()
        original_of[fsar_name] = original
    assert set(converted_names) == set(original_of)
    grads = {original_of[n]: gr for n, gr in ours.items()}  # no pe.pe, no norm_v, no clsW (frozen) entries
    assert not any("norm_v" in k or "clsW" in k for k in grads)
    converted = convert_reference_state_dict(grads)
    assert set(converted) == set(ours)
    for name, grad in converted.items():
        assert torch.equal(grad, ours[name])


def test_positional_tables_are_checked():
    sd = original_state_dict()
    sd["attn_pat.pe.pe"] = sd["attn_pat.pe.pe"] * 2
    with pytest.raises(WeightsError, match=r"'attn_pat\.pe\.pe' is not TRX's sinusoidal"):
        convert_reference_state_dict(sd)
    sd = original_state_dict()
    sd["fr_enrich.pe.pe"] = sd["fr_enrich.pe.pe"][0]
    with pytest.raises(WeightsError, match=r"fr_enrich\.pe\.pe.*\[1, length, even D\]"):
        convert_reference_state_dict(sd)


def test_resnet_raises_unless_ignored_and_unknown_keys_raise():
    sd = original_state_dict()
    sd["resnet.module.0.weight"] = torch.zeros(64, 3, 7, 7)
    sd["resnet.module.4.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(WeightsError, match="ignore_other_parts=True"):
        convert_reference_state_dict(sd)
    converted = convert_reference_state_dict(sd, ignore_other_parts=True)
    assert not any("resnet" in k for k in converted)
    _head().load_state_dict(converted, strict=False)
    sd["attn_pat.extra.weight"] = torch.zeros(1)
    sd["new_dist_loss_post_pat.0.other.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match=r"'attn_pat\.extra\.weight'.*new_dist_loss_post_pat\.0\.other"):
        convert_reference_state_dict(sd, ignore_other_parts=True)
    with pytest.raises(WeightsError, match="no STRM head parameters"):
        convert_reference_state_dict({"resnet.0.weight": torch.zeros(1)}, ignore_other_parts=True)
    with pytest.raises(WeightsError, match="not tensors"):
        convert_reference_state_dict({"attn_pat.gamma": 0.0})
    with pytest.raises(RuntimeError, match="size mismatch"):
        _head().load_state_dict(convert_reference_state_dict(original_state_dict(cards=(3,), clsw=True)))


def test_whole_checkpoint_converts_for_the_classifier_with_its_trunk():
    from torch import nn

    from fsar.models.strm import STRMClassifier, convert_reference_classifier_state_dict

    class Trunk(nn.Module):
        out_channels = D

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, D, 8, stride=8)

        def forward(self, x):
            return self.stem(x)

    g = torch.Generator().manual_seed(1)
    sd = original_state_dict(clsw=True, data_parallel=True)
    sd["resnet.module.0.weight"] = torch.randn(D, 3, 8, 8, generator=g)
    sd["resnet.module.0.bias"] = torch.randn(D, generator=g)

    def trunk_converter(trunk):
        assert set(trunk) == {"conv1.weight", "conv1.bias"}  # torchvision names, DataParallel segment removed
        return {k.replace("conv1.", "stem."): v for k, v in trunk.items()}

    torch.manual_seed(0)
    clf = STRMClassifier(Trunk(), out_dim=OUT)
    out = convert_reference_classifier_state_dict(
        {"model_state_dict": sd}, backbone_converter=trunk_converter
    )
    clf.load_state_dict(out, strict=True)
    assert torch.equal(clf.backbone.stem.weight, sd["resnet.module.0.weight"])
    assert torch.equal(clf.head.patch_attention.gamma, sd["attn_pat.module.gamma"])
    with pytest.raises(WeightsError, match="not recognised"):
        convert_reference_classifier_state_dict(
            {**sd, "fr_enrich.other": torch.zeros(1)}, backbone_converter=trunk_converter
        )
