"""HyRSM head: agreement with the loop form of the equations (float64), the positional table, label order, loss."""

import math

import pytest
import torch

from fsar.models.hyrsm import HyRSM, hyrsm_loss
from fsar.models.hyrsm.loop import hyrsm_loop_logits, loop_cross_entropy, loop_pe_table
from fsar.models.temporal_attention import PositionalEncoder, hyrsm_pe_table

D, T, NC = 16, 5, 7


def make_head(seed=0, **kw):
    torch.manual_seed(seed)
    head = HyRSM(D, num_frames=T, num_classes=NC, num_heads=4, **kw).double().eval()
    with torch.no_grad():  # non-trivial LayerNorm and bias values
        for name, p in head.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return head


def episode(labels, queries, seed=1):
    g = torch.Generator().manual_seed(seed)
    support = torch.randn(len(labels), T, D, generator=g, dtype=torch.float64)
    query = torch.randn(queries, T, D, generator=g, dtype=torch.float64)
    return support, torch.tensor(labels), query


def test_pe_table_hand_checked_entries():
    table = hyrsm_pe_table(20, 8, dtype=torch.float64)
    assert table.shape == (20, 8)
    assert torch.equal(table[0], torch.tensor([0.0, 1.0] * 4, dtype=torch.float64))
    # column c uses 10000^(2c/D): with D = 8, 10000^(2c/8) = 10^c
    assert table[1, 0].item() == pytest.approx(math.sin(1.0), abs=1e-15)
    assert table[1, 1].item() == pytest.approx(
        math.cos(0.1), abs=1e-15
    )  # not cos(1): the cosine has its own index
    assert table[1, 2].item() == pytest.approx(math.sin(0.01), abs=1e-15)
    assert table[1, 3].item() == pytest.approx(math.cos(0.001), abs=1e-15)
    assert table[7, 4].item() == pytest.approx(math.sin(7e-4), abs=1e-15)
    assert table[19, 7].item() == pytest.approx(math.cos(19e-7), abs=1e-15)
    # the same table as the original's Python loops, at real size, once stored in float32
    assert torch.equal(hyrsm_pe_table(20, 2048), loop_pe_table(20, 2048))


def test_positional_encoder_scales_input_and_table():
    pe = PositionalEncoder(8, pos_a=2.0, pos_b=0.5).eval()
    x = torch.randn(3, 6, 8)
    expected = x * 2.0 + 0.5 * hyrsm_pe_table(20, 8)[:6]
    assert torch.allclose(pe(x), expected, atol=1e-6)
    assert "table" not in pe.state_dict()
    with pytest.raises(ValueError, match="L <= 20"):
        pe(torch.randn(1, 21, 8))


