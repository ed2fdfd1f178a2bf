import math

import pytest
import torch

from fsar.models.ta2n import TTM
from fsar.models.ta2n.ttm import (
    interpolation_matrix,
    source_coordinates,
    warp_with_grid_sample,
    warp_with_matrix,
)


def _ramp_video(c=4, t=8, h=4, w=4, offset=0.0):
    """x[:, :, t] = t + offset."""
    return (
        (torch.arange(t, dtype=torch.float64) + offset).reshape(1, 1, t, 1, 1).expand(2, c, t, h, w).clone()
    )


def _ttm(**kw):
    torch.manual_seed(0)
    return TTM(T=8, dim=(4, 4), **kw).double().eval()


def _set_bias(ttm, a, b):
    with torch.no_grad():
        ttm.fc2.weight.zero_()
        ttm.fc2.bias.copy_(torch.tensor([math.atanh(a), math.atanh(b)], dtype=torch.float64))


@pytest.mark.parametrize("warp", ["matrix", "grid_sample"])
def test_init_theta_and_warp_golden_values(warp):
    ttm = _ttm(warp=warp)
    out, theta = ttm.align(_ramp_video())
    torch.testing.assert_close(theta, torch.tensor([[math.tanh(2.0), 0.0]] * 2, dtype=torch.float64))
    assert abs(float(theta.detach()[0, 0]) - 0.964028) < 1e-6
    expected = torch.tensor(
        [0.1259, 1.0899, 2.0540, 3.0180, 3.9820, 4.9460, 5.9101, 6.8741], dtype=torch.float64
    )
    torch.testing.assert_close(out[0, 0, :, 0, 0], expected, atol=1e-4, rtol=0)
    assert torch.equal(
        out[0, :, :, :, :], out[0, :1, :, :1, :1].expand_as(out[0])
    )  # no spatial / channel mixing


@pytest.mark.parametrize("warp", ["matrix", "grid_sample"])
def test_bias_set_warps_golden_values_incl_zero_padding(warp):
    ttm = _ttm(warp=warp)
    _set_bias(ttm, 0.5, 0.25)
    out, _ = ttm.align(_ramp_video(offset=1.0))
    torch.testing.assert_close(
        out[1, 2, :, 3, 1], 3.625 + 0.5 * torch.arange(8, dtype=torch.float64), atol=1e-4, rtol=0
    )
    _set_bias(ttm, 0.9, 0.6)
    out, _ = ttm.align(_ramp_video(offset=1.0))
    expected = torch.tensor([3.45, 4.35, 5.25, 6.15, 7.05, 7.95, 1.20, 0.00], dtype=torch.float64)
    torch.testing.assert_close(out[0, 0, :, 0, 0], expected, atol=1e-4, rtol=0)


def test_border_padding_clamps_instead_of_zeroing():
    ttm = _ttm(padding="border")
    _set_bias(ttm, 0.9, 0.6)
    out, _ = ttm.align(_ramp_video(offset=1.0))
    # frames 6 and 7 read beyond the clip: the last frame (value 8) instead of 1.2 / 0
    torch.testing.assert_close(out[0, 0, 6:, 0, 0], torch.tensor([8.0, 8.0], dtype=torch.float64))


def test_interpolation_matrix_is_the_tent_kernel():
    u = torch.tensor([[0.0, 0.25, 3.5, 6.9, 7.0, -0.5, 8.2]], dtype=torch.float64)
    k = interpolation_matrix(u, 8)[0]
    for i, ui in enumerate(u[0].tolist()):
        expected = torch.clamp(1 - (ui - torch.arange(8, dtype=torch.float64)).abs(), min=0)
        torch.testing.assert_close(k[i], expected)
    assert float(k[5].sum()) == pytest.approx(
        0.5
    )  # half the sample falls outside: attenuated, not renormalised
    assert float(k[6].sum()) == 0.0


@pytest.mark.parametrize("padding", ["zeros", "border"])
def test_matrix_warp_equals_grid_sample_values_and_gradients(padding):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, 8, 4, 3, generator=g, dtype=torch.float64)
    theta = torch.rand(6, 2, generator=g, dtype=torch.float64) * 2.4 - 1.2  # includes out-of-range samples
    xs = [x.clone().requires_grad_() for _ in range(2)]
    ts = [theta.clone().requires_grad_() for _ in range(2)]
    outs = [warp_with_matrix(xs[0], ts[0], padding), warp_with_grid_sample(xs[1], ts[1], padding)]
    torch.testing.assert_close(outs[0], outs[1], atol=1e-12, rtol=0)
    r = torch.randn(outs[0].shape, generator=g, dtype=torch.float64)
    for out in outs:
        (out * r).sum().backward()
    torch.testing.assert_close(xs[0].grad, xs[1].grad, atol=1e-12, rtol=0)
    torch.testing.assert_close(ts[0].grad, ts[1].grad, atol=1e-10, rtol=0)
    assert ts[0].grad.abs().sum() > 0


def test_source_coordinates_formula():
    theta = torch.tensor([[0.5, 0.25]], dtype=torch.float64)
    u = source_coordinates(theta, 8)
    t = torch.linspace(-1, 1, 8, dtype=torch.float64)
    torch.testing.assert_close(u[0], (0.5 * t + 0.25 + 1) * 3.5)


def test_theta_init_none_keeps_default_init_and_options_are_validated():
    torch.manual_seed(0)
    ttm = TTM(T=8, dim=(4, 4), theta_init=None)
    assert ttm.fc2.weight.abs().sum() > 0
    with pytest.raises(ValueError, match="padding"):
        TTM(T=8, dim=(4, 4), padding="reflect")
    with pytest.raises(ValueError, match="warp"):
        TTM(T=8, dim=(4, 4), warp="fft")


def test_input_shape_errors_are_clear():
    ttm = TTM(T=8, dim=(4, 4))
    with pytest.raises(ValueError, match="T=8"):
        ttm.align(torch.zeros(1, 4, 6, 7, 7))
    with pytest.raises(ValueError, match="C=4"):
        ttm.align(torch.zeros(1, 3, 8, 7, 7))
    with pytest.raises(ValueError, match=">= 4"):
        ttm.align(torch.zeros(1, 4, 8, 3, 7))


def test_each_align_call_is_one_batchnorm_batch():
    torch.manual_seed(0)
    ttm = TTM(T=8, dim=(4, 4)).double().train()
    g = torch.Generator().manual_seed(1)
    a = torch.randn(3, 4, 8, 5, 5, generator=g, dtype=torch.float64)
    b = torch.randn(2, 4, 8, 5, 5, generator=g, dtype=torch.float64) + 3.0
    with torch.no_grad():
        mean_a = ttm.conv1(a).mean((0, 2, 3, 4))
        mean_b = ttm.conv1(b).mean((0, 2, 3, 4))
    ttm.align(a)
    ttm.align(b)
    assert int(ttm.bn1.num_batches_tracked) == 2
    expected = 0.9 * (0.1 * mean_a) + 0.1 * mean_b  # first batch a, then b, momentum 0.1
    torch.testing.assert_close(ttm.bn1.running_mean, expected)
