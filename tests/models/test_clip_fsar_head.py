"""CLIP-FSAR head, loss and converter against a loop form written from clip_fsar.md §2-§4 (float64)."""

import math

import pytest
import torch

from fsar.errors import WeightsError
from fsar.models.clip_fsar import CLIPFSARHead, clip_fsar_loss, convert_reference_state_dict
from fsar.models.soft_dtw import soft_dtw

D, T, HEADS, MLP = 16, 4, 4, 24


# -- the loop form -----------------------------------------------------------------------------------------
def loop_layer_norm(x, w, b):
    out = []
    for row in x:  # token by token; biased variance, eps 1e-5
        mu = row.sum() / len(row)
        var = ((row - mu) ** 2).sum() / len(row)
        out.append((row - mu) / torch.sqrt(var + 1e-5) * w + b)
    return torch.stack(out)


def loop_transformer(p, x):
    """One layer of the original's Transformer_v1 on the tokens ``x [N, D]`` of one video, token by token."""
    n, d = x.shape
    dh = d // HEADS
    y = loop_layer_norm(x, p["norm.weight"], p["norm.bias"])
    q, k, v = (y @ p[f"to_{c}.weight"].T for c in "qkv")
    heads = []
    for h in range(HEADS):
        sl = slice(h * dh, (h + 1) * dh)
        rows = []
        for i in range(n):
            scores = torch.stack([(q[i, sl] * k[j, sl]).sum() / math.sqrt(dh) for j in range(n)])
            weights = torch.exp(scores) / torch.exp(scores).sum()
            rows.append(sum(weights[j] * v[j, sl] for j in range(n)))
        heads.append(torch.stack(rows))
    x1 = x + torch.cat(heads, dim=1) @ p["to_out.weight"].T + p["to_out.bias"]
    hidden = x1 @ p["ffn0.weight"].T + p["ffn0.bias"]
    hidden = 0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2)))
    return x1 + hidden @ p["ffn3.weight"].T + p["ffn3.bias"]


def loop_cos(a, b):
    return (a * b).sum() / (torch.sqrt((a * a).sum()) * torch.sqrt((b * b).sum()) + 0.01)


def loop_otam(m, lbda=0.5):
    """The original's one-direction OTAM recursion, literally: zero-padded columns, a hard running sum on the top
    row, naive -λ log Σ exp(-x/λ) below."""
    rows, cols = m.shape
    zero = m.new_zeros(())
    padded = [[zero] + [m[i, j] for j in range(cols)] + [zero] for i in range(rows)]
    c = [[zero] * (cols + 2) for _ in range(rows)]

    def smin(*xs):
        return -lbda * torch.log(sum(torch.exp(-x / lbda) for x in xs))

    for j in range(1, cols + 2):
        c[0][j] = padded[0][j] + c[0][j - 1]
    for i in range(1, rows):
        c[i][1] = padded[i][1] + smin(c[i - 1][0], c[i - 1][1], c[i][0])
        for j in range(2, cols + 1):
            c[i][j] = padded[i][j] + smin(c[i - 1][j - 1], c[i][j - 1])
        j = cols + 1
        c[i][j] = smin(c[i - 1][j - 1], c[i - 1][j], c[i][j - 1])
    return c[rows - 1][cols + 1]


def head_params(head):
    sd = dict(head.named_parameters())
    pre = "transformer.layers.0."
    return {
        "norm.weight": sd[pre + "attention.norm.weight"],
        "norm.bias": sd[pre + "attention.norm.bias"],
        **{f"to_{c}.weight": sd[pre + f"attention.to_{c}.weight"] for c in "qkv"},
        "to_out.weight": sd[pre + "attention.to_out.weight"],
        "to_out.bias": sd[pre + "attention.to_out.bias"],
        "ffn0.weight": sd[pre + "feed_forward.0.weight"],
        "ffn0.bias": sd[pre + "feed_forward.0.bias"],
        "ffn3.weight": sd[pre + "feed_forward.3.weight"],
        "ffn3.bias": sd[pre + "feed_forward.3.bias"],
    }