@pytest.mark.parametrize(
    "labels, set_elements",
    [
        ([3, 0, 4, 1, 2], "auto"),  # 1-shot, shuffled: the 1-shot head (per-video elements)
        ([1, 0, 2, 0, 2, 1, 1, 0, 2], "auto"),  # 3-shot, shuffled: the 5-shot head (prototypes)
        ([1, 0, 2, 0, 2, 1], "videos"),  # the 1-shot head at K = 2: mean of per-video distances
        ([0, 1, 1, 2, 2, 2], "auto"),  # unequal shots
    ],
)
def test_logits_losses_and_gradients_match_the_loop_form(labels, set_elements):
    head = make_head(set_elements=set_elements)
    support, support_labels, query = episode(labels, 4)
    support.requires_grad_(True)
    query.requires_grad_(True)
    query_labels = torch.tensor([2, 0, 1, 2])
    class_labels = torch.randint(0, NC, (len(labels) + 4,), generator=torch.Generator().manual_seed(3))

    out = head(support, support_labels, query)
    loop_logits, loop_class = hyrsm_loop_logits(head, support, support_labels, query)
    assert out.logits.shape == (4, len(set(labels))) and out.class_logits.shape == (len(labels) + 4, T, NC)
    assert torch.allclose(out.logits, loop_logits, rtol=1e-10, atol=1e-10)
    assert torch.allclose(out.class_logits, loop_class, rtol=1e-10, atol=1e-10)

    losses = hyrsm_loss(out, query_labels, class_labels, class_weight=0.6, tasks_per_batch=4)
    few = loop_cross_entropy(loop_logits, query_labels.tolist())
    cls = loop_cross_entropy(loop_class.flatten(0, 1), class_labels.repeat_interleave(T).tolist())
    assert set(losses) == {"few_shot", "classification", "total"}
    assert losses["few_shot"].item() == pytest.approx(few.item(), rel=1e-10)
    assert losses["classification"].item() == pytest.approx(cls.item(), rel=1e-10)
    loop_total = (few + 0.6 * cls) / 4
    assert losses["total"].item() == pytest.approx(loop_total.item(), rel=1e-10)

    params = [p for _, p in head.named_parameters()]
    grads = torch.autograd.grad(losses["total"], [support, query, *params])
    loop_grads = torch.autograd.grad(loop_total, [support, query, *params])
    names = ["support", "query"] + [n for n, _ in head.named_parameters()]
    for name, g, lg in zip(names, grads, loop_grads, strict=True):
        assert torch.allclose(g, lg, rtol=1e-8, atol=1e-11), name
        assert g.abs().sum() > 0, f"no gradient reaches {name}"


def test_one_shot_heads_agree():
    """At one shot the per-video and the prototype heads are the same function."""
    videos, protos = make_head(set_elements="videos"), make_head(set_elements="prototypes")
    support, labels, query = episode([2, 0, 1, 4, 3], 3)
    assert torch.allclose(
        videos(support, labels, query).logits, protos(support, labels, query).logits, atol=1e-12
    )


def test_shot_count_chooses_the_head():
    auto, videos, protos = (make_head(set_elements=s) for s in ("auto", "videos", "prototypes"))
    support, labels, query = episode([0, 1, 2, 0, 1, 2], 3)
    logits = auto(support, labels, query).logits
    assert torch.allclose(logits, protos(support, labels, query).logits, atol=1e-12)
    assert not torch.allclose(logits, videos(support, labels, query).logits, atol=1e-6)


def test_shuffled_support_labels_permute_columns_in_sorted_order():
    head = make_head()
    support, labels, query = episode([0, 0, 1, 1, 2, 2, 3, 3], 5)
    reference = head(support, labels, query).logits
    order = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    relabel = torch.tensor([7, 2, 9, 4])  # class k becomes label relabel[k]
    shuffled = head(support[order], relabel[labels[order]], query).logits
    columns = torch.argsort(relabel)  # sorted-label order of the new labels
    assert torch.allclose(shuffled, reference[:, columns], atol=1e-12)


def test_bad_inputs_raise():
    head = make_head()
    support, labels, query = episode([0, 1], 2)
    with pytest.raises(ValueError, match="one label per support video"):
        head(support, labels[:1], query)
    with pytest.raises(ValueError, match=r"T=5"):
        head(support[:, :4], labels, query)
    with pytest.raises(ValueError, match="integers"):
        head(support, labels.double(), query)
    out = head(support, labels, query)
    with pytest.raises(ValueError, match=r"lie in \[0, 7\)"):
        hyrsm_loss(out, torch.tensor([0, 1]), torch.tensor([0, 1, 2, 7]), class_weight=1.0)


def test_train_mode_dropout_and_float32():
    head = HyRSM(32, num_frames=8, num_classes=4).train()
    support, query = torch.randn(10, 8, 32), torch.randn(5, 8, 32)
    out = head(support, torch.arange(5).repeat(2), query)
    assert out.logits.shape == (5, 5) and out.logits.dtype == torch.float32
    loss = hyrsm_loss(out, torch.arange(5), torch.arange(15) % 4, class_weight=0.15)["total"]
    loss.backward()
    assert torch.isfinite(head.layer2[0].weight.grad).all()
