"""HyRSMClassifier: the two-step API on a backbone, its loss, the caching evaluator, the trainer on synthetic data."""

import pytest
import torch

from fsar.models.hyrsm import HyRSM, HyRSMClassifier, hyrsm_loss
from fsar.models.registry import MODELS
from tests.models.stand_ins import StandInBackbone, random_batch

C = 16


def _model(**kw):
    torch.manual_seed(0)
    return HyRSMClassifier(StandInBackbone(C), num_frames=8, num_classes=6, num_heads=4, **kw)


def test_registered_and_sized_from_the_backbone():
    torch.manual_seed(0)
    model = MODELS.create("hyrsm", backbone=StandInBackbone(C), num_classes=5)
    assert isinstance(model, HyRSMClassifier) and isinstance(model.head, HyRSM)
    assert model.head.feat_dim == C and model.head.num_classes == 5
    with pytest.raises(ValueError, match="feat_dim"):
        HyRSMClassifier(torch.nn.Identity())
    with pytest.raises(ValueError, match="tasks_per_update"):
        _model(tasks_per_update=0)


def test_two_step_api_equals_the_head_on_pooled_features():
    model = _model().eval()
    support = random_batch([2, 0, 1, 1, 0, 2], seed=2)  # 3-way 2-shot, shuffled
    query = random_batch([1, 2, 0, 0], seed=3)
    s, q = model.encode(support), model.encode(query)
    assert s["frames"].shape == (6, 8, C) and s["class_logits"].shape == (6, 8, 6)
    model.process_support_set(s, support.labels)
    assert model.way == 3
    logits = model(q)
    pooled = [
        model.backbone(b.frames.flatten(0, 1)).mean(dim=(2, 3)).view(-1, 8, C) for b in (support, query)
    ]
    expected = model.head(pooled[0], support.labels, pooled[1])
    torch.testing.assert_close(logits, expected.logits)
    torch.testing.assert_close(torch.cat([s["class_logits"], q["class_logits"]]), expected.class_logits)


@pytest.mark.parametrize("per_batch, per_update", [(4, 4), (4, 2), (1, 1)])
def test_loss_is_the_contract_total_times_tasks_per_update(per_batch, per_update):
    model = _model(class_weight=0.15, tasks_per_batch=per_batch, tasks_per_update=per_update).train()
    support = random_batch([0, 1, 2], seed=2)
    query = random_batch([2, 0, 1, 1], seed=3)
    support.global_labels = torch.tensor([5, 0, 3])
    query.global_labels = torch.tensor([3, 5, 0, 0])
    s, q = model.encode(support), model.encode(query)
    logits = model.episode_logits(s, support.labels, q)
    loss = model.loss(logits, query.labels, support=s, query=q, support_batch=support, query_batch=query)
    class_logits = torch.cat([s["class_logits"], q["class_logits"]])
    out = type("Out", (), {"logits": logits, "class_logits": class_logits})
    terms = hyrsm_loss(out, query.labels, torch.tensor([5, 0, 3, 3, 5, 0, 0]), 0.15, per_batch)
    torch.testing.assert_close(loss, terms["total"] * per_update)
    assert model.last_losses["few_shot"] == pytest.approx(terms["few_shot"].item())
    loss.backward()
    assert model.backbone.conv.weight.grad.abs().sum() > 0
    assert model.head.temporal_atte.w_qs.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="context"):
        model.loss(logits, query.labels, support=s, query=q)


def test_param_groups_exempt_norms_like_the_original():
    model = _model()
    decay, no_decay = model.param_groups(weight_decay=5e-5)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 5e-5 and no_decay["weight_decay"] == 0.0
    assert {names[id(p)] for p in no_decay["params"]} == {
        "head.temporal_atte_before.norm.weight",
        "head.temporal_atte_before.norm.bias",
        "head.temporal_atte.layer_norm.weight",
        "head.temporal_atte.layer_norm.bias",
    }
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_errors():
    model = _model()
    with pytest.raises(RuntimeError, match="process_support_set"):
        model({"frames": torch.zeros(2, 8, C)})
    with pytest.raises(ValueError, match=r"T=8"):
        model.encode(random_batch([0], seed=0, t=6))
    with pytest.raises(ValueError, match="'frames'"):
        model.process_support_set(torch.zeros(2, 8, C), torch.tensor([0, 1]))
