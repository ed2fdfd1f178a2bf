"""The field's few-shot evaluation protocol: per-episode accuracy, mean and 95% intervals, per-episode CSV.

Convention (TRX, TA2N; see field.md §5): the reported number is the mean over episodes of the per-episode top-1
accuracy, in percent, with the 95% interval ``1.96 * sigma / sqrt(N)`` where sigma is the population standard
deviation (ddof 0) of the per-episode accuracies. We also report the Student-t interval
``t_{0.975, N-1} * s / sqrt(N)`` (s with ddof 1), as LibFewShot does.
"""

from __future__ import annotations

import csv
import functools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


def _t_pdf(x: float, df: int) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))


def _t_cdf(x: float, df: int, steps: int = 4000) -> float:
    """CDF of Student's t by Simpson integration of the density from 0 to x (x >= 0)."""
    h = x / steps
    total = _t_pdf(0.0, df) + _t_pdf(x, df)
    for k in range(1, steps):
        total += (4 if k % 2 else 2) * _t_pdf(k * h, df)
    return 0.5 + total * h / 3


@functools.lru_cache(maxsize=256)
def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (bisection on the CDF; cached: a pure
    function, and a quarter of a second of Python per call)."""
    if df < 1:
        return math.nan
    if df > 100_000:
        return 1.959963984540054
    lo, hi = 1.9, 13.0 if df > 1 else 20.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if _t_cdf(mid, df) < 0.975:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class AccuracySummary:
    """Mean accuracy over episodes (percent) with its 95% intervals."""

    mean: float
    ci95: float
    ci95_t: float
    std: float
    episodes: int

    def format(self) -> str:
        return f"{self.mean:.2f} ± {self.ci95:.2f}"

    def to_dict(self) -> dict:
        return asdict(self)


def summarize_accuracies(accuracies: Sequence[float] | np.ndarray) -> AccuracySummary:
    """Summarise per-episode accuracies given as fractions in [0, 1]."""
    acc = np.asarray(accuracies, dtype=np.float64) * 100.0
    n = int(acc.size)
    if n == 0:
        raise ValueError("no episodes to summarise")
    mean = float(acc.mean())
    std0 = float(acc.std(ddof=0))
    ci95 = 1.96 * std0 / math.sqrt(n)
    if n > 1:
        ci95_t = t_quantile_975(n - 1) * float(acc.std(ddof=1)) / math.sqrt(n)
    else:
        ci95_t = math.nan
    return AccuracySummary(mean=mean, ci95=ci95, ci95_t=ci95_t, std=std0, episodes=n)


@dataclass(frozen=True)
class EpisodeResult:
    """The outcome of one evaluated episode."""

    episode: int
    correct: int
    queries: int
    classes: tuple[int, ...]
    predictions: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def accuracy(self) -> float:
        return self.correct / self.queries


def twin_queries(result: EpisodeResult, twins: Mapping[int, int]) -> list[bool]:
    """Which queries of ``result`` are *twin queries*: their class's reversed-order twin (``twins``: split label
    -> split label) is also a class of the episode, so only temporal order tells the two apart."""
    classes = set(result.classes)
    return [twins.get(result.classes[y], -1) in classes for y in result.labels]


def twin_counts(result: EpisodeResult, twins: Mapping[int, int]) -> tuple[int, int]:
    """``(correct, total)`` over the twin queries of one episode."""
    mask = twin_queries(result, twins)
    correct = sum(1 for m, p, y in zip(mask, result.predictions, result.labels) if m and p == y)
    return correct, sum(mask)


def summarize_twin_accuracy(
    results: Sequence[EpisodeResult], twins: Mapping[int, int] | None
) -> AccuracySummary | None:
    """Accuracy on twin queries: the mean over the episodes that hold at least one twin query of their twin-query
    accuracy, with the protocol's intervals over those episodes. ``None`` without twins or twin queries."""
    if not twins:
        return None
    per_episode = [c / n for c, n in (twin_counts(r, twins) for r in results) if n]
    return summarize_accuracies(per_episode) if per_episode else None


def write_episode_csv(
    path: str | Path, results: Sequence[EpisodeResult], twins: Mapping[int, int] | None = None
) -> None:
    """One row per episode: index, accuracy, correct, queries, the episode's classes, predictions and labels;
    with ``twins`` (split label -> its reversed-order twin's label) also the correct and total twin queries."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        header = ["episode", "accuracy", "correct", "queries", "classes", "predictions", "labels"]
        writer.writerow(header + (["twin_correct", "twin_queries"] if twins else []))
        for r in sorted(results, key=lambda r: r.episode):
            row = [
                r.episode,
                f"{r.accuracy:.6f}",
                r.correct,
                r.queries,
                " ".join(map(str, r.classes)),
                " ".join(map(str, r.predictions)),
                " ".join(map(str, r.labels)),
            ]
            writer.writerow(row + (list(twin_counts(r, twins)) if twins else []))
    os.replace(tmp, path)


def read_episode_csv(path: str | Path) -> list[EpisodeResult]:
    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))

    def ints(s: str) -> tuple[int, ...]:
        return tuple(int(x) for x in s.split()) if s else ()

    return [
        EpisodeResult(
            episode=int(r["episode"]),
            correct=int(r["correct"]),
            queries=int(r["queries"]),
            classes=ints(r["classes"]),
            predictions=ints(r["predictions"]),
            labels=ints(r["labels"]),
        )
        for r in rows
    ]
