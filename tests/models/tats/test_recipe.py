"""TATs recipe: AdamW parameter groups and the per-epoch LR schedule (tats.md §6)."""

from __future__ import annotations

import pytest
import torch

from fsar.models.tats import tats_lr, tats_lr_lambda, tats_lr_multiplier, tats_param_groups

from .helpers import build_model


def test_lr_schedule_values():
    assert [tats_lr(e) for e in range(6)] == pytest.approx(
        [1e-6, 2.08e-5, 4.06e-5, 6.04e-5, 8.02e-5, 1e-4], rel=1e-9
    )
    assert all(tats_lr(e) == pytest.approx(1e-4) for e in range(5, 20))
    assert all(tats_lr(e) == pytest.approx(1e-5) for e in range(20, 40))
    assert all(tats_lr(e) == pytest.approx(1e-6) for e in range(40, 50))
    with pytest.raises(ValueError, match="outside the schedule"):
        tats_lr(50)
    assert tats_lr_multiplier(1) == pytest.approx(0.208) and tats_lr_multiplier(45) == pytest.approx(0.01)


def test_lr_lambda_drives_lambda_lr():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, tats_lr_lambda)
    seen = []
    for _ in range(21):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx(1e-6) and seen[1] == pytest.approx(2.08e-5)
    assert seen[5] == pytest.approx(1e-4) and seen[20] == pytest.approx(1e-5)


def test_faithful_groups_decay_everything_but_cls_token():
    model = build_model()
    decay, no_decay = tats_param_groups(model)
    assert decay["weight_decay"] == 0.5 and no_decay["weight_decay"] == 0.0
    assert no_decay["params"] == [model.cls_token]
    assert len(decay["params"]) == len(list(model.parameters())) - 1
    assert any(p is model.norm.bias for p in decay["params"])


def test_modern_groups_skip_biases_norms_and_embeddings():
    model = build_model()
    model.head.requires_grad_(False)  # frozen parameters are left out
    decay, no_decay = tats_param_groups(model, weight_decay=0.05, faithful=False)
    ids = {id(p) for p in no_decay["params"]}
    for p in (model.cls_token, model.space_pos, model.time_pos, model.norm.weight, model.pre_logits.bias):
        assert id(p) in ids
    block = model.blocks[0]
    assert {id(p) for p in decay["params"]} == {
        id(p)
        for p in (
            block.temporal_attn.qkv.weight,
            block.temporal_attn.proj.weight,
            block.temporal_fc.weight,
            block.spatial_attn.qkv.weight,
            block.spatial_attn.proj.weight,
            block.mlp.fc1.weight,
            block.mlp.fc2.weight,
            model.pre_logits.weight,
        )
    }
    assert all(id(p) not in ids for p in model.head.parameters())
