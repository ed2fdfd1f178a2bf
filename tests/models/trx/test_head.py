"""The vectorised TRX head against the loop form of the equations (float64), plus closed-form checks."""

import pytest
import torch
import torch.nn.functional as F

from fsar.models.trx import TRX, sinusoidal_table, trx_loop_logits

F64 = torch.float64


def make_head(d=12, t=8, cards=(2, 3), out=16, seed=0, **kw):
    torch.manual_seed(seed)
    head = TRX(d, t, cards, out_dim=out, **kw).to(F64).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # LayerNorm affine parameters away from (1, 0) so that they matter
        for transformer in head.transformers:
            for norm in (transformer.norm_k, transformer.norm_v):
                norm.weight.copy_(1 + 0.3 * torch.randn(out, generator=g, dtype=F64))
                norm.bias.copy_(0.2 * torch.randn(out, generator=g, dtype=F64))
    return head


def make_episode(labels, queries, t=8, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.as_tensor(labels)
    support = torch.randn(len(labels), t, d, generator=g, dtype=F64)
    query = torch.randn(queries, t, d, generator=g, dtype=F64)
    way = int(labels.unique().numel())
    query_labels = torch.randint(0, way, (queries,), generator=g)
    return support, labels, query, query_labels


def shuffled(way, shot, seed=0):
    labels = torch.arange(way).repeat_interleave(shot)
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


def used_parameters(head):
    return [(n, p) for n, p in head.named_parameters() if p.requires_grad]


def summed_ce_by_hand(logits, labels):
    return sum(torch.logsumexp(logits[i], 0) - logits[i, labels[i]] for i in range(len(labels)))


CASES = {
    "5way1shot": dict(labels=shuffled(5, 1), queries=6, cards=(2, 3)),
    "5way5shot": dict(labels=shuffled(5, 5, seed=1), queries=10, cards=(2, 3)),
    "3way2shot_cards1234_normv": dict(
        labels=shuffled(3, 2, seed=2), queries=4, cards=(1, 2, 3, 4), norm_v=True
    ),
    "unequal_shots": dict(labels=[2, 0, 2, 1, 2, 0], queries=5, cards=(2, 3)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_logits_loss_and_gradients_equal_the_loop_form(case):
    spec = CASES[case]
    head = make_head(cards=spec["cards"], apply_norm_v=spec.get("norm_v", False))
    support, labels, query, query_labels = make_episode(spec["labels"], spec["queries"])
    inputs = [support.requires_grad_(), query.requires_grad_()]
    params = used_parameters(head)
    assert len(params) == len(spec["cards"]) * (8 if spec.get("norm_v") else 6)

    results = []
    for fn in (head, lambda *a: trx_loop_logits(head, *a)):
        logits = fn(support, labels, query)
        loss = F.cross_entropy(logits, query_labels, reduction="sum")
        grads = torch.autograd.grad(loss, inputs + [p for _, p in params])
        results.append((logits.detach(), loss.detach(), grads))
    (fast, fast_loss, fast_grads), (loop, loop_loss, loop_grads) = results

    way = len(set(torch.as_tensor(spec["labels"]).tolist()))
    assert fast.shape == (spec["queries"], way)
    assert float(fast.max()) < 0  # minus a squared distance
    torch.testing.assert_close(fast, loop, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(fast_loss, loop_loss, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(loop_loss, summed_ce_by_hand(loop, query_labels), rtol=1e-12, atol=1e-12)
    names = ["support", "query"] + [n for n, _ in params]
    for name, a, b in zip(names, fast_grads, loop_grads, strict=True):
        assert b.abs().sum() > 0, name  # every used parameter and both inputs get a gradient
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9, msg=name)


def test_norm_v_exists_but_is_not_applied_by_default():
    head = make_head()
    names = {n for n, _ in head.named_parameters()}
    assert {"transformers.0.norm_v.weight", "transformers.1.norm_v.bias"} <= names
    assert not any(p.requires_grad for n, p in head.named_parameters() if "norm_v" in n)
    support, labels, query, _ = make_episode(shuffled(3, 2), 3)
    before = head(support, labels, query)
    with torch.no_grad():
        for transformer in head.transformers:
            transformer.norm_v.weight.mul_(5.0)
    torch.testing.assert_close(head(support, labels, query), before, rtol=0, atol=0)
    applied = make_head(apply_norm_v=True)
    assert all(p.requires_grad for n, p in applied.named_parameters() if "norm_v" in n)
    assert not torch.allclose(applied(support, labels, query), before)


def test_closed_form_when_attention_is_uniform():
    """Constant keys (k_linear = 0) give uniform attention: the prototype is the mean value of the class."""
    t, d, out = 5, 6, 7
    head = make_head(d=d, t=t, cards=(1,), out=out)
    transformer = head.transformers[0]
    with torch.no_grad():
        transformer.k_linear.weight.zero_()
    support, labels, query, _ = make_episode([1, 0, 1, 0, 1, 2], 4, t=t, d=d, seed=3)
    logits = head(support, labels, query)

    pe = sinusoidal_table(7, d, dtype=F64)[:t]
    w, b = transformer.v_linear.weight.detach(), transformer.v_linear.bias.detach()
    expected = torch.empty(4, 3, dtype=F64)
    for c in range(3):
        frames = (support[labels == c] + pe).reshape(-1, d)  # every frame of every shot of class c
        prototype = (frames @ w.T + b).mean(dim=0)
        for i in range(4):
            values = (query[i] + pe) @ w.T + b
            expected[i, c] = -(values - prototype).square().sum() / t
    # the module's table is float32 (cast to float64 with the module): 1e-9 relative differences
    torch.testing.assert_close(logits.detach(), expected, rtol=1e-8, atol=0)


def test_support_order_and_label_values_do_not_matter():
    head = make_head()
    support, labels, query, _ = make_episode(shuffled(4, 3, seed=5), 5)
    reference = head(support, labels, query)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(head(support[perm], labels[perm], query), reference, rtol=1e-12, atol=1e-12)
    # labels 0..3 renamed 10, 3, 7, 42: columns follow the sorted new labels (3, 7, 10, 42) = old (1, 2, 0, 3)
    renamed = torch.tensor([10, 3, 7, 42])[labels]
    torch.testing.assert_close(
        head(support, renamed, query), reference[:, [1, 2, 0, 3]], rtol=1e-12, atol=1e-12
    )


def test_logits_are_the_mean_over_cardinalities():
    head = make_head(cards=(2, 3))
    support, labels, query, _ = make_episode(shuffled(3, 1), 2)
    prepared = head.prepare_support(support, labels)
    parts = [
        t.logits(emb, prepared.groups, t.embed(query)) for t, emb in zip(head.transformers, prepared.embedded)
    ]
    assert not torch.allclose(parts[0], parts[1])
    torch.testing.assert_close(head(support, labels, query), (parts[0] + parts[1]) / 2)
    assert [t.num_tuples for t in head.transformers] == [28, 56]


def test_train_mode_dropout_is_seeded_and_autocast_keeps_float32_distances():
    head = make_head().float().train()
    support, labels, query, _ = make_episode(shuffled(3, 2), 3)
    support, query = support.float(), query.float()
    torch.manual_seed(3)
    a = head(support, labels, query)
    torch.manual_seed(3)
    b = head(support, labels, query)
    c = head(support, labels, query)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    head.eval()
    full = head(support, labels, query)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = head(support, labels, query)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, full, rtol=0.05, atol=0.05)


def test_errors():
    head = make_head()
    support, labels, query, _ = make_episode(shuffled(3, 1), 2)
    with pytest.raises(ValueError, match=r"T=8, D=12"):
        head(support[:, :7], labels, query)
    with pytest.raises(ValueError, match=r"T=8, D=12"):
        head(support, labels, query[..., :10])
    with pytest.raises(ValueError, match="one support label per support video"):
        head(support, labels[:2], query)
    with pytest.raises(ValueError, match="distinct"):
        TRX(12, 8, (2, 2))
    with pytest.raises(ValueError, match="even feature size"):
        TRX(11, 8)
