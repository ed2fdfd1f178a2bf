import pytest
import torch
import torch.nn.functional as F

from fsar.models.ta2n.acm_fast import paired_conv3d, valid_tap_classes


def test_valid_tap_classes_corner_edge_interior():
    patterns, index = valid_tap_classes(7, 3, 1)
    assert len(patterns) == 3
    assert patterns[index[0]] == (0, 1, 1)  # first row: the tap above is padding
    assert patterns[index[6]] == (1, 1, 0)
    assert {index[i] for i in range(1, 6)} == {index[3]} and patterns[index[3]] == (1, 1, 1)


def _direct(weight, bias, support, queries, attention, values):
    m = queries.shape[0]
    ctx = torch.einsum("nmxy,mcy->nmcx", attention, values)[..., None, None]
    q_tilde = queries.unsqueeze(0) + ctx
    z = torch.cat([support.unsqueeze(1).expand(-1, m, -1, -1, -1, -1), q_tilde], 2)
    return F.conv3d(z.flatten(0, 1), weight, bias, padding=1)


@pytest.mark.parametrize("shape", [(8, 7, 7), (5, 4, 6), (3, 9, 4)])
def test_paired_conv_equals_conv_of_concatenated_pairs(shape):
    t, h, w = shape
    n, m, c, o = 3, 4, 6, 5
    g = torch.Generator().manual_seed(0)

    def rnd(*s):
        return torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)

    weight, bias = rnd(o, 2 * c, 3, 3, 3), rnd(o)
    support, queries = rnd(n, c, t, h, w), rnd(m, c, t, h, w)
    attention = torch.rand(n, m, t, t, generator=g, dtype=torch.float64).softmax(-1).requires_grad_()
    values = rnd(m, c, t)
    inputs = [weight, bias, support, queries, attention, values]
    fast = paired_conv3d(*inputs)
    direct = _direct(*inputs)
    assert fast.shape == (n * m, o, t, h, w)
    torch.testing.assert_close(fast, direct, atol=1e-10, rtol=1e-10)
    r = torch.randn(fast.shape, generator=g, dtype=torch.float64)
    grads_fast = torch.autograd.grad((fast * r).sum(), inputs)
    grads_direct = torch.autograd.grad((direct * r).sum(), inputs)
    for name, a, b in zip(
        ["weight", "bias", "support", "queries", "attention", "values"], grads_fast, grads_direct
    ):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9, msg=name)


def test_paired_conv_shape_errors():
    with pytest.raises(ValueError, match="2 \\* C"):
        paired_conv3d(
            torch.zeros(2, 5, 3, 3, 3),
            None,
            torch.zeros(1, 3, 4, 4, 4),
            torch.zeros(1, 3, 4, 4, 4),
            torch.zeros(1, 1, 4, 4),
            torch.zeros(1, 3, 4),
        )
    with pytest.raises(ValueError, match="same"):
        paired_conv3d(
            torch.zeros(2, 6, 3, 3, 3),
            None,
            torch.zeros(1, 3, 4, 4, 4),
            torch.zeros(1, 3, 4, 4, 4),
            torch.zeros(1, 1, 4, 4),
            torch.zeros(1, 3, 4),
            padding=(0, 0, 0),
        )


def test_fast_dispatch_takes_the_shortcut_on_cpu_always_and_on_cuda_from_64_pairs():
    """The H200 measurement: at 25 pairs (5w5s, 5 queries) the direct form was faster on CUDA, at 125 pairs
    (5w1s, 25 queries) the shortcut; on the CPU the shortcut wins at both."""
    from fsar.models.ta2n.acm import CUDA_MIN_PAIRS_FOR_FAST, uses_paired_shortcut

    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert CUDA_MIN_PAIRS_FOR_FAST == 64
    assert uses_paired_shortcut("fast", cpu, 1) and uses_paired_shortcut("fast", cpu, 25)
    assert not uses_paired_shortcut("fast", cuda, 25) and not uses_paired_shortcut("fast", cuda, 63)
    assert uses_paired_shortcut("fast", cuda, 64) and uses_paired_shortcut("fast", cuda, 125)
    assert not any(uses_paired_shortcut("reference", d, 125) for d in (cpu, cuda))


def test_acm_forward_follows_the_dispatch(monkeypatch):
    """With the shortcut switched off, impl="fast" takes the direct path (paired_conv3d is not called)."""
    import fsar.models.ta2n.acm as acm_module

    torch.manual_seed(0)
    acm = acm_module.ACM(T=4, dim=(8, 8), offset_zero_init=False).eval()
    protos, queries = torch.randn(3, 8, 4, 4, 4), torch.randn(2, 8, 4, 4, 4)
    fast_pairs, fast_offsets = acm(protos, queries)
    calls = []
    monkeypatch.setattr(acm_module, "paired_conv3d", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(acm_module, "uses_paired_shortcut", lambda impl, device, pairs: False)
    pairs, offsets = acm(protos, queries)
    assert calls == []
    torch.testing.assert_close(pairs, fast_pairs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(offsets, fast_offsets, rtol=1e-5, atol=1e-5)
