"""Soft-DTW with OTAM padding and moves, against an independent NumPy DP and exhaustive path enumeration."""

import math

import numpy as np
import pytest
import torch

from fsar.models.soft_dtw import otam_distance, soft_dtw, soft_min

CASES = [("otam", True), ("dtw", True), ("dtw", False), ("otam_trx", True)]


def padded(d, pad):
    return np.pad(d, ((0, 0), (1, 1))) if pad else d


def allowed_moves(i, j, width, moves):
    """Predecessors of (i, j): horizontal and diagonal always; vertical everywhere (dtw) or in padded columns
    (otam; otam_trx also in the first real column)."""
    preds = [(i, j - 1), (i - 1, j - 1)]
    if moves == "dtw" or j in (0, width - 1) or (moves == "otam_trx" and j == 1):
        preds.append((i - 1, j))
    return [(a, b) for a, b in preds if a >= 0 and b >= 0]


def numpy_dp(d, moves, pad):
    p = padded(d, pad)
    n, w = p.shape
    r = np.full((n, w), np.inf)
    r[0, 0] = p[0, 0]
    for i in range(n):
        for j in range(w):
            if (i, j) != (0, 0):
                r[i, j] = p[i, j] + min(r[a, b] for a, b in allowed_moves(i, j, w, moves))
    return r[-1, -1]


def all_path_costs(d, moves, pad):
    """Cost of every path from (0, 0) to the last cell (exhaustive; tiny matrices only)."""
    p = padded(d, pad)
    n, w = p.shape

    def paths_to(i, j):
        if (i, j) == (0, 0):
            return [[(0, 0)]]
        return [path + [(i, j)] for a, b in allowed_moves(i, j, w, moves) for path in paths_to(a, b)]

    return [(sum(p[c] for c in path), path) for path in paths_to(n - 1, w - 1)]


@pytest.mark.parametrize("moves,pad", CASES)
@pytest.mark.parametrize("n,m", [(8, 8), (3, 5), (6, 2), (1, 4), (4, 1)])
def test_hard_dtw_equals_numpy_dp(moves, pad, n, m):
    rng = np.random.default_rng(n * 10 + m)
    d = rng.random((n, m))
    assert soft_dtw(torch.tensor(d), gamma=0.0, moves=moves, pad=pad).item() == pytest.approx(
        numpy_dp(d, moves, pad), abs=1e-12
    )


@pytest.mark.parametrize("moves,pad", CASES)
def test_soft_dtw_tends_to_hard_dtw(moves, pad):
    rng = np.random.default_rng(1)
    d = rng.random((4, 3))
    costs = all_path_costs(d, moves, pad)
    hard = min(c for c, _ in costs)
    assert hard == pytest.approx(numpy_dp(d, moves, pad), abs=1e-12)
    previous_gap = math.inf
    for gamma in (1.0, 0.1, 0.01, 1e-4):
        soft = soft_dtw(torch.tensor(d), gamma=gamma, moves=moves, pad=pad).item()
        # soft-DTW is -gamma log sum_paths exp(-cost / gamma): exactly that, and within gamma log(#paths) of the min
        expected = -gamma * np.log(np.sum(np.exp(-(np.array([c for c, _ in costs]) - hard) / gamma))) + hard
        assert soft == pytest.approx(expected, abs=1e-9)
        gap = hard - soft
        assert 0 <= gap <= gamma * math.log(len(costs)) + 1e-12
        assert gap <= previous_gap
        previous_gap = gap
    assert previous_gap < 1e-3


