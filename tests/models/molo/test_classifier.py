"""MoLoClassifier: the two-step API on layer maps, the reconstruction target from the batch, the loss."""

import pytest
import torch

from fsar.models.molo import MoLo, MoLoClassifier, MoLoOutput, frame_differences, molo_loss
from fsar.models.registry import MODELS
from tests.models.stand_ins import StandInBackbone, random_batch

C = 16
WEIGHTS = {"class_weight": 0.6, "contrastive_weight": 0.05, "recon_weight": 0.05}


def _model(**kw):
    torch.manual_seed(0)
    # the stand-in maps 32 px frames to 4x4 maps: the decoder must upsample x8
    kw = {"upsample": (2, 2, 2), **kw}
    return MoLoClassifier(StandInBackbone(C), num_frames=8, num_classes=6, num_heads=4, mlp_dim=12, **kw)


def test_registered_and_sized_from_the_backbone():
    torch.manual_seed(0)
    model = MODELS.create("molo", backbone=StandInBackbone(C), num_classes=5, mlp_dim=8)
    assert isinstance(model, MoLoClassifier) and isinstance(model.head, MoLo)
    assert model.head.feat_dim == C and model.head.motion_dim == 2 and model.head.upsample == (2, 4, 4)
    with pytest.raises(ValueError, match="feat_dim"):
        MoLoClassifier(torch.nn.Identity())


def test_two_step_api_equals_the_head_on_layer_maps():
    model = _model().eval()
    support = random_batch([2, 0, 1, 1, 0, 2], seed=2)
    query = random_batch([1, 2, 0, 0], seed=3)
    s, q = model.encode(support), model.encode(query)
    assert set(s) == {"appearance", "motion", "class_logits"}  # no decoder input in eval mode
    assert s["appearance"].shape == (6, 9, C) and s["motion"].shape == (6, 8, C)
    model.process_support_set(s, support.labels)
    assert model.way == 3
    logits = model(q)
    maps = [model.backbone(b.frames.flatten(0, 1)).view(-1, 8, C, 4, 4) for b in (support, query)]
    expected = model.head(maps[0], support.labels, maps[1])
    torch.testing.assert_close(logits, expected.logits)
    torch.testing.assert_close(torch.cat([s["class_logits"], q["class_logits"]]), expected.class_logits)
    assert expected.reconstruction.shape == (10, 7, 3, 32, 32)  # the frames' size


@pytest.mark.parametrize("per_batch, per_update", [(4, 4), (1, 1)])
def test_loss_reconstructs_the_batch_frame_differences(per_batch, per_update):
    model = _model(tasks_per_batch=per_batch, tasks_per_update=per_update, **WEIGHTS).train()
    support = random_batch([0, 1, 2], seed=2)
    query = random_batch([2, 0, 1, 1], seed=3)
    support.global_labels = torch.tensor([5, 0, 3])
    query.global_labels = torch.tensor([3, 5, 0, 0])
    s, q = model.encode(support), model.encode(query)
    assert s["differences"].shape == (3, 7, 2, 4, 4)
    logits = model.episode_logits(s, support.labels, q)
    loss = model.loss(logits, query.labels, support=s, query=q, support_batch=support, query_batch=query)
    # the same numbers from the head's parts (decoder on supports then queries in one batch)
    outputs = model.episode_outputs(q)
    out = MoLoOutput(
        **outputs,
        class_logits=torch.cat([s["class_logits"], q["class_logits"]]),
        reconstruction=model.head.decode(torch.cat([s["differences"], q["differences"]])),
    )
    target = frame_differences(torch.cat([support.frames, query.frames]))
    terms = molo_loss(
        out, query.labels, torch.tensor([5, 0, 3, 3, 5, 0, 0]), target, tasks_per_batch=per_batch, **WEIGHTS
    )
    torch.testing.assert_close(loss, terms["total"] * per_update)
    assert model.last_losses["reconstruction"] == pytest.approx(terms["reconstruction"].item())
    loss.backward()
    for p in (model.backbone.conv.weight, model.head.up1.conv.double_conv[0].weight, model.head.scale_motion):
        assert p.grad.abs().sum() > 0


def test_rgb_diff_frames_give_the_same_target():
    """With the rgb_diff modality (frames then their differences) the target is the difference of the RGB part."""
    model = _model().train()
    support = random_batch([0, 1], seed=2)
    query = random_batch([1, 0], seed=3)
    s, q = model.encode(support), model.encode(query)
    logits = model.episode_logits(s, support.labels, q)
    plain = model.loss(logits, query.labels, support=s, query=q, support_batch=support, query_batch=query)
    for b in (support, query):
        diff = torch.zeros_like(b.frames)
        diff[:, 1:] = b.frames[:, 1:] - b.frames[:, :-1]
        b.frames = torch.cat([b.frames, diff], dim=2)
    stacked = model.loss(logits, query.labels, support=s, query=q, support_batch=support, query_batch=query)
    torch.testing.assert_close(plain, stacked)


def test_errors():
    model = _model().train()
    support, query = random_batch([0, 1], seed=2), random_batch([1, 0], seed=3)
    s, q = model.encode(support), model.encode(query)
    logits = model.episode_logits(s, support.labels, q)
    model.eval()
    s_eval = model.encode(support)
    with pytest.raises(ValueError, match="differences"):
        model.loss(logits, query.labels, support=s_eval, query=q, support_batch=support, query_batch=query)
    bad = _model(upsample=(2, 4, 4)).train()
    s, q = bad.encode(support), bad.encode(query)
    with pytest.raises(ValueError, match="upsample"):
        bad.loss(
            bad.episode_logits(s, support.labels, q),
            query.labels,
            support=s,
            query=q,
            support_batch=support,
            query_batch=query,
        )
    with pytest.raises(RuntimeError, match="process_support_set"):
        MoLoClassifier(StandInBackbone(C), mlp_dim=8)(q)


def test_runs_in_float64():
    model = _model().double().train()
    support, query = random_batch([0, 1], seed=2), random_batch([1, 0], seed=3)
    for b in (support, query):
        b.frames = b.frames.double()
    s, q = model.encode(support), model.encode(query)
    logits = model.episode_logits(s, support.labels, q)
    assert logits.dtype == torch.float64
    model.loss(logits, query.labels, support=s, query=q, support_batch=support, query_batch=query).backward()
