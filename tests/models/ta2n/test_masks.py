import pytest
import torch

from fsar.models.ta2n.masks import perturbation_offsets, pooling_weights, soft_box_mask


def _outer(fy, fx):
    return torch.tensor(fy, dtype=torch.float64)[:, None] * torch.tensor(fx, dtype=torch.float64)[None, :]


@pytest.mark.parametrize(
    "offset, expected",
    [
        ((0.0, 0.0), _outer([1] * 7, [1] * 7)),
        ((0.2, 0.0), _outer([1] * 7, [1, 1, 1, 1, 1, 1, 0.4])),
        ((0.5, -0.3), _outer([0.1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0.5, 0])),
        ((0.75, 0.75), _outer([1, 1, 1, 1, 0.75, 0, 0], [1, 1, 1, 1, 0.75, 0, 0])),
        ((-0.9, 0.1), _outer([1, 1, 1, 1, 1, 1, 0.7], [0, 0, 0.3, 1, 1, 1, 1])),
    ],
)
def test_gen_mask_golden_values(offset, expected):
    mask = soft_box_mask(torch.tensor(offset, dtype=torch.float64), 7, 7)
    assert mask.shape == (7, 7)
    torch.testing.assert_close(mask, expected, atol=1e-4, rtol=0)
    if offset == (0.75, 0.75):
        assert abs(float(mask[4, 4]) - 0.5625) < 1e-6


def test_mask_rows_are_y_and_columns_are_x_for_non_square_maps():
    mask = soft_box_mask(torch.tensor([0.5, 0.0], dtype=torch.float64), 4, 9)  # shift along x only
    assert mask.shape == (4, 9)
    assert torch.all(mask[:, 0] == 1) and mask[0, -1] < 1  # right columns fade, every row the same
    assert torch.equal(mask[0], mask[3])


def test_mask_gradient_flows_only_through_ramp_cells():
    o = torch.tensor([0.2, 0.0], dtype=torch.float64, requires_grad=True)
    soft_box_mask(o, 7, 7).sum().backward()
    # only the last column ramps (0.4 = 1 - 0.2 * 3), d/dox = -3 per cell, 7 rows; y is fully inside: no gradient
    torch.testing.assert_close(o.grad, torch.tensor([-21.0, 0.0], dtype=torch.float64))


def test_init_pooling_map_w0_golden_values():
    offsets = perturbation_offsets(0.2, dtype=torch.float64).reshape(
        1, 1, 9, 2
    )  # o = 0 plus the 9 perturbations
    w0 = pooling_weights(offsets, 7, 7)[0, 0]
    assert abs(float(w0.sum()) - 1) < 1e-12
    for i, j in [(0, 0), (0, 6), (6, 0), (6, 6)]:
        assert abs(float(w0[i, j]) - 0.0145289) < 1e-6
    for i, j in [(0, 3), (3, 0), (6, 2), (4, 6)]:
        assert abs(float(w0[i, j]) - 0.0182956) < 1e-6
    interior = (1 / 49 + 4 / 44.8 + 4 / 40.96) / 9
    assert abs(interior - 0.0230389) < 1e-6
    torch.testing.assert_close(
        w0[1:6, 1:6], torch.full((5, 5), interior, dtype=torch.float64), atol=1e-7, rtol=0
    )
    torch.testing.assert_close(w0 * 49, w0.flip(0).flip(1) * 49)  # symmetric


def test_pooling_weights_sum_to_one_for_any_offset():
    g = torch.Generator().manual_seed(0)
    offsets = torch.rand(3, 8, 9, 2, generator=g, dtype=torch.float64) * 1.9 - 0.95
    w = pooling_weights(offsets, 7, 5)
    assert w.shape == (3, 8, 7, 5)
    torch.testing.assert_close(w.sum((-2, -1)), torch.ones(3, 8, dtype=torch.float64))


def test_mask_rejects_bad_offsets():
    with pytest.raises(ValueError, match="size 2"):
        soft_box_mask(torch.zeros(3, 3), 7, 7)