def test_otam_paths_match_every_prototype_frame_exactly_once():
    d = np.arange(12.0).reshape(3, 4)
    costs = all_path_costs(d, "otam", True)
    assert len(costs) > 1
    for _, path in costs:
        real_columns = [j for _, j in path if 1 <= j <= 4]
        assert real_columns == [1, 2, 3, 4]  # in order, once each
        rows = [i for i, j in path if 1 <= j <= 4]
        assert all(b - a in (0, 1) for a, b in zip(rows, rows[1:]))
    # hence adding c to every cost adds exactly m * c, for the soft version too
    t = torch.rand(2, 5, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for gamma in (0.0, 0.1):
        assert torch.allclose(soft_dtw(t + 0.5, gamma), soft_dtw(t, gamma) + 6 * 0.5, atol=1e-12)


def test_golden_values():
    d = torch.tensor([[5.0, 5.0], [0.0, 5.0], [5.0, 0.0]])
    # OTAM: the first query frame stays in the padding column, then (1,0) -> (2,1) costs 0
    assert soft_dtw(d, gamma=0.0, moves="otam").item() == 0.0
    # plain DTW must start on (0, 0): 5 + 0 + 0
    assert soft_dtw(d, gamma=0.0, moves="dtw", pad=False).item() == 5.0
    # 1 x m: a single path through every column
    row = torch.tensor([[0.25, 0.5, 1.0]])
    assert soft_dtw(row, gamma=0.1).item() == pytest.approx(1.75)
    # soft-min by hand
    v = torch.tensor([1.0, 2.0, 3.0])
    assert soft_min(v, 0.5).item() == pytest.approx(
        -0.5 * math.log(sum(math.exp(-x / 0.5) for x in (1, 2, 3)))
    )
    assert soft_min(v, 0.0).item() == 1.0


def test_batched_and_bidirectional():
    gen = torch.Generator().manual_seed(2)
    d = torch.rand(3, 2, 5, 4, generator=gen, dtype=torch.float64)
    out = soft_dtw(d, gamma=0.1)
    assert out.shape == (3, 2)
    for a in range(3):
        for b in range(2):
            assert out[a, b] == soft_dtw(d[a, b], gamma=0.1)
    both = otam_distance(d, gamma=0.1)
    assert torch.allclose(both, 0.5 * (out + soft_dtw(d.transpose(-1, -2), gamma=0.1)))
    assert torch.equal(otam_distance(d, gamma=0.1, bidirectional=False), out)


@pytest.mark.parametrize("moves", ["otam", "dtw", "otam_trx"])
def test_gradcheck(moves):
    d = torch.rand(
        2, 3, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64, requires_grad=True
    )
    assert torch.autograd.gradcheck(lambda x: soft_dtw(x, gamma=0.1, moves=moves), (d,))
    assert torch.autograd.gradcheck(lambda x: otam_distance(x, gamma=0.3, moves=moves), (d,))


def test_gradients_finite_and_a_distribution_over_cells():
    gen = torch.Generator().manual_seed(4)
    d = (torch.rand(25, 5, 8, 8, generator=gen) * 2).requires_grad_()
    for gamma in (1.0, 0.1, 0.01):
        (g,) = torch.autograd.grad(soft_dtw(d, gamma=gamma).sum(), d)
        assert torch.isfinite(g).all()
        # d cost / d D[i, j] is the expected path occupancy; every path visits each real column once
        assert torch.allclose(g.sum(dim=-2), torch.ones(25, 5, 8), atol=1e-4)
        assert (g >= 0).all() and (g <= 1 + 1e-4).all()  # float32: measured up to 1 + 1.6e-5


def test_half_precision_is_computed_in_float32():
    d = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(5))
    out = soft_dtw(d.to(torch.bfloat16), gamma=0.1)
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), soft_dtw(d.to(torch.bfloat16).float(), gamma=0.1).bfloat16().float())


def test_bad_arguments():
    d = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="moves"):
        soft_dtw(d, moves="diagonal")
    with pytest.raises(ValueError, match="gamma"):
        soft_dtw(d, gamma=-1)
    with pytest.raises(ValueError, match="pad=True"):
        soft_dtw(d, moves="otam", pad=False)
    with pytest.raises(ValueError, match="pad=True"):
        soft_dtw(d, moves="otam_trx", pad=False)
    with pytest.raises(ValueError, match=r"\[\.\.\., n, m\]"):
        soft_dtw(torch.zeros(3))
