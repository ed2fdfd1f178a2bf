import math

import numpy as np
import pytest

from fsar.engine.protocol import (
    EpisodeResult,
    read_episode_csv,
    summarize_accuracies,
    t_quantile_975,
    write_episode_csv,
)


def test_summary_matches_field_convention():
    acc = np.array([1.0, 0.8, 0.6, 0.8])
    s = summarize_accuracies(acc)
    assert s.mean == pytest.approx(80.0)
    sigma = np.std(acc * 100)  # population std, as TRX / TA2N
    assert s.ci95 == pytest.approx(1.96 * sigma / 2)
    assert s.ci95_t == pytest.approx(3.182446 * np.std(acc * 100, ddof=1) / 2, rel=1e-4)
    assert s.episodes == 4


@pytest.mark.parametrize(
    "df,expected", [(1, 12.706205), (4, 2.776445), (9, 2.262157), (29, 2.045230), (9999, 1.960201)]
)
def test_t_quantile(df, expected):
    assert t_quantile_975(df) == pytest.approx(expected, abs=2e-4)


def test_single_episode_has_no_t_interval():
    s = summarize_accuracies([0.4])
    assert s.mean == pytest.approx(40.0) and s.ci95 == 0 and math.isnan(s.ci95_t)
    with pytest.raises(ValueError):
        summarize_accuracies([])


def test_episode_csv_round_trip(tmp_path):
    rs = [
        EpisodeResult(3, 4, 5, (9, 1, 2, 3, 4), (0, 1, 2, 3, 3), (0, 1, 2, 3, 4)),
        EpisodeResult(1, 5, 5, (1,) * 5, (0,) * 5, (0,) * 5),
    ]
    write_episode_csv(tmp_path / "e.csv", rs)
    back = read_episode_csv(tmp_path / "e.csv")
    assert [r.episode for r in back] == [1, 3]
    assert back[1] == rs[0] and back[1].accuracy == pytest.approx(0.8)
