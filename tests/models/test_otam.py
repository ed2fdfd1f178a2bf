import pytest
import torch

from fsar.models.otam import OTAM, frame_cosine_distance
from fsar.models.protonet import ProtoNet
from fsar.models.soft_dtw import soft_dtw
from tests.models.test_protonet import clips, reversed_in_time, tiny_backbone


def episode(model, way=3, shot=1, queries=2, frames=5, seed=0):
    support = clips(way * shot, frames=frames, seed=seed, labels=[c for c in range(way) for _ in range(shot)])
    query = clips(queries, frames=frames, seed=seed + 100)
    model.process_support_set(model.encode(support), support.labels)
    return support, query


def test_logits_shape_and_equal_to_pairwise_soft_dtw():
    model = OTAM(tiny_backbone(), gamma=0.1).eval()
    support, query = episode(model, way=3, shot=2, queries=4)
    q = model.encode(query)
    assert q.shape == (4, 5, 16)
    logits = model(q)
    assert logits.shape == (4, 3) and model.way == 3
    s = model.encode(support).reshape(3, 2, 5, 16).mean(1)
    for i in range(4):
        for c in range(3):
            d = frame_cosine_distance(q[i : i + 1], s[c : c + 1])[0, 0]
            manual = 0.5 * (soft_dtw(d, 0.1) + soft_dtw(d.T, 0.1))
            assert torch.allclose(logits[i, c], -manual, atol=1e-5)


def test_frame_cosine_distance():
    q = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    s = torch.tensor([[[3.0, 0.0], [1.0, 1.0], [0.0, -1.0]]])
    expected = 1 - torch.tensor([[1.0, 2**-0.5, 0.0], [0.0, 2**-0.5, -1.0]])
    assert torch.allclose(frame_cosine_distance(q, s)[0, 0], expected)


def test_order_matters_unlike_protonet():
    backbone = tiny_backbone(seed=1)
    support = clips(3, frames=6, seed=7, labels=[0, 1, 2])
    query = clips(1, frames=6, seed=7)  # identical to the class-0 support clip
    backward_query = reversed_in_time(query)

    otam = OTAM(backbone, gamma=0.0).eval()
    otam.process_support_set(otam.encode(support), support.labels)
    forward_logits = otam(otam.encode(query))
    assert forward_logits[0, 0].abs() < 1e-5  # perfect alignment along the diagonal: distance 0
    assert forward_logits.argmax().item() == 0
    reversed_logits = otam(otam.encode(backward_query))
    assert reversed_logits[0, 0] < forward_logits[0, 0] - 0.1

    proto = ProtoNet(backbone).eval()
    proto.process_support_set(proto.encode(support), support.labels)
    assert torch.allclose(proto(proto.encode(query)), proto(proto.encode(backward_query)), atol=1e-5)


def test_shot_modes_agree_at_one_shot_and_differ_at_two():
    backbone = tiny_backbone(seed=2)
    for shot, same in ((1, True), (2, False)):
        a, b = OTAM(backbone, shots="mean_features").eval(), OTAM(backbone, shots="mean_distance").eval()
        _, query = episode(a, shot=shot, seed=3)
        episode(b, shot=shot, seed=3)
        la, lb = a(a.encode(query)), b(b.encode(query))
        assert torch.allclose(la, lb, atol=1e-6) == same


def test_moves_direction_and_temperature_options():
    backbone = tiny_backbone(seed=3)
    logits = {}
    for kw in ({}, {"moves": "dtw"}, {"bidirectional": False}, {"temperature": 0.5}):
        model = OTAM(backbone, **kw).eval()
        _, query = episode(model, seed=4)
        logits[str(kw)] = model(model.encode(query))
    base = logits["{}"]
    assert not torch.allclose(base, logits["{'moves': 'dtw'}"])
    assert not torch.allclose(base, logits["{'bidirectional': False}"])
    assert torch.allclose(logits["{'temperature': 0.5}"], 2 * base)


def test_training_step_has_finite_gradients():
    backbone = tiny_backbone(seed=4)
    model = OTAM(backbone)
    support, query = episode(model, way=2, shot=2, seed=5)
    query.labels = torch.tensor([1, 0])
    s, q = model.encode(support), model.encode(query)
    logits = model.episode_logits(s, support.labels, q)
    model.loss(logits, query.labels).backward()
    g = backbone[0].weight.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0


def test_errors():
    model = OTAM()
    feats = torch.randn(4, 3, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(RuntimeError, match="process_support_set"):
        model(feats)
    with pytest.raises(ValueError, match="class-major"):
        model.process_support_set(feats, torch.tensor([1, 1, 0, 0]))
    with pytest.raises(ValueError, match=r"\[videos, T, C\]"):
        model.process_support_set(feats[:, 0], torch.tensor([0, 0, 1, 1]))
    model.process_support_set(feats, torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match=r"\[Q, T, 8\]"):
        model(torch.zeros(2, 3, 4))
    for bad in ({"moves": "any"}, {"shots": "max"}, {"gamma": -1}, {"temperature": 0}):
        with pytest.raises(ValueError):
            OTAM(**bad)


def test_mean_distance_shots_average_the_per_shot_alignments():
    """shots="mean_distance": the class distance is the mean over the shots of each shot's OTAM distance."""
    model = OTAM(tiny_backbone(), gamma=0.1, shots="mean_distance").eval()
    support, query = episode(model, way=2, shot=3, queries=2)
    q = model.encode(query)
    logits = model(q)
    s = model.encode(support).reshape(2, 3, 5, 16)
    for i in range(2):
        for c in range(2):
            per_shot = []
            for k in range(3):
                d = frame_cosine_distance(q[i : i + 1], s[c, k : k + 1])[0, 0]
                per_shot.append(0.5 * (soft_dtw(d, 0.1) + soft_dtw(d.T, 0.1)))
            assert torch.allclose(logits[i, c], -torch.stack(per_shot).mean(), atol=1e-5)
            assert not torch.allclose(-torch.stack(per_shot).mean(), -torch.stack(per_shot).min(), atol=1e-4)
