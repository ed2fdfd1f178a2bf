import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fsar.data.batch import ClipBatch
from fsar.models.protonet import ProtoNet


def tiny_backbone(seed: int = 0, channels: int = 16) -> nn.Module:
    """conv3x3 + ReLU with weights drawn from a seeded generator: frames [N,3,H,W] -> [N,channels,H-2,W-2]."""
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, channels, 3), nn.ReLU())
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return net


def clips(num: int, frames: int = 4, size: int = 8, seed: int = 0, labels=None) -> ClipBatch:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(num, frames, 3, size, size, generator=gen)
    lab = torch.as_tensor(labels if labels is not None else [0] * num)
    return ClipBatch(frames=x, labels=lab, global_labels=lab.clone(), video_ids=[f"v{i}" for i in range(num)])


def reversed_in_time(batch: ClipBatch) -> ClipBatch:
    return ClipBatch(
        frames=batch.frames.flip(1),
        labels=batch.labels,
        global_labels=batch.global_labels,
        video_ids=list(batch.video_ids),
    )


def constant_colour_clips(colours):
    """Clips whose frame t is a constant image of colour colours[b][t]: with an identity backbone the pooled
    feature of a frame is its colour."""
    c = torch.tensor(colours, dtype=torch.float32)  # [B, T, 3]
    frames = c[..., None, None].expand(*c.shape, 4, 4).clone()
    b = c.shape[0]
    return ClipBatch(frames=frames, labels=torch.zeros(b, dtype=torch.long), global_labels=torch.zeros(b))


SUPPORT = [  # 2-way 2-shot, class-major; 2 frames each
    [[1, 0, 0], [1, 0, 0]],
    [[3, 0, 0], [1, 2, 0]],
    [[0, 1, 0], [0, 1, 0]],
    [[0, 0, 2], [0, 2, 2]],
]
QUERY = [[[1, 1, 0], [1, 1, 0]], [[0, 0, 1], [0, 0, 3]]]
LABELS = torch.tensor([0, 0, 1, 1])


def expected_prototypes():
    v = np.array(SUPPORT, dtype=float).mean(axis=1)  # video = mean over frames
    return v.reshape(2, 2, 3).mean(axis=1), np.array(QUERY, dtype=float).mean(axis=1)


def test_cosine_logits_golden():
    model = ProtoNet(nn.Identity(), metric="cosine")
    model.process_support_set(model.encode(constant_colour_clips(SUPPORT)), LABELS)
    logits = model(model.encode(constant_colour_clips(QUERY)))
    protos, queries = expected_prototypes()
    cos = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (
        protos / np.linalg.norm(protos, axis=1, keepdims=True)
    ).T
    assert logits.shape == (2, 2) and model.way == 2
    np.testing.assert_allclose(logits.detach().numpy(), 10 * cos, rtol=1e-6)
    assert isinstance(model.scale, nn.Parameter) and model.scale.item() == 10


def test_l2_logits_golden_and_fixed_scale():
    model = ProtoNet(nn.Identity(), metric="l2")
    model.process_support_set(model.encode(constant_colour_clips(SUPPORT)), LABELS)
    logits = model(model.encode(constant_colour_clips(QUERY)))
    protos, queries = expected_prototypes()
    sq = ((queries[:, None] - protos[None]) ** 2).sum(-1)
    np.testing.assert_allclose(logits.numpy(), -sq, rtol=1e-6)
    assert "scale" not in dict(model.named_parameters()) and "scale" in dict(model.named_buffers())
    assert ProtoNet(metric="l2", scale=0.5, learn_scale=True).scale.requires_grad


def test_ignores_frame_order():
    model = ProtoNet(tiny_backbone()).eval()
    support = clips(6, labels=[0, 0, 1, 1, 2, 2], seed=1)
    query = clips(3, seed=2)
    model.process_support_set(model.encode(support), support.labels)
    a = model(model.encode(query))
    b = model(model.encode(reversed_in_time(query)))
    assert a.shape == (3, 3)
    assert torch.allclose(a, b, atol=1e-5)


def test_loss_backpropagates_to_backbone_and_scale():
    backbone = tiny_backbone()
    model = ProtoNet(backbone)
    support = clips(4, labels=[0, 0, 1, 1], seed=3)
    query = clips(2, seed=4, labels=[1, 0])
    s, q = model.encode(support), model.encode(query)
    logits = model.episode_logits(s, support.labels, q)
    loss = model.loss(logits, query.labels, support=s, query=q, support_batch=support, query_batch=query)
    assert torch.allclose(loss, F.cross_entropy(logits, query.labels))
    loss.backward()
    assert model.scale.grad is not None and backbone[0].weight.grad.abs().sum() > 0


def test_encode_depends_on_each_clip_alone():
    model = ProtoNet(tiny_backbone()).eval()
    batch = clips(3, seed=5)
    assert torch.allclose(model.encode(batch)[1], model.encode(batch.select([1]))[0], atol=1e-6)


def test_errors():
    model = ProtoNet(nn.Identity())
    feats = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(RuntimeError, match="process_support_set"):
        model(feats)
    with pytest.raises(ValueError, match="class-major"):
        model.process_support_set(feats, torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="3 videos but there are 4 labels"):
        model.process_support_set(feats[:3], torch.tensor([0, 0, 1, 1]))
    model.process_support_set(feats, torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match=r"\[Q, 3\]"):
        model(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="metric"):
        ProtoNet(metric="manhattan")
    with pytest.raises(ValueError, match=r"\[B, T, 3, H, W\]"):
        model.encode(
            ClipBatch(frames=torch.zeros(2, 3, 4, 4), labels=torch.zeros(2), global_labels=torch.zeros(2))
        )


def test_metric_runs_in_fp32_under_bf16_autocast():
    from fsar.models.protonet import ProtoNet

    torch.manual_seed(0)
    model = ProtoNet()
    support, query = torch.randn(5, 64), torch.randn(7, 64)
    model.process_support_set(support, torch.arange(5))
    ref = model(query)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.process_support_set(support.bfloat16(), torch.arange(5))
        logits = model(query.bfloat16())
    assert logits.dtype == torch.float32
    # only the bf16 rounding of the inputs remains (cosines to ~1e-2 of 10), not a bf16 matmul of the metric
    assert torch.allclose(logits, ref, atol=0.1)
