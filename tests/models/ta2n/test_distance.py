import pytest
import torch
import torch.nn.functional as F

from fsar.models.ta2n import timewise_cos


def test_timewise_cos_is_sum_over_frames_of_one_minus_cosine():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 10, 8, 1, 1, generator=g, dtype=torch.float64)
    y = torch.randn(3, 4, 10, 8, 1, 1, generator=g, dtype=torch.float64)
    d = timewise_cos(x, y)
    assert d.shape == (3, 4)
    expected = torch.zeros(3, 4, dtype=torch.float64)
    for n in range(3):
        for m in range(4):
            for t in range(8):
                expected[n, m] += 1 - F.cosine_similarity(x[n, m, :, t, 0, 0], y[n, m, :, t, 0, 0], dim=0)
    torch.testing.assert_close(d, expected)
    torch.testing.assert_close(timewise_cos(y, x), d)  # symmetric
    torch.testing.assert_close(timewise_cos(x, x), torch.zeros(3, 4, dtype=torch.float64))
    torch.testing.assert_close(timewise_cos(x, -x), torch.full((3, 4), 16.0, dtype=torch.float64))
    logits = -d.T
    assert logits.shape == (4, 3) and float(logits.max()) <= 0


def test_timewise_cos_uses_whole_maps_per_frame_without_acm():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 5, 4, 3, 3, generator=g, dtype=torch.float64)
    y = torch.randn(2, 3, 5, 4, 3, 3, generator=g, dtype=torch.float64)
    per_frame = F.cosine_similarity(x.transpose(2, 3).flatten(3), y.transpose(2, 3).flatten(3), dim=-1)
    torch.testing.assert_close(timewise_cos(x, y), (1 - per_frame).sum(-1))


def test_timewise_cos_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        timewise_cos(torch.zeros(2, 3, 4, 8, 1, 1), torch.zeros(2, 3, 4, 7, 1, 1))
