import pytest
import torch
import torch.nn.functional as F

from fsar.models.registry import MODELS
from fsar.models.ta2n import TA2NClassifier, timewise_cos
from tests.models.stand_ins import StandInBackbone, random_batch

C = 32


def _model(**kw):
    torch.manual_seed(0)
    return TA2NClassifier(StandInBackbone(C), num_frames=8, way=3, **kw)


def test_registered_in_model_registry():
    torch.manual_seed(0)
    model = MODELS.create("ta2n", backbone=StandInBackbone(C), way=3)
    assert isinstance(model, TA2NClassifier) and model.ta2n.dim == (C, C)


def test_end_to_end_train_step_logits_loss_and_gradients():
    model = _model().train()
    support = random_batch([0, 1, 2], seed=1)
    query = random_batch([2, 0, 1, 1, 0, 2], seed=2)
    s, q = model.encode(support), model.encode(query)
    assert s["maps"].shape == (3, C, 8, 4, 4) and s["theta"].shape == (3, 2)
    assert int(model.ta2n.ttm.bn1.num_batches_tracked) == 2  # support and query: two BN batches
    model.process_support_set(s, support.labels)
    logits = model(q)
    assert logits.shape == (6, 3)
    assert float(logits.detach().max()) <= 0 and float(logits.detach().min()) >= -16
    loss = model.loss(logits, query.labels, support=s, query=q, support_batch=support, query_batch=query)
    torch.testing.assert_close(loss, F.cross_entropy(logits, query.labels, reduction="sum"))
    loss.backward()
    assert model.backbone.conv.weight.grad.abs().sum() > 0
    assert model.ta2n.acm.key_proj.weight.grad.abs().sum() > 0
    diag = model.last_diagnostics
    assert diag.offsets.shape == (18, 8, 2) and diag.theta_query.shape == (6, 2)


def test_loss_reduction_mean_and_validation():
    model = _model(loss_reduction="mean")
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(model.loss(logits, labels), F.cross_entropy(logits, labels))
    with pytest.raises(ValueError, match="loss_reduction"):
        _model(loss_reduction="none")


@pytest.mark.parametrize("shot", [1, 2])
def test_logits_are_minus_timewise_cos_of_the_ta2n_module(shot):
    model = _model().eval()
    support = random_batch([c for c in range(3) for _ in range(shot)], seed=3)
    query = random_batch([0, 2], seed=4)
    with torch.no_grad():
        logits = model.episode_logits(model.encode(support), support.labels, model.encode(query))
        model.ta2n.shot = shot
        maps_s = model.backbone(support.frames.flatten(0, 1)).reshape(3 * shot, 8, C, 4, 4).transpose(1, 2)
        maps_q = model.backbone(query.frames.flatten(0, 1)).reshape(2, 8, C, 4, 4).transpose(1, 2)
        pairs, _ = model.ta2n(maps_s, maps_q)
    expected = -timewise_cos(pairs[:, :, :C], pairs[:, :, C:]).T
    torch.testing.assert_close(logits, expected)


def test_encode_in_eval_mode_depends_on_each_clip_alone():
    model = _model().eval()
    batch = random_batch([0, 1, 2], seed=5)
    with torch.no_grad():
        together = model.encode(batch)["maps"]
        alone = model.encode(batch.select([1]))["maps"]
    torch.testing.assert_close(together[1:2], alone)


def test_dist_norm_normalises_logits_over_classes():
    model = _model(dist_norm=True).eval()
    support, query = random_batch([0, 1, 2], seed=6), random_batch([0, 1], seed=7)
    with torch.no_grad():
        logits = model.episode_logits(model.encode(support), support.labels, model.encode(query))
    torch.testing.assert_close(logits.mean(1), torch.zeros(2), atol=1e-5, rtol=0)
    model.dist_norm = False
    with torch.no_grad():
        raw = model.episode_logits(model.encode(support), support.labels, model.encode(query))
    assert (raw.mean(1).abs() > 1e-3).all()
    torch.testing.assert_close(logits, F.layer_norm(raw, (3,), eps=1e-5))


def test_episode_errors_are_clear():
    model = _model(shot=1).eval()
    support = random_batch([0, 0, 1, 1, 2, 2], seed=8)
    with pytest.raises(ValueError, match="shot=1"):
        model.process_support_set(model.encode(support), support.labels)
    with pytest.raises(ValueError, match="class-major"):
        model.process_support_set(model.encode(random_batch([1, 0, 2], seed=9)), torch.tensor([1, 0, 2]))
    fresh = _model()
    with pytest.raises(RuntimeError, match="process_support_set"):
        fresh({"maps": torch.zeros(1, C, 8, 4, 4)})
    with pytest.raises(ValueError, match="T=8"):
        fresh.encode(random_batch([0], seed=1, t=6))
