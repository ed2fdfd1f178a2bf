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


@pytest.mark.parametrize("hw", [(1, 1), (2, 2), (2, 3), (3, 3), (4, 2)])
@pytest.mark.parametrize("kernel", [(3, 3, 3), (1, 3, 5)])
def test_small_map_conv3d_equals_conv3d_values_and_gradients(hw, kernel):
    from fsar.models.ta2n.acm_fast import small_map_conv3d

    gen = torch.Generator().manual_seed(hash((hw, kernel)) % 1000)
    x = torch.randn(3, 5, 4, *hw, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 5, *kernel, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, generator=gen, dtype=torch.float64, requires_grad=True)
    padding = tuple(k // 2 for k in kernel)
    ref = F.conv3d(x, w, b, padding=padding)
    out = small_map_conv3d(x, w, b)
    assert out.shape == ref.shape == (3, 6, 4, *hw) and out.is_contiguous()
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    upstream = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    grads_ref = torch.autograd.grad(ref, (x, w, b), upstream)
    grads = torch.autograd.grad(small_map_conv3d(x, w, b), (x, w, b), upstream)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(small_map_conv3d(x, w, None), F.conv3d(x, w, None, padding=padding))
    with pytest.raises(ValueError, match="odd kernels"):
        small_map_conv3d(x, torch.zeros(6, 5, 2, 3, 3, dtype=torch.float64), None)


def test_offset_net_uses_the_small_map_product_only_for_fast_acm_on_small_cpu_maps(monkeypatch):
    """ACM's fast path (4x4 maps, pooled to 2x2 before the second convolution) uses small_map_conv3d; the reference
    path and larger maps (6x6 pooled to 3x3) keep conv3d; both give the direct form's offsets."""
    import fsar.models.ta2n.acm as acm_module

    real = acm_module.small_map_conv3d
    calls = []
    monkeypatch.setattr(acm_module, "small_map_conv3d", lambda *a: calls.append(a[0].shape) or real(*a))
    for size, expect_small in ((4, True), (6, False)):
        torch.manual_seed(0)
        fast = acm_module.ACM(T=4, dim=(8, 8), offset_zero_init=False).eval()
        reference = acm_module.ACM(T=4, dim=(8, 8), offset_zero_init=False, impl="reference").eval()
        reference.load_state_dict(fast.state_dict())
        protos, queries = torch.randn(3, 8, 4, size, size), torch.randn(2, 8, 4, size, size)
        calls.clear()
        ref_pairs, ref_offsets = reference(protos, queries)
        assert calls == []
        pairs, offsets = fast(protos, queries)
        assert calls == ([(6, 128, 4, 2, 2)] if expect_small else [])
        torch.testing.assert_close(offsets, ref_offsets, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(pairs, ref_pairs, rtol=1e-5, atol=1e-5)
