"""Token sampler: golden values of the reference convention (tats.md section 9.1) and the bilinear variant."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fsar.models.tats.sampling import nearest_reference_indices, sample_tokens


def column_index_map(g: int = 16, d: int = 3) -> torch.Tensor:
    """[1, 1, g, g, d] map whose value is the column index (every channel)."""
    cols = torch.arange(g, dtype=torch.float32).view(1, 1, 1, g, 1)
    return cols.expand(1, 1, g, g, d).clone()


def sample_u(u_values: list[float], mode: str = "nearest_reference", g: int = 16) -> torch.Tensor:
    u = torch.tensor(u_values, dtype=torch.float32)
    tracks = torch.stack([u, torch.zeros_like(u)], dim=-1).view(1, 1, -1, 2)
    return sample_tokens(column_index_map(g), tracks, mode)[0, 0]  # [N, d]


def test_reference_golden_columns():
    u = [0.0, 2 * 6.5 / 15 - 1, 1.0, -1.0, 2 * 15.51 / 15 - 1, -1.2, 2 * 7.4 / 15 - 1]
    out = sample_u(u)
    assert out[:, 0].tolist() == [8.0, 6.0, 15.0, 0.0, 0.0, 0.0, 7.0]
    # out of grid: the zero vector (all channels), not the border value
    assert torch.equal(out[4], torch.zeros(3)) and torch.equal(out[5], torch.zeros(3))


def test_reference_rounds_half_to_even_and_uses_divide_by_w():
    assert nearest_reference_indices(torch.tensor([0.0]), 16).item() == 8  # 7.5 -> 8
    # x = W/2 with the loader's u = 2x/W - 1 gives patch 8 (floor(16 * x / W) would also be 8, 15x/W = 7.5)
    w = 224.0
    assert nearest_reference_indices(torch.tensor([2 * (w / 2) / w - 1]), 16).item() == 8
    # x = 10 px: the reference picks round(15 * 10/224) = 1, the containing patch is floor(16 * 10/224) = 0
    assert nearest_reference_indices(torch.tensor([2 * 10 / w - 1]), 16).item() == 1
    # the -0.5 boundary stays inside (rounds to 0); 15.5 rounds to 16 and leaves the grid
    inside = sample_u([2 * (-0.5) / 15 - 1, 2 * 15.5 / 15 - 1])
    assert inside[:, 0].tolist() == [0.0, 0.0]
    assert nearest_reference_indices(torch.tensor([2 * 15.5 / 15 - 1]), 16).item() == 16


def test_reference_matches_grid_sample_bit_for_bit():
    gen = torch.Generator().manual_seed(3)
    b, t, g, n, d = 2, 3, 16, 200, 5
    features = torch.randn(b, t, g, g, d, generator=gen)
    tracks = torch.rand(b, t, n, 2, generator=gen) * 2.4 - 1.2
    # add exact half-way points, where the rounding rule matters
    halves = 2 * (torch.arange(-1, 17, dtype=torch.float32) + 0.5) / 15 - 1
    tracks[0, 0, : halves.numel(), 0] = halves
    tracks[0, 0, : halves.numel(), 1] = halves.flip(0)
    ours = sample_tokens(features, tracks, "nearest_reference")
    grid = features.reshape(b * t, g, g, d).permute(0, 3, 1, 2)
    ref = F.grid_sample(grid, tracks.reshape(b * t, 1, n, 2), mode="nearest", align_corners=True)
    ref = ref.reshape(b, t, d, n).transpose(2, 3)
    assert torch.equal(ours, ref)


def test_rows_follow_v_and_columns_follow_u():
    g = 4
    values = torch.arange(g * g, dtype=torch.float32).view(1, 1, g, g, 1)  # value = row * g + col
    u, v = 2 * 1 / (g - 1) - 1, 2 * 2 / (g - 1) - 1  # column 1, row 2 under the reference convention
    out = sample_tokens(values, torch.tensor([[[[u, v]]]]), "nearest_reference")
    assert out.item() == 2 * g + 1


def test_bilinear_reads_patch_centres_exactly_and_interpolates_between():
    g = 16
    centres = [2 * (j + 0.5) / g - 1 for j in (0, 5, 15)]
    between = 2 * (5 + 1.0) / g - 1  # the border between patches 5 and 6, midway between their centres
    edges = [-1.0, 1.0]  # within the outer half patch: clamped to the border patch
    outside = [-1.01, 1.3]
    out = sample_u(centres + [between] + edges + outside, mode="bilinear")
    assert torch.allclose(out[:, 0], torch.tensor([0.0, 5.0, 15.0, 5.5, 0.0, 15.0, 0.0, 0.0]), atol=1e-5)
    assert torch.equal(out[-2:], torch.zeros(2, 3))


def test_bilinear_matches_grid_sample_inside_the_image():
    gen = torch.Generator().manual_seed(4)
    b, t, g, n, d = 1, 2, 6, 50, 4
    features = torch.randn(b, t, g, g, d, generator=gen)
    tracks = torch.rand(b, t, n, 2, generator=gen) * 2 - 1
    ours = sample_tokens(features, tracks, "bilinear")
    grid = features.reshape(b * t, g, g, d).permute(0, 3, 1, 2)
    ref = F.grid_sample(
        grid, tracks.reshape(b * t, 1, n, 2), mode="bilinear", padding_mode="border", align_corners=False
    )
    assert torch.allclose(ours, ref.reshape(b, t, d, n).transpose(2, 3), atol=1e-6)


def test_sampler_gradients_reach_the_features():
    features = torch.randn(1, 2, 4, 4, 3, generator=torch.Generator().manual_seed(5), requires_grad=True)
    tracks = torch.tensor([[0.0, 0.0], [2.0, 0.0]]).view(1, 1, 2, 2).expand(1, 2, 2, 2)
    sample_tokens(features, tracks, "nearest_reference").sum().backward()
    # u=0 -> column rint(1.5) = 2, row 2; the out-of-grid point contributes nothing
    expected = torch.zeros(4, 4)
    expected[2, 2] = 1.0
    assert torch.equal(features.grad[0, 0, :, :, 0], expected)


def test_sampler_rejects_bad_shapes_and_modes():
    with pytest.raises(ValueError, match="square patch grid"):
        sample_tokens(torch.zeros(1, 2, 4, 5, 3), torch.zeros(1, 2, 1, 2))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        sample_tokens(torch.zeros(1, 2, 4, 4, 3), torch.zeros(1, 3, 1, 2))
    with pytest.raises(ValueError, match="unknown sampling mode"):
        sample_tokens(torch.zeros(1, 2, 4, 4, 3), torch.zeros(1, 2, 1, 2), mode="nearest")
