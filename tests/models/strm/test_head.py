"""The STRM head against a loop form of the equations of shared/specs/strm.md, written here (float64), plus the
original's quirks, dropout, trainability and errors."""

import math
from itertools import combinations

import pytest
import torch

from fsar.models.strm import STRM, patch_tokens, strm_loss
from fsar.models.trx import sinusoidal_table, trx_loop_logits

F64 = torch.float64
D, T, OUT = 12, 8, 16


def make_head(cards=(2,), seed=0, gamma=0.7, **kw):
    torch.manual_seed(seed)
    head = STRM(D, T, cards, out_dim=OUT, **kw).to(F64).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        head.patch_attention.gamma.fill_(gamma)  # open the gate (0 at init) so that the attention matters
        for t in head.trx.transformers:  # LayerNorm affine parameters away from (1, 0)
            t.norm_k.weight.copy_(1 + 0.3 * torch.randn(OUT, generator=g, dtype=F64))
            t.norm_k.bias.copy_(0.2 * torch.randn(OUT, generator=g, dtype=F64))
    return head


def make_episode(labels, queries, size=(7, 7), query_size=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.as_tensor(labels)
    support = torch.randn(len(labels), T, D, *size, generator=g, dtype=F64)
    query = torch.randn(queries, T, D, *(query_size or size), generator=g, dtype=F64)
    way = int(labels.unique().numel())
    return support, labels, query, torch.randint(0, way, (queries,), generator=g)


def shuffled(way, shot, seed=0):
    labels = torch.arange(way).repeat_interleave(shot)
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


# ---- the loop form ---------------------------------------------------------------------------------------------
def loop_pool(maps):
    """[..., D, H, W] -> [..., 16, D]: max over PyTorch's adaptive windows floor(i·H/4) .. ceil((i+1)·H/4),
    patches row-major."""
    h, w = maps.shape[-2:]
    tokens = []
    for r in range(4):
        for c in range(4):
            rows = slice(math.floor(r * h / 4), math.ceil((r + 1) * h / 4))
            cols = slice(math.floor(c * w / 4), math.ceil((c + 1) * w / 4))
            tokens.append(maps[..., rows, cols].amax(dim=(-2, -1)))
    return torch.stack(tokens, dim=-2)


def linear(layer, x):
    return x @ layer.weight.T + layer.bias


def loop_patch_enriched(head, maps):
    """Per video (its frames side by side): pool, PE, unscaled self-attention with gate, bottleneck MLP, mean -> [V, T, D]."""
    pa = head.patch_attention
    pe16 = sinusoidal_table(24, D).to(F64)[:16]
    tokens = loop_pool(maps)  # [V, T, 16, D]
    videos = []
    for video in tokens:  # [T, 16, D]: each frame's 16 tokens attend among themselves
        x = video + pe16
        q, k, v = linear(pa.query_proj, x), linear(pa.key_proj, x), linear(pa.value_conv, x)
        attention = torch.softmax(q @ k.transpose(1, 2), dim=2)  # [T, 16 queries, 16 keys], no 1/sqrt(D)
        y = pa.gamma * (attention @ v) + x
        hidden = torch.relu(linear(pa.mlp.hid_fc, torch.relu(linear(pa.mlp.inp_fc, y))))
        videos.append((linear(pa.mlp.out_fc, hidden) + y).mean(dim=1))
    return torch.stack(videos)


def loop_frame_mixed(head, patch):
    """Per video: PE over frames, token MLP per channel (over time), channel MLP per frame."""
    fm = head.frame_mixer
    pe = sinusoidal_table(12, D).to(F64)[:T]
    videos = []
    for video in patch:
        x = video + pe
        mixed = torch.stack(
            [linear(fm.token_mlp.out_fc, torch.relu(linear(fm.token_mlp.inp_fc, x[:, d]))) for d in range(D)],
            dim=1,
        )
        y = mixed + x
        videos.append(
            torch.stack(
                [linear(fm.channel_mlp.out_fc, torch.relu(linear(fm.channel_mlp.inp_fc, f))) + f for f in y]
            )
        )
    return torch.stack(videos)


def loop_patch_logits(head, s_patch, labels, q_patch):
    """Per cardinality: tuple concatenation -> clsW -> ReLU; per class and query: mean over query tuples of the
    minimum Euclidean distance to any tuple of any shot of the class; negated; mean over cardinalities."""
    labels = [int(v) for v in labels.tolist()]
    classes = sorted(set(labels))
    per_card = []
    for module in head.similarity:
        tuples = list(combinations(range(T), module.cardinality))

        def embed(video, module=module, tuples=tuples):
            return [torch.relu(linear(module.clsW, torch.cat([video[f] for f in t]))) for t in tuples]

        s_emb = [embed(v) for v in s_patch]
        logits = torch.zeros(len(q_patch), len(classes), dtype=F64)
        for qi, video in enumerate(q_patch):
            q_emb = embed(video)
            for ci, c in enumerate(classes):
                class_tuples = [e for si, lab in enumerate(labels) if lab == c for e in s_emb[si]]
                class_tuples = torch.stack(class_tuples)
                nearest = [(a - class_tuples).square().sum(dim=1).sqrt().min() for a in q_emb]
                logits[qi, ci] = -torch.stack(nearest).mean()
        per_card.append(logits)
    return torch.stack(per_card).mean(dim=0)


def loop_forward(head, support, labels, query):
    s_patch, q_patch = loop_patch_enriched(head, support), loop_patch_enriched(head, query)
    s_frame, q_frame = loop_frame_mixed(head, s_patch), loop_frame_mixed(head, q_patch)
    frame_logits = trx_loop_logits(head.trx, s_frame, labels, q_frame)  # TRX's own loop form (and its PE)
    patch_logits = loop_patch_logits(head, s_patch, labels, q_patch)
    return frame_logits, patch_logits


def summed_ce_by_hand(logits, labels):
    return sum(torch.logsumexp(logits[i], 0) - logits[i, labels[i]] for i in range(len(labels)))


CASES = {
    "5way1shot_pairs": dict(labels=shuffled(5, 1), queries=5, cards=(2,)),
    "5way5shot_pairs_shuffled": dict(labels=shuffled(5, 5, seed=1), queries=3, cards=(2,)),
    "3way2shot_cards123_clsw_trained": dict(
        labels=shuffled(3, 2, seed=2), queries=3, cards=(1, 2, 3), clsw=True
    ),
    "unequal_shots_other_map_sizes": dict(labels=[2, 0, 2, 1, 2, 0], queries=4, cards=(2, 3), size=(5, 6)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_logits_loss_terms_and_gradients_equal_the_loop_form(case):
    spec = CASES[case]
    head = make_head(cards=spec["cards"], train_clsw=spec.get("clsw", False))
    support, labels, query, query_labels = make_episode(
        spec["labels"], spec["queries"], size=spec.get("size", (7, 7))
    )
    inputs = [support.requires_grad_(), query.requires_grad_()]
    params = [(n, p) for n, p in head.named_parameters() if p.requires_grad]
    frozen = sorted(n for n, p in head.named_parameters() if not p.requires_grad)
    expected_frozen = [
        f"trx.transformers.{i}.norm_v.{k}" for i in range(len(spec["cards"])) for k in ("bias", "weight")
    ]
    if not spec.get("clsw"):
        expected_frozen += [
            f"similarity.{i}.clsW.{k}" for i in range(len(spec["cards"])) for k in ("bias", "weight")
        ]
    assert frozen == sorted(expected_frozen)

    out = head(support, labels, query)
    loop_frame, loop_patch = loop_forward(head, support, labels, query)
    way = len(set(torch.as_tensor(spec["labels"]).tolist()))
    assert out.logits.shape == out.frame_logits.shape == out.patch_logits.shape == (spec["queries"], way)
    assert out.patch_logits.max().item() < 0 and out.frame_logits.max().item() < 0
    torch.testing.assert_close(out.frame_logits, loop_frame, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(out.patch_logits, loop_patch, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(out.logits, loop_frame + 0.1 * loop_patch, rtol=1e-9, atol=1e-10)

    frame_ce = summed_ce_by_hand(loop_frame, query_labels)
    patch_ce = summed_ce_by_hand(loop_patch, query_labels)
    loss = strm_loss(out, query_labels)
    loop_loss = frame_ce + 0.1 * patch_ce
    torch.testing.assert_close(loss, loop_loss, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(
        strm_loss(out, query_labels, patch_weight=0.0), frame_ce, rtol=1e-9, atol=1e-10
    )

    wrt = inputs + [p for _, p in params]
    fast_grads = torch.autograd.grad(loss, wrt)
    loop_grads = torch.autograd.grad(loop_loss, wrt)
    names = ["support", "query"] + [n for n, _ in params]
    for name, a, b in zip(names, fast_grads, loop_grads, strict=True):
        assert b.abs().sum() > 0, name  # every trainable parameter and both inputs get a gradient
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10, msg=name)


def test_the_patch_branch_alone_moves_patch_logits_gradients():
    """patch_logits reach the enrichment and, through a frozen clsW, the inputs; frame_logits do not reach clsW."""
    head = make_head(train_clsw=True)
    support, labels, query, query_labels = make_episode(shuffled(3, 1), 3)
    out = head(support.requires_grad_(), labels, query)
    clsw = head.similarity[0].clsW.weight
    (g_clsw_frame,) = torch.autograd.grad(out.frame_logits.sum(), [clsw], allow_unused=True)
    assert g_clsw_frame is None
    g_clsw, g_support = torch.autograd.grad(out.patch_logits.sum(), [clsw, support])
    assert g_clsw.abs().sum() > 0 and g_support.abs().sum() > 0


def test_adaptive_max_pool_windows_on_a_7x7_map():
    """Windows {0-1, 1-3, 3-5, 5-6} per axis: on a map counting 0..48 row-major each patch's max is its
    window's bottom-right cell."""
    maps = torch.arange(49.0).view(1, 1, 7, 7)
    ends = [1, 3, 5, 6]
    expected = torch.tensor([7.0 * r + c for r in ends for c in ends]).view(1, 16, 1)
    assert torch.equal(patch_tokens(maps), expected)
    assert torch.equal(loop_pool(maps), expected)
    odd = torch.randn(3, 2, 5, 9, generator=torch.Generator().manual_seed(0))
    assert torch.equal(patch_tokens(odd), loop_pool(odd))
    with pytest.raises(ValueError, match="H, W >= 4"):
        patch_tokens(torch.zeros(2, 3, 3, 7))


def test_patch_attention_scores_are_not_scaled():
    """Quirk Q4: softmax(q kᵀ), not softmax(q kᵀ / sqrt(D))."""
    head = make_head(gamma=1.0)
    pa = head.patch_attention
    tokens = torch.randn(3, 16, D, generator=torch.Generator().manual_seed(4), dtype=F64) * 2
    x = tokens + sinusoidal_table(24, D).to(F64)[:16]
    q, k, v = linear(pa.query_proj, x), linear(pa.key_proj, x), linear(pa.value_conv, x)

    def enriched(scale):
        y = torch.softmax(q @ k.transpose(1, 2) * scale, dim=-1) @ v + x
        return pa.mlp(y).mean(dim=1)

    out = pa(tokens)
    torch.testing.assert_close(out, enriched(1.0), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(out, enriched(1 / math.sqrt(D)), atol=1e-3)


def test_gate_starts_closed():
    """gamma = 0 at initialisation: the attention adds nothing and its projections get no gradient."""
    torch.manual_seed(0)
    head = STRM(D, T, (2,), out_dim=OUT).to(F64).eval()
    assert head.patch_attention.gamma.item() == 0.0
    support, labels, query, query_labels = make_episode(shuffled(3, 1), 3)
    out = head(support, labels, query)
    grads = torch.autograd.grad(
        strm_loss(out, query_labels), [head.patch_attention.query_proj.weight, head.patch_attention.gamma]
    )
    assert grads[0].abs().sum() == 0 and grads[1].abs().sum() > 0


def test_frames_get_the_positional_encoding_twice():
    """Quirk Q5: with the frame mixer's MLPs zeroed it adds only its PE, and TRX adds its own on top: TRX sees
    patch + 2·PE."""
    head = make_head()
    with torch.no_grad():
        for layer in (*head.frame_mixer.token_mlp.children(), *head.frame_mixer.channel_mlp.children()):
            layer.weight.zero_()
            layer.bias.zero_()
    support, labels, query, _ = make_episode(shuffled(3, 2), 3)
    out = head(support, labels, query)
    pe = sinusoidal_table(12, D).to(F64)[:T]
    s_patch, q_patch = head.encode(support).patch, head.encode(query).patch
    once = trx_loop_logits(head.trx, s_patch, labels, q_patch)  # TRX's own PE only
    twice = trx_loop_logits(head.trx, s_patch + pe, labels, q_patch + pe)
    torch.testing.assert_close(out.frame_logits, twice, rtol=1e-9, atol=1e-10)
    assert not torch.allclose(out.frame_logits, once, atol=1e-4)


def test_support_order_and_label_values_do_not_matter():
    head = make_head(cards=(2, 3))
    support, labels, query, _ = make_episode(shuffled(4, 2, seed=5), 3)
    ref = head(support, labels, query)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(9))
    out = head(support[perm], labels[perm], query)
    for name in ("frame_logits", "patch_logits", "logits"):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name), rtol=1e-12, atol=1e-12)
    renamed = torch.tensor([10, 3, 7, 42])[labels]  # sorted new labels 3, 7, 10, 42 = old 1, 2, 0, 3
    out = head(support, renamed, query)
    for name in ("frame_logits", "patch_logits", "logits"):
        torch.testing.assert_close(
            getattr(out, name), getattr(ref, name)[:, [1, 2, 0, 3]], rtol=1e-12, atol=1e-12
        )


def test_eval_turns_off_every_dropout_including_the_similarity_branch():
    head = make_head(cards=(2, 3)).float()
    dropouts = [m for m in head.modules() if isinstance(m, torch.nn.Dropout)]
    # patch PE, frame PE, one PE per TRX cross-transformer, one input dropout per similarity module
    assert len(dropouts) == 2 + 2 + 2 and all(m.p == 0.1 for m in dropouts)
    support, labels, query, _ = make_episode(shuffled(3, 2), 3)
    support, query = support.float(), query.float()
    head.train()
    a, b = head(support, labels, query), head(support, labels, query)
    assert not torch.allclose(a.frame_logits, b.frame_logits) and not torch.allclose(
        a.patch_logits, b.patch_logits
    )
    torch.manual_seed(3)
    c = head(support, labels, query)
    torch.manual_seed(3)
    torch.testing.assert_close(head(support, labels, query).logits, c.logits, rtol=0, atol=0)  # seeded
    head.eval()
    head.similarity.train()  # only the similarity branch's dropout on: it alone makes passes differ
    a, b = head(support, labels, query), head(support, labels, query)
    torch.testing.assert_close(a.frame_logits, b.frame_logits, rtol=0, atol=0)
    assert not torch.allclose(a.patch_logits, b.patch_logits)
    head.eval()
    a, b = head(support, labels, query), head(support, labels, query)
    for name in ("frame_logits", "patch_logits", "logits"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)


def test_dropout_argument_is_trx_positional_dropout_only():
    head = STRM(D, T, (2, 3), out_dim=OUT, dropout=0.3, patch_weight=0.25)
    assert [t.pe.dropout.p for t in head.trx.transformers] == [0.3, 0.3]
    assert head.patch_attention.pe.dropout.p == head.frame_mixer.pe.dropout.p == 0.1
    assert [m.dropout.p for m in head.similarity] == [0.1, 0.1]
    head.eval()
    support, labels, query, _ = make_episode(shuffled(3, 1), 2)
    out = head(support.float(), labels, query.float())
    torch.testing.assert_close(out.logits, out.frame_logits + 0.25 * out.patch_logits)
    assert head.trx.cardinalities == (2, 3) and STRM(D).cardinalities == (2,)


def test_autocast_keeps_float32_logits():
    head = make_head().float()
    support, labels, query, _ = make_episode(shuffled(3, 2), 3)
    support, query = support.float(), query.float()
    full = head(support, labels, query)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = head(support, labels, query)
    assert low.frame_logits.dtype == low.patch_logits.dtype == torch.float32
    torch.testing.assert_close(low.logits, full.logits, rtol=0.05, atol=0.05)


def test_errors():
    head = make_head()
    support, labels, query, _ = make_episode(shuffled(3, 1), 2)
    with pytest.raises(ValueError, match=r"T=8, D=12"):
        head(support[:, :7], labels, query)
    with pytest.raises(ValueError, match=r"T=8, D=12"):
        head(support, labels, query[:, :, :10])
    with pytest.raises(ValueError, match="H, W >= 4"):
        head(support, labels, query[..., :3, :])
    with pytest.raises(ValueError, match="one support label per support video"):
        head(support, labels[:2], query)
    with pytest.raises(ValueError, match="integers"):
        head(support, labels.double(), query)
    with pytest.raises(ValueError, match="even feature size"):
        STRM(11)
    with pytest.raises(ValueError, match="distinct"):
        STRM(D, T, (2, 2))


def test_similarity_gradient_is_finite_at_zero_distance():
    """A query tuple equal to a class tuple (distance 0, e.g. all-zero after the ReLU) gets a zero gradient from
    that distance, as with the original's cdist, not NaN."""
    from fsar.models.strm import QueryClassSimilarity
    from fsar.models.trx import group_by_label

    g = torch.Generator().manual_seed(0)
    support = torch.randn(3, 28, 5, generator=g, dtype=F64)
    query = torch.cat([support[:1].clone(), torch.randn(1, 28, 5, generator=g, dtype=F64)]).requires_grad_()
    logits = QueryClassSimilarity.logits(support, group_by_label(torch.tensor([0, 1, 2])), query)
    assert logits[0, 0].item() == 0.0 and (logits[:, 1:] < 0).all()
    (grad,) = torch.autograd.grad(logits.sum(), [query])
    assert torch.isfinite(grad).all() and grad[1].abs().sum() > 0
    # the exact minimum: cdist without the |a|² + |b|² - 2ab shortcut, then min and mean
    exact = torch.cdist(
        query.detach().reshape(1, 56, 5),
        support.reshape(1, 84, 5),
        compute_mode="donot_use_mm_for_euclid_dist",
    )
    exact = -exact.view(2, 28, 3, 28).amin(dim=-1).mean(dim=1)
    torch.testing.assert_close(logits.detach(), exact, rtol=1e-12, atol=1e-12)