def loop_logits(head, support, labels, query, class_text, merge_before=False):
    p = head_params(head)
    classes = sorted(set(labels.tolist()))
    protos = []
    for i, c in enumerate(classes):
        shots = [s for s, lab in enumerate(labels.tolist()) if lab == c]
        if merge_before:
            frames = sum(support[s] for s in shots) / len(shots)
            protos.append(loop_transformer(p, torch.cat([frames, class_text[i : i + 1]]))[:T])
        else:
            outs = [loop_transformer(p, torch.cat([support[s], class_text[i : i + 1]]))[:T] for s in shots]
            protos.append(sum(outs) / len(outs))
    rows = []
    for qv in query:
        z = loop_transformer(p, qv)
        row = []
        for proto in protos:
            d = torch.stack([torch.stack([1 - loop_cos(z[a], proto[b]) for b in range(T)]) for a in range(T)])
            row.append(-(loop_otam(d) + loop_otam(d.T)))
        rows.append(torch.stack(row))
    return torch.stack(rows)


def loop_text_logits(head, videos, text):
    return torch.stack(
        [torch.stack([head.scale[0] * loop_cos(v.mean(dim=0), t) for t in text]) for v in videos]
    )


def loop_ce(logits, targets):
    return sum(
        -torch.log(torch.exp(r[y]) / torch.exp(r).sum()) for r, y in zip(logits, targets.tolist())
    ) / len(targets)


# -- fixtures ----------------------------------------------------------------------------------------------
def make_head(merge_before=False, seed=0):
    torch.manual_seed(seed)
    head = CLIPFSARHead(D, num_frames=T, num_heads=HEADS, mlp_dim=MLP, merge_before=merge_before).double()
    with torch.no_grad():
        head.scale.fill_(1.7)
    return head.eval()


def episode(seed=1, way=3, shot=2, queries=3):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.tensor([7, 2, 11][:way], dtype=torch.long).repeat(shot)  # not class-major, not 0..way-1
    labels = labels[torch.randperm(labels.numel(), generator=gen)]
    support = torch.randn(way * shot, T, D, generator=gen, dtype=torch.float64, requires_grad=True)
    query = torch.randn(queries, T, D, generator=gen, dtype=torch.float64, requires_grad=True)
    text = torch.randn(way, D, generator=gen, dtype=torch.float64, requires_grad=True)
    return support, labels, query, text


