"""MoLo head: agreement with the loop form of the equations (float64), label order, frame differences, loss."""

import pytest
import torch
from torch import nn

from fsar.models.hyrsm.loop import loop_cross_entropy
from fsar.models.molo import LOSS_TERMS, MoLo, frame_differences, molo_loss
from fsar.models.molo.loop import molo_loop_output

D, T, NC, HW = 16, 4, 6, 2
FIELDS = (
    "logits",
    "logits_s2q",
    "logits_q2s",
    "logits_s2q_motion",
    "logits_q2s_motion",
    "class_logits",
    "reconstruction",
)


def make_head(seed=0, train=False):
    torch.manual_seed(seed)
    head = MoLo(D, num_frames=T, num_classes=NC, num_heads=2, mlp_dim=12, upsample=(2, 1, 3)).double()
    with torch.no_grad():  # non-trivial norms, biases, scales and BatchNorm running statistics
        for name, p in head.named_parameters():
            if name.endswith("bias") or "norm" in name or "scale" in name or "double_conv.1" in name:
                p.add_(0.2 * torch.randn_like(p))
        for name, b in head.named_buffers():
            if name.endswith("running_mean"):
                b.normal_()
            elif name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
    for module in head.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0  # train mode then differs from eval only by BatchNorm's batch statistics
    return head.train(train)


def episode(labels, queries, seed=1):
    g = torch.Generator().manual_seed(seed)
    support = torch.randn(len(labels), T, D, HW, HW, generator=g, dtype=torch.float64)
    query = torch.randn(queries, T, D, HW, HW, generator=g, dtype=torch.float64)
    return support, torch.tensor(labels), query


def test_frame_differences():
    frames = torch.arange(2 * 3 * 3 * 1 * 2, dtype=torch.float64).reshape(2, 3, 3, 1, 2) ** 2
    diff = frame_differences(frames)
    assert diff.shape == (2, 2, 3, 1, 2)
    assert torch.equal(diff[1, 0], frames[1, 1] - frames[1, 0])
    assert diff[0, 1, 2, 0, 1].item() == 17.0**2 - 11.0**2
    with pytest.raises(ValueError, match="RGB frames"):
        frame_differences(torch.zeros(2, 3, 6, 4, 4))


@pytest.mark.parametrize("train", [False, True])
def test_outputs_match_the_loop_form(train):
    head = make_head(train=train)
    support, labels, query = episode([2, 0, 1, 0, 2, 1], 3)
    out = head(support, labels, query)
    loop = molo_loop_output(head, support, labels, query)
    assert out.logits.shape == (3, 3) and out.class_logits.shape == (9, NC)
    assert out.reconstruction.shape == (9, T - 1, 3, 6 * HW, 6 * HW)
    for name in FIELDS:
        assert torch.allclose(getattr(out, name), loop[name], rtol=1e-10, atol=1e-10), name


def test_losses_and_gradients_match_the_loop_form():
    head = make_head(train=True)
    support, labels, query = episode([1, 0, 2, 2, 0, 1], 3)
    support.requires_grad_(True)
    query.requires_grad_(True)
    query_labels = torch.tensor([2, 1, 0])
    class_labels = torch.tensor([5, 0, 3, 3, 0, 5, 3, 5, 0])
    target = torch.randn(
        9, T - 1, 3, 6 * HW, 6 * HW, dtype=torch.float64, generator=torch.Generator().manual_seed(4)
    )
    weights = {"class_weight": 0.8, "contrastive_weight": 0.05, "recon_weight": 0.1}

    losses = molo_loss(
        head(support, labels, query), query_labels, class_labels, target, tasks_per_batch=4, **weights
    )
    loop = molo_loop_output(head, support, labels, query)
    ce = {
        "few_shot": loop_cross_entropy(loop["logits"], query_labels.tolist()),
        "classification": loop_cross_entropy(loop["class_logits"], class_labels.tolist()),
    }
    for name in ("s2q", "q2s", "s2q_motion", "q2s_motion"):
        ce[name] = loop_cross_entropy(loop["logits_" + name], query_labels.tolist())
    ce["reconstruction"] = ((loop["reconstruction"] - target) ** 2).sum() / target.numel()
    ce["total"] = (
        (ce["few_shot"] + 0.8 * ce["classification"]) / 4
        + 0.05 * (ce["s2q"] + ce["q2s"] + ce["s2q_motion"] + ce["q2s_motion"]) / 4
        + 0.1 * ce["reconstruction"]
    )
    assert tuple(losses) == LOSS_TERMS
    for name in LOSS_TERMS:
        assert losses[name].item() == pytest.approx(ce[name].item(), rel=1e-10), name

    names = ["support", "query"] + [n for n, _ in head.named_parameters()]
    inputs = [support, query] + [p for _, p in head.named_parameters()]
    grads = torch.autograd.grad(losses["total"], inputs)
    loop_grads = torch.autograd.grad(ce["total"], inputs)
    for name, g, lg in zip(names, grads, loop_grads, strict=True):
        assert torch.allclose(g, lg, rtol=1e-8, atol=1e-11), name
        assert g.abs().sum() > 0, f"no gradient reaches {name}"


def test_shuffled_support_labels_permute_columns_in_sorted_order():
    head = make_head()
    support, labels, query = episode([0, 0, 1, 1, 2, 2], 4)
    reference = head(support, labels, query)
    order = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    relabel = torch.tensor([8, 3, 5])
    shuffled = head(support[order], relabel[labels[order]], query)
    columns = torch.argsort(relabel)
    for name in FIELDS[:5]:
        assert torch.allclose(getattr(shuffled, name), getattr(reference, name)[:, columns], atol=1e-12), name
    # class logits and reconstructions follow the input order of the supports
    assert torch.allclose(shuffled.class_logits[:6], reference.class_logits[order], atol=1e-12)
    assert torch.allclose(shuffled.reconstruction[:6], reference.reconstruction[order], atol=1e-12)


def test_runs_in_float32_and_float64_with_dropout():
    head = MoLo(16, num_frames=3, num_classes=4, num_heads=2, mlp_dim=8, upsample=(1, 2, 1)).train()
    support, query = torch.randn(2, 3, 16, 2, 2), torch.randn(2, 3, 16, 2, 2)
    for dtype in (torch.float32, torch.float64):
        head = head.to(dtype)
        out = head(support.to(dtype), torch.tensor([1, 0]), query.to(dtype))
        assert all(getattr(out, name).dtype == dtype for name in FIELDS)
        target = torch.zeros_like(out.reconstruction)
        losses = molo_loss(out, torch.tensor([0, 1]), torch.tensor([0, 1, 2, 3]), target, 0.1, 0.05, 0.1)
        losses["total"].backward()
        assert torch.isfinite(head.motion_reduce.weight.grad).all()
    assert head.eval()(support.double(), torch.tensor([1, 0]), query.double()).reconstruction.shape == (
        4,
        2,
        3,
        4,
        4,
    )


def test_bad_inputs_raise():
    head = make_head()
    support, labels, query = episode([0, 1], 1)
    with pytest.raises(ValueError, match="maps"):
        head(support.mean(dim=(3, 4)), labels, query)
    with pytest.raises(ValueError, match="one label per support video"):
        head(support, labels[:1], query)
    out = head(support, labels, query)
    with pytest.raises(ValueError, match="upsample"):
        molo_loss(out, torch.tensor([0]), torch.tensor([0, 1, 2]), torch.zeros(3, T - 1, 3, 4, 4), 1, 1, 1)
    with pytest.raises(ValueError, match="multiple of 8"):
        MoLo(12)
