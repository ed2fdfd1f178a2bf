import math

import numpy as np
import pytest

from fsar.engine.protocol import (
    EpisodeResult,
    read_episode_csv,
    summarize_accuracies,
    summarize_twin_accuracy,
    t_quantile_975,
    twin_counts,
    twin_queries,
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


def test_summary_is_the_mean_of_skewed_episode_accuracies():
    """The reported number is the mean over episodes (not a median or a pooled count): golden values."""
    s = summarize_accuracies([0.2, 0.2, 1.0])
    assert s.mean == pytest.approx(46.666667) and s.std == pytest.approx(37.712362)
    assert s.ci95 == pytest.approx(1.96 * 37.712362 / math.sqrt(3))


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


def _result(episode, classes, predictions, labels):
    correct = sum(p == y for p, y in zip(predictions, labels))
    return EpisodeResult(episode, correct, len(labels), tuple(classes), tuple(predictions), tuple(labels))


def test_twin_queries_and_twin_accuracy_over_episodes_with_twins():
    twins = {10: 11, 11: 10, 20: 21, 21: 20}
    r0 = _result(0, (10, 11, 3, 4, 5), (0, 0, 2, 3, 4), (0, 1, 2, 3, 4))  # twin pair 10/11: 1 of 2 right
    r1 = _result(1, (10, 21, 3, 4, 5), (0, 1, 2, 3, 4), (0, 1, 2, 3, 4))  # twins not together: no twin query
    r2 = _result(2, (20, 21, 10, 11, 5), (1, 1, 2, 3, 4), (0, 1, 2, 3, 4))  # 4 twin queries, 3 right
    assert twin_queries(r0, twins) == [True, True, False, False, False]
    assert twin_queries(r1, twins) == [False] * 5
    assert twin_counts(r2, twins) == (3, 4)
    s = summarize_twin_accuracy([r0, r1, r2], twins)
    assert s.episodes == 2  # r1 holds no twin query
    assert s.mean == pytest.approx(62.5)  # mean of 50% and 75%
    assert s.ci95 == pytest.approx(1.96 * np.std([50.0, 75.0]) / math.sqrt(2))
    assert summarize_twin_accuracy([r1], twins) is None
    assert summarize_twin_accuracy([r0], {}) is None


def test_episode_csv_twin_columns(tmp_path):
    twins = {10: 11, 11: 10}
    r = _result(0, (10, 11, 3), (1, 1, 2), (0, 1, 2))
    write_episode_csv(tmp_path / "e.csv", [r], twins)
    header, row = (tmp_path / "e.csv").read_text().splitlines()
    assert header.endswith("twin_correct,twin_queries")
    assert row.endswith(",1,2")
    assert read_episode_csv(tmp_path / "e.csv") == [r]