# -- tests -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("merge_before", [False, True])
def test_logits_loss_terms_and_gradients_match_the_loop_form(merge_before):
    head = make_head(merge_before)
    support, labels, query, text = episode()
    table = torch.randn(
        6, D, dtype=torch.float64, generator=torch.Generator().manual_seed(5), requires_grad=True
    )
    query_labels = torch.tensor([2, 0, 1])
    class_ids = torch.tensor([0, 3, 5, 2, 1, 4, 0, 3, 2])  # support then query videos

    def losses(logits_fn, text_fn, ce):
        logits = logits_fn()
        videos = torch.cat([support, query])
        text_logits = text_fn(videos)
        return logits, text_logits, ce(logits, query_labels), ce(text_logits, class_ids)

    fast = losses(
        lambda: head(support, labels, query, text),
        lambda v: head.text_logits(v, table),
        lambda lg, y: torch.nn.functional.cross_entropy(lg, y),
    )
    slow = losses(
        lambda: loop_logits(head, support, labels, query, text, merge_before),
        lambda v: loop_text_logits(head, v, table),
        loop_ce,
    )
    for a, b in zip(fast, slow):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    terms = clip_fsar_loss(fast[0], query_labels, fast[1], class_ids, text_weight=1.5)
    assert set(terms) == {"few_shot", "text", "total"}
    torch.testing.assert_close(terms["few_shot"], slow[2], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(terms["text"], slow[3], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(terms["total"], slow[2] + 1.5 * slow[3], rtol=1e-10, atol=1e-10)

    inputs = [support, query, text, table, *head.parameters()]
    g_fast = torch.autograd.grad(terms["total"], inputs)
    g_slow = torch.autograd.grad(slow[2] + 1.5 * slow[3], inputs)
    for name, a, b in zip(
        ["support", "query", "text", "table"] + [n for n, _ in head.named_parameters()], g_fast, g_slow
    ):
        assert torch.isfinite(a).all(), name
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10, msg=lambda m, n=name: f"{n}: {m}")
    assert g_fast[2].abs().sum() > 0 and g_fast[4].abs().sum() > 0  # the text and `scale` get gradients


@pytest.mark.parametrize("rows,cols", [(8, 8), (5, 7), (7, 5), (1, 3), (3, 1)])
def test_otam_recursion_at_lambda_half_in_both_directions(rows, cols):
    gen = torch.Generator().manual_seed(rows * 10 + cols)
    m = torch.rand(rows, cols, generator=gen, dtype=torch.float64) * 2
    fsar = soft_dtw(m, gamma=0.5, moves="otam_trx")
    torch.testing.assert_close(fsar, loop_otam(m), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        soft_dtw(m.T, gamma=0.5, moves="otam_trx"), loop_otam(m.T), rtol=1e-12, atol=1e-12
    )
    if (
        rows > 1 and cols > 1
    ):  # the vertical move into the first real column matters: fsar's plain "otam" differs
        assert not torch.allclose(soft_dtw(m, gamma=0.5, moves="otam"), fsar)


def test_golden_bidirectional_distance():
    # 2 x 2 costs by hand: forward = C[1,3] of the padded recursion, backward on the transpose; sum, not mean
    m = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    smin = lambda *xs: -0.5 * math.log(sum(math.exp(-x / 0.5) for x in xs))  # noqa: E731
    c0 = [0.0, 0.0, 1.0, 1.0]
    c11 = 1.0 + smin(c0[0], c0[1], 0.0)
    c12 = 0.0 + smin(c0[1], c11)
    c13 = smin(c0[2], c0[3], c12)
    assert soft_dtw(m, 0.5, moves="otam_trx").item() == pytest.approx(c13, abs=1e-12)
    head = make_head()
    head.bidirectional = False
    one = head._distance(torch.zeros(1, 2, D, dtype=torch.float64), torch.zeros(1, 2, D, dtype=torch.float64))
    head.bidirectional = True
    two = head._distance(torch.zeros(1, 2, D, dtype=torch.float64), torch.zeros(1, 2, D, dtype=torch.float64))
    torch.testing.assert_close(two, 2 * one)  # symmetric input: both directions equal, summed


def test_shuffled_support_labels_and_text_rows_follow_sorted_labels():
    head = make_head()
    support, labels, query, text = episode(seed=3, shot=3)
    with torch.no_grad():
        logits = head(support, labels, query, text)
        order = torch.argsort(labels, stable=True)  # class-major, sorted labels
        torch.testing.assert_close(head(support[order], labels[order], query, text), logits)
        dense = torch.unique(labels, return_inverse=True)[1]  # 7, 2, 11 -> 1, 0, 2
        torch.testing.assert_close(head(support, dense, query, text), logits)
        # column i belongs to the i-th smallest label: relabelling 2 <-> 11 swaps columns 0 and 2 and text rows
        swapped = labels.clone()
        swapped[labels == 2], swapped[labels == 11] = 11, 2
        torch.testing.assert_close(head(support, swapped, query, text[[2, 1, 0]]), logits[:, [2, 1, 0]])
        # and the text really enters the prototypes
        assert not torch.allclose(head(support, labels, query, text[[1, 0, 2]]), logits)


def test_one_shot_merge_before_is_the_same_and_five_shot_differs():
    a, b = make_head(False), make_head(True)
    for shot, same in ((1, True), (3, False)):
        support, labels, query, text = episode(seed=4, shot=shot)
        with torch.no_grad():
            equal = torch.allclose(a(support, labels, query, text), b(support, labels, query, text))
        assert equal is same


def test_train_mode_dropout_and_float32_cpu():
    head = CLIPFSARHead(D, num_frames=T, num_heads=HEADS, mlp_dim=MLP)
    assert head.scale.dtype == torch.float32 and head.scale.item() == 1.0
    support, labels, query, text = (x.float().detach() if x.is_floating_point() else x for x in episode())
    head.train()
    torch.manual_seed(0)
    a = head(support, labels, query, text)
    torch.manual_seed(1)
    assert not torch.allclose(a, head(support, labels, query, text))  # dropout 0.2 / 0.05 active
    head.eval()
    assert torch.equal(head(support, labels, query, text), head(support, labels, query, text))
    assert a.dtype == torch.float32


def test_bad_inputs_are_refused():
    head = make_head()
    support, labels, query, text = episode()
    with pytest.raises(ValueError, match="class_text"):
        head(support, labels, query, text[:2])
    with pytest.raises(ValueError, match="query"):
        head(support, labels, query[..., :8], text)
    with pytest.raises(ValueError, match="support_labels"):
        head(support, labels[:3], query, text)


# -- converter ---------------------------------------------------------------------------------------------
def reference_state_dict(head, prefix=""):
    """The head's weights under the original's names (clip_fsar.md §2), plus backbone keys."""
    p = head_params(head)
    sd = {
        "scale": head.scale.detach().clone(),
        "context2.layers.0.0.norm.weight": p["norm.weight"],
        "context2.layers.0.0.norm.bias": p["norm.bias"],
        **{f"context2.layers.0.0.fn.to_{c}.weight": p[f"to_{c}.weight"] for c in "qkv"},
        "context2.layers.0.0.fn.to_out.0.weight": p["to_out.weight"],
        "context2.layers.0.0.fn.to_out.0.bias": p["to_out.bias"],
        "context2.layers.0.1.net.0.weight": p["ffn0.weight"],
        "context2.layers.0.1.net.0.bias": p["ffn0.bias"],
        "context2.layers.0.1.net.3.weight": p["ffn3.weight"],
        "context2.layers.0.1.net.3.bias": p["ffn3.bias"],
        "backbone.conv1.weight": torch.zeros(4, 3, 3, 3),
        "backbone.attnpool.c_proj.bias": torch.zeros(4),
    }
    return {prefix + k: v.detach().clone() for k, v in sd.items()}


@pytest.mark.parametrize("prefix", ["", "module."])
def test_converter_on_reference_named_keys(prefix):
    source = make_head(seed=7)
    target = make_head(seed=8)
    support, labels, query, text = episode()
    converted = convert_reference_state_dict(reference_state_dict(source, prefix))
    assert not any(k.startswith("backbone") for k in converted)
    target.load_state_dict(converted, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(target(support, labels, query, text), source(support, labels, query, text))
    # a head-only dict and a training-loop checkpoint wrapper work too
    head_only = {k: v for k, v in reference_state_dict(source).items() if not k.startswith("backbone.")}
    assert convert_reference_state_dict(head_only).keys() == converted.keys()
    assert convert_reference_state_dict({"model_state": head_only}).keys() == converted.keys()


def test_converter_depth_two_and_errors():
    deep = CLIPFSARHead(D, num_frames=T, num_heads=HEADS, mlp_dim=MLP, depth=2)
    sd = reference_state_dict(make_head())
    sd |= {k.replace("layers.0.", "layers.1."): v for k, v in sd.items() if k.startswith("context2")}
    deep.load_state_dict(convert_reference_state_dict(sd), strict=True)
    with pytest.raises(WeightsError, match="context2.layers.0.2.foo"):
        convert_reference_state_dict(sd | {"context2.layers.0.2.foo": torch.zeros(1)})
    with pytest.raises(WeightsError, match="text_features_train"):
        convert_reference_state_dict(sd | {"text_features_train": torch.zeros(3, D)})
    with pytest.raises(WeightsError, match="scale"):
        convert_reference_state_dict({k: v for k, v in sd.items() if k != "scale"})
