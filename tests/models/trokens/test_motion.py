"""HoD and relative motion (trokens.md sections 1-2), checked against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from fsar.models.trokens import hod_features, relative_motion_features


def one_step(du: float, dv: float, num_bins: int = 32) -> torch.Tensor:
    """HoD row 1 of a single point moving by (du, dv) from (0.1, -0.2)."""
    tracks = torch.tensor([[[0.1, -0.2]], [[0.1 + du, -0.2 + dv]]], dtype=torch.float32)
    return hod_features(tracks, num_bins)[1, 0]


def mass(row: torch.Tensor) -> dict[int, float]:
    return {int(i): float(row[i]) for i in row.nonzero().flatten()}


@pytest.mark.parametrize(
    ("du", "dv", "bins", "expected_bin"),
    [
        (0.5, 0.0, 32, 17),  # +u: s = 16 exactly, inverted weights put everything in bin 17
        (-0.5, 0.0, 32, 1),  # -u: s = 32 (atan2 = pi) -> bin 32 mod 32 = 0 gets 0, bin 1 gets all
        (0.0, 0.5, 32, 25),  # +v: s = 24 -> 25
        (0.0, -0.5, 32, 9),  # -v: s = 8 -> 9
        (0.5, 0.5, 32, 21),  # diagonal +u+v: s = 20 -> 21
        (-0.5, -0.5, 32, 5),  # diagonal -u-v: s = 4 -> 5
        (0.5, 0.0, 8, 5),  # 8 bins: +u at s = 4 -> 5
        (-0.5, 0.5, 8, 0),  # 8 bins: -u+v at s = 7 -> bin (7 + 1) mod 8 = 0 (the wrap of k + 1)
    ],
)
def test_bin_edge_motion_puts_all_mass_in_the_next_bin(du, dv, bins, expected_bin):
    row = one_step(du, dv, bins)
    assert row.shape == (bins,) and row.dtype == torch.float32
    assert list(mass(row)) == [expected_bin]
    assert row[expected_bin].item() == pytest.approx(math.hypot(du, dv), rel=1e-6)


def test_interior_angle_splits_with_inverted_weights():
    # d = (0.4, 0.2): s = 32 * (atan2(0.2, 0.4) / pi + 1) / 2 = 18.3613..., k = 18, f = 0.3613...
    s = 32 * (math.atan2(0.2, 0.4) / math.pi + 1) / 2
    k, f = math.floor(s), s - math.floor(s)
    norm = math.hypot(0.4, 0.2)
    row = one_step(0.4, 0.2)
    assert k == 18 and mass(row).keys() == {18, 19}
    assert row[18].item() == pytest.approx(norm * f, rel=1e-5)  # bin k gets |d| * f (sic)
    assert row[19].item() == pytest.approx(norm * (1 - f), rel=1e-5)  # bin k + 1 gets |d| * (1 - f)
    assert row[18].item() == pytest.approx(0.16160, abs=1e-5) and row[19].item() == pytest.approx(
        0.28561, abs=1e-5
    )


def test_wrap_of_the_upper_bin_just_below_s_equal_num_bins():
    # d = (-0.5, 0.001): s just below 32, k = 31 -> bins 31 and (32 mod 32) = 0
    s = 32 * (math.atan2(0.001, -0.5) / math.pi + 1) / 2
    f = s - 31
    row = one_step(-0.5, 0.001)
    assert mass(row).keys() == {0, 31}
    norm = math.hypot(0.5, 0.001)
    assert row[31].item() == pytest.approx(norm * f, rel=1e-4)
    assert row[0].item() == pytest.approx(norm * (1 - f), rel=1e-3)


def test_first_row_is_zero_and_row_t_describes_frame_t_minus_1_to_t():
    tracks = torch.tensor([[[0.0, 0.0]], [[0.2, 0.0]], [[0.2, 0.0]], [[0.2, -0.3]]])  # [T=4, N=1, 2]
    hod = hod_features(tracks)
    assert hod.shape == (4, 1, 32)
    assert torch.equal(hod[0], torch.zeros(1, 32))
    assert mass(hod[1, 0]) == {17: pytest.approx(0.2)}
    assert torch.equal(hod[2], torch.zeros(1, 32))  # no motion, no mass
    assert mass(hod[3, 0]) == {9: pytest.approx(0.3)}


def test_batch_dimensions_and_no_autograd():
    gen = torch.Generator().manual_seed(0)
    tracks = (torch.rand(2, 3, 5, 4, 2, generator=gen) * 2 - 1).requires_grad_(True)
    hod = hod_features(tracks, num_bins=8)
    assert hod.shape == (2, 3, 5, 4, 8) and not hod.requires_grad and hod.grad_fn is None
    step = tracks.detach()[..., 1:, :, :] - tracks.detach()[..., :-1, :, :]
    assert torch.allclose(hod[..., 1:, :, :].sum(-1), torch.linalg.vector_norm(step, dim=-1), atol=1e-6)
    assert torch.equal(hod[0, 1], hod_features(tracks[0, 1], num_bins=8))


def test_nan_coordinates_count_as_zero_and_the_input_is_untouched():
    tracks = torch.tensor([[[0.4, 0.0]], [[float("nan"), 0.3]], [[0.0, -0.2]]])
    before = tracks.clone()
    hod = hod_features(tracks)
    assert torch.isfinite(hod).all()
    # NaN u -> 0: step 0 is (0, 0.3) - (0.4, 0) = (-0.4, 0.3); step 1 is (0, -0.2) - (0, 0.3) = (0, -0.5)
    expected = hod_features(torch.tensor([[[0.4, 0.0]], [[0.0, 0.3]], [[0.0, -0.2]]]))
    assert torch.equal(hod, expected)
    assert mass(hod[2, 0]) == {9: pytest.approx(0.5)}
    assert torch.equal(torch.isnan(tracks), torch.isnan(before))
    assert torch.equal(tracks.nan_to_num(7.0), before.nan_to_num(7.0))


def test_hod_errors():
    with pytest.raises(ValueError, match=r"\[..., T, N, 2\]"):
        hod_features(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="num_bins"):
        hod_features(torch.zeros(2, 1, 2), num_bins=1)


def loop_relative_motion(tracks: torch.Tensor, visibility: torch.Tensor) -> torch.Tensor:
    """The definition, one entry at a time, in float64."""
    b, t, n, _ = tracks.shape
    out = torch.zeros(b, t, n, 2 * n, dtype=torch.float64)
    for i in range(b):
        for f in range(t):
            for m in range(n):
                for k in range(n):
                    pm, pk = tracks[i, f, m].double(), tracks[i, f, k].double()
                    vis_m = bool(visibility[i, f, m]) and not math.isnan(pm[0].item())
                    vis_k = bool(visibility[i, f, k]) and not math.isnan(pk[0].item())
                    if vis_m and vis_k:
                        out[i, f, m, 2 * k : 2 * k + 2] = pm.nan_to_num(0.0) - pk.nan_to_num(0.0)
    return out


def test_relative_motion_by_hand():
    tracks = torch.tensor([[[[0.5, 0.1], [-0.2, 0.3], [0.0, -0.4]]]])  # [1, 1, 3, 2]
    vis = torch.tensor([[[True, True, False]]])
    rel = relative_motion_features(tracks, vis)
    assert rel.shape == (1, 1, 3, 6)
    assert torch.allclose(rel[0, 0, 0], torch.tensor([0.0, 0.0, 0.7, -0.2, 0.0, 0.0]))
    assert torch.allclose(rel[0, 0, 1], torch.tensor([-0.7, 0.2, 0.0, 0.0, 0.0, 0.0]))
    assert torch.equal(rel[0, 0, 2], torch.zeros(6))  # invisible point: every pair with it is zero


def test_relative_motion_with_nans_and_partial_visibility_leaves_inputs_alone():
    gen = torch.Generator().manual_seed(3)
    tracks = torch.rand(2, 3, 5, 2, generator=gen) * 2 - 1
    vis = torch.rand(2, 3, 5, generator=gen) > 0.3
    tracks[0, 1, 2, 0] = float("nan")  # NaN u: zeroed and not visible
    tracks[1, 2, 4, 1] = float("nan")  # NaN v only: zeroed, stays visible (only u is tested, as the original)
    vis[1, 2, 4] = True
    tracks_before, vis_before = tracks.clone(), vis.clone()
    rel = relative_motion_features(tracks, vis)
    assert torch.allclose(rel.double(), loop_relative_motion(tracks, vis), atol=1e-6)
    assert torch.isfinite(rel).all()
    assert torch.equal(rel[0, 1, 2], torch.zeros(10)) and torch.equal(rel[0, 1, :, 4:6], torch.zeros(5, 2))
    # the NaN-v point is visible: its u offsets to visible points are non-zero, its v coordinate counts as 0
    visible = vis[1, 2].nonzero().flatten().tolist()
    other = next(k for k in visible if k != 4)
    assert rel[1, 2, 4, 2 * other + 1].item() == pytest.approx(-tracks[1, 2, other, 1].item(), abs=1e-6)
    assert torch.equal(vis, vis_before)
    assert torch.equal(tracks.nan_to_num(9.0), tracks_before.nan_to_num(9.0))


def test_relative_motion_gradient_reaches_the_tracks_except_at_nans():
    gen = torch.Generator().manual_seed(1)
    tracks = torch.rand(1, 2, 4, 2, generator=gen, dtype=torch.float64) * 2 - 1
    tracks[0, 0, 1, 0] = float("nan")
    tracks.requires_grad_(True)
    vis = torch.ones(1, 2, 4, dtype=torch.bool)
    weights = torch.randn(1, 2, 4, 8, generator=gen, dtype=torch.float64)
    (relative_motion_features(tracks, vis) * weights).sum().backward()
    grad = tracks.grad
    assert torch.isfinite(grad).all() and grad[0, 0, 1].abs().sum() == 0  # the lost point gets none
    assert grad[0, 1].abs().min() > 0
    clean = tracks.detach()[:, 1:].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: relative_motion_features(x, vis[:, 1:]), (clean,), eps=1e-6, atol=1e-6
    )


def test_relative_motion_errors():
    with pytest.raises(ValueError, match="visibility must be a bool"):
        relative_motion_features(torch.zeros(1, 2, 3, 2), torch.ones(1, 2, 3))
    with pytest.raises(ValueError, match=r"\[B, T, N, 2\]"):
        relative_motion_features(torch.zeros(2, 3, 2), torch.ones(2, 3, dtype=torch.bool))
