"""TATsClassifier: the FewShotClassifier API on a tiny patchifier backbone and a 3-way 1-shot episode."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from fsar.data.batch import ClipBatch
from fsar.models.tats import TATsClassifier
from fsar.models.tats.head import few_shot_logits, frame_descriptors
from fsar.models.tats.losses import tats_loss

T, N, D, G, PATCH = 4, 6, 16, 4, 4


class Patchify(nn.Module):
    """Frames [N, 3, 16, 16] -> patch grid [N, D, 4, 4]."""

    out_channels = D

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, D, PATCH, stride=PATCH)
        with torch.no_grad():
            gen = torch.Generator().manual_seed(0)
            self.proj.weight.copy_(torch.randn(self.proj.weight.shape, generator=gen) * 0.2)
            self.proj.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def make_batch(labels: list[int], global_labels: list[int], seed: int) -> ClipBatch:
    gen = torch.Generator().manual_seed(seed)
    b = len(labels)
    query_frame = torch.randint(0, T - 1, (b, N), generator=gen)
    return ClipBatch(
        frames=torch.randn(b, T, 3, G * PATCH, G * PATCH, generator=gen),
        labels=torch.tensor(labels),
        global_labels=torch.tensor(global_labels),
        video_ids=[f"v{seed}_{i}" for i in range(b)],
        tracks=torch.rand(b, T, N, 2, generator=gen) * 2 - 1,
        query_mask=torch.arange(T).view(1, T, 1) >= query_frame.view(b, 1, N),
        visibility=torch.rand(b, T, N, generator=gen) > 0.2,
    )


def make_model(**kwargs) -> TATsClassifier:
    defaults = dict(num_frames=T, num_points=N, num_classes=7, num_heads=4, grid_size=G)
    defaults.update(kwargs)
    return TATsClassifier(Patchify(), **defaults)


@pytest.fixture
def episode():
    support = make_batch([0, 1, 2], [3, 0, 6], seed=1)
    query = make_batch([2, 0, 1, 1], [6, 3, 0, 0], seed=2)
    return support, query


def test_episode_shapes_loss_and_frozen_backbone(episode):
    support_batch, query_batch = episode
    model = make_model().train()
    assert not model.backbone.training and not any(p.requires_grad for p in model.backbone.parameters())
    support, query = model.encode(support_batch), model.encode(query_batch)
    assert support["tokens"].shape == (3, T, N, D) and support["cls_logits"].shape == (3, 7)
    assert torch.equal(support["point_mask"], support_batch.query_mask)
    model.process_support_set(support, support_batch.labels)
    logits = model(query)
    assert logits.shape == (4, 3) and model.way == 3
    loss = model.loss(
        logits,
        query_batch.labels,
        support=support,
        query=query,
        support_batch=support_batch,
        query_batch=query_batch,
    )
    expected = tats_loss(
        torch.cat([support["cls_logits"], query["cls_logits"]]),
        torch.tensor([3, 0, 6, 6, 3, 0, 0]),
        few_shot_logits(frame_descriptors(query["tokens"]), frame_descriptors(support["tokens"])),
        query_batch.labels,
    )
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    loss.backward()
    assert model.tats.space_pos.grad.abs().sum() > 0 and model.tats.head.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.parameters())


def test_trainable_backbone_gets_gradients(episode):
    support_batch, query_batch = episode
    model = make_model(freeze_backbone=False).train()
    assert model.backbone.training
    support, query = model.encode(support_batch), model.encode(query_batch)
    model.process_support_set(support, support_batch.labels)
    model(query).sum().backward()
    assert model.backbone.proj.weight.grad.abs().sum() > 0


def test_eval_encoding_depends_on_each_clip_alone(episode):
    _, query_batch = episode
    model = make_model().eval()
    with torch.no_grad():
        whole = model.encode(query_batch)
        single = model.encode(query_batch.select([2]))
    assert torch.allclose(whole["tokens"][2:3], single["tokens"], atol=1e-6)
    assert torch.allclose(whole["cls_logits"][2:3], single["cls_logits"], atol=1e-6)


def test_prototypes_average_shots_and_predict_their_own_videos():
    support_batch = make_batch([0, 0, 1, 1], [0, 0, 1, 1], seed=3)
    model = make_model().eval()
    with torch.no_grad():
        support = model.encode(support_batch)
        model.process_support_set(support, support_batch.labels)
        protos = support["tokens"].reshape(2, 2, T, N, D).mean(1)
        assert torch.allclose(model._prototype_frames, frame_descriptors(protos), atol=1e-6)
        # a 1-shot episode classifies its own support videos correctly (distance to itself is the smallest)
        one_shot = support_batch.select([0, 2])
        feats = model.encode(one_shot)
        model.process_support_set(feats, torch.tensor([0, 1]))
        assert model(feats).argmax(1).tolist() == [0, 1]


def test_existing_point_average_and_occlusion_masking(episode):
    support_batch, query_batch = episode
    model = make_model(point_average="existing", mask_occluded=True).eval()
    with torch.no_grad():
        support, query = model.encode(support_batch), model.encode(query_batch)
        assert torch.equal(support["point_mask"], support_batch.query_mask & support_batch.visibility)
        model.process_support_set(support, support_batch.labels)
        logits = model(query)
        expected = few_shot_logits(
            frame_descriptors(query["tokens"], query["point_mask"], "existing"),
            frame_descriptors(support["tokens"], support["point_mask"], "existing"),
        )
    assert torch.allclose(logits, expected, atol=1e-6)


def test_clear_errors(episode):
    support_batch, query_batch = episode
    model = make_model()
    no_tracks = ClipBatch(
        frames=support_batch.frames, labels=support_batch.labels, global_labels=support_batch.global_labels
    )
    with pytest.raises(ValueError, match="no tracks, query_mask"):
        model.encode(no_tracks)
    with pytest.raises(RuntimeError, match="process_support_set"):
        make_model()(model.encode(query_batch))
    with pytest.raises(ValueError, match="class-major"):
        model.process_support_set(model.encode(support_batch), torch.tensor([1, 0, 2]))
    with pytest.raises(ValueError, match="needs the context"):
        model.loss(torch.zeros(4, 3), query_batch.labels)
    with pytest.raises(ValueError, match="grid_size=5"):
        make_model(grid_size=5).encode(support_batch)
    with pytest.raises(ValueError, match="feat_dim"):
        TATsClassifier(nn.Identity(), num_frames=T)


def test_registered_as_tats_with_an_inspectable_signature():
    from fsar.models import MODELS

    model = MODELS.create(
        "tats", backbone=Patchify(), num_frames=T, num_points=N, num_classes=7, num_heads=4, grid_size=G
    )
    assert isinstance(model, TATsClassifier) and model.tats.time_pos.shape == (1, T, D)
    # the engine passes num_frames / num_classes only to methods whose signature names them
    params = inspect.signature(TATsClassifier).parameters
    assert {"num_frames", "num_classes", "num_points", "grid_size"} <= set(params)


def test_param_groups_for_the_engine():
    model = make_model()
    faithful = model.param_groups(weight_decay=0.5)
    assert faithful[1]["params"] == [model.tats.cls_token]
    n_trainable = sum(1 for p in model.parameters() if p.requires_grad)
    assert len(faithful[0]["params"]) + 1 == n_trainable  # the frozen backbone is left out
    modern = make_model(faithful_weight_decay=False).param_groups(weight_decay=0.05)
    assert modern[0]["weight_decay"] == 0.05 and len(modern[1]["params"]) > 1
