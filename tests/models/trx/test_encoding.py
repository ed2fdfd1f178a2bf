import math

import pytest
import torch

from fsar.models.trx import PositionalEncoding, sinusoidal_table, table_length


def test_golden_values_of_the_scaled_sinusoidal_table():
    table = sinusoidal_table(3, 4, dtype=torch.float64)
    # column pairs (sin, cos) at frequencies 1 and 10000^(-2/4) = 0.01, times 0.1
    expected = torch.tensor(
        [
            [0.0, 0.1, 0.0, 0.1],
            [0.08414709848078965, 0.05403023058681398, 0.0009999833334166665, 0.09999500004166653],
            [0.09092974268256818, -0.04161468365471424, 0.0019998666693333080, 0.09998000066665778],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(table, expected, rtol=0, atol=1e-15)
    big = sinusoidal_table(12, 2048)
    assert big.shape == (12, 2048) and big.dtype == torch.float32
    # last column pair: frequency 10000^(-2046/2048)
    torch.testing.assert_close(
        big[7, 2047].double(), torch.tensor(0.1 * math.cos(7 * 10000 ** (-2046 / 2048)), dtype=torch.float64)
    )
    assert float(big.abs().max()) <= 0.1 + 1e-7


def test_table_length_is_one_and_a_half_clips():
    assert table_length(8) == 12 and table_length(5) == 7
    assert PositionalEncoding(6, 8).table.shape == (12, 6)
    assert "table" not in PositionalEncoding(6, 8).state_dict()  # recomputed, not saved


def test_encoding_adds_the_first_t_rows_then_dropout():
    pe = PositionalEncoding(4, 8, dropout=0.5).eval()
    x = torch.randn(2, 8, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(pe(x), x + sinusoidal_table(12, 4)[:8])
    pe.train()
    torch.manual_seed(0)
    y = pe(torch.ones(200, 8, 4))
    zeros = (y == 0).float().mean().item()
    assert 0.4 < zeros < 0.6  # p = 0.5 of the (x + pe) entries dropped, the rest scaled by 2
    kept = y != 0
    expected = 2 * (1 + sinusoidal_table(12, 4)[:8]).expand(200, 8, 4)
    torch.testing.assert_close(y[kept], expected[kept])


def test_errors():
    with pytest.raises(ValueError, match="even feature size"):
        sinusoidal_table(4, 5)
    with pytest.raises(ValueError, match=r"\[videos, T <= 12, 4\]"):
        PositionalEncoding(4, 8)(torch.zeros(2, 13, 4))
