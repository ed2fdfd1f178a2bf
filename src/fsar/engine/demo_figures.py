"""The demo's two figures (matplotlib, Agg canvas; no pyplot, so no global backend state is touched).

* :func:`plot_results`: per method, standard and twin-query test accuracy side by side with their 95% intervals
  (the ``test_*`` and ``test_twin_*`` entries of ``results.json``), and chance (100 / way) marked.
* :func:`plot_validation_curves`: per method, validation accuracy (with its 95% interval as a band) against
  training episodes, read from each run's ``val_log.csv`` (columns ``tasks``, ``acc``, ``ci95``).
"""

from __future__ import annotations

import csv
from pathlib import Path

from fsar.errors import FsarError

STANDARD_COLOUR = "#4C72B0"
TWIN_COLOUR = "#DD8452"


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    return out


def plot_results(rows: list[dict], out: str | Path, way: int = 5) -> Path:
    """Bar chart of ``rows`` (``results.json`` entries, one per method) into ``out`` (PNG); returns ``out``."""
    return _save(results_figure(rows, way), out)


def plot_validation_curves(runs: dict[str, str | Path], out: str | Path, way: int = 5) -> Path:
    """Validation accuracy per method (``runs``: method -> run folder holding ``val_log.csv``) into ``out``."""
    return _save(validation_figure(runs, way), out)


def results_figure(rows: list[dict], way: int = 5):
    """The :func:`plot_results` figure (bars in method order: standard queries, then twin queries)."""
    import numpy as np

    if not rows:
        raise FsarError("no results to plot: the demo ran no method")
    for row in rows:
        missing = [k for k in ("method", "test_mean", "test_ci95") if k not in row]
        if missing:
            raise FsarError(f"results entry {row.get('method', '?')!r} lacks {', '.join(missing)}")
    methods = [row["method"] for row in rows]
    x = np.arange(len(rows))
    width = 0.38
    figure = _figure(max(5.0, 1.25 * len(rows) + 2.0), 4.5)
    ax = figure.add_subplot()
    series = [
        ("standard queries", "test", STANDARD_COLOUR, -width / 2),
        ("twin queries (only order tells the twins apart)", "test_twin", TWIN_COLOUR, width / 2),
    ]
    for label, key, colour, shift in series:
        means = [row.get(f"{key}_mean", float("nan")) for row in rows]
        errors = [row.get(f"{key}_ci95", 0.0) or 0.0 for row in rows]
        ax.bar(x + shift, means, width, yerr=errors, capsize=3, color=colour, label=label)
        for xi, m, e in zip(x + shift, means, errors):  # the value above its interval
            ax.text(xi, m + e + 1.0, f"{m:.1f}", ha="center", va="bottom", fontsize=7)
    chance = 100.0 / way
    ax.axhline(chance, color="0.3", linestyle="--", linewidth=1, label=f"chance ({chance:.0f}%)")
    ax.set_xticks(x, methods)
    ax.set_ylim(0, 108)
    ax.set_ylabel(f"{way}-way 1-shot test accuracy (%)")
    ax.set_title("fsar demo: test accuracy with 95% intervals", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def read_validation_log(path: str | Path) -> tuple[list[int], list[float], list[float]]:
    """(training episodes, accuracy %, 95% interval) of a run's ``val_log.csv``."""
    path = Path(path)
    tasks, acc, ci = [], [], []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"tasks", "acc", "ci95"} - set(reader.fieldnames or [])
        if missing:
            raise FsarError(
                f"{path}: missing column(s) {', '.join(sorted(missing))} (expected tasks, acc, ci95)"
            )
        for line, row in enumerate(reader, start=2):
            try:
                tasks.append(int(row["tasks"]))
                acc.append(float(row["acc"]))
                ci.append(float(row["ci95"]))
            except ValueError:
                raise FsarError(f"{path}:{line}: not a number in {row}") from None
    return tasks, acc, ci


def validation_figure(runs: dict[str, str | Path], way: int = 5):
    """The :func:`plot_validation_curves` figure (one line per method, in ``runs`` order)."""
    import numpy as np

    if not runs:
        raise FsarError("no runs to plot")
    figure = _figure(6.4, 4.2)
    ax = figure.add_subplot()
    colours = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
    for i, (method, run_dir) in enumerate(runs.items()):
        log = Path(run_dir) / "val_log.csv"
        if not log.is_file():
            raise FsarError(f"{log} does not exist: the run of {method!r} wrote no validation log")
        tasks, acc, ci = read_validation_log(log)
        colour = colours[i % len(colours)]
        t, a, c = np.array(tasks), np.array(acc), np.array(ci)
        ax.plot(t, a, marker="o", color=colour, label=method)
        ax.fill_between(t, a - c, a + c, color=colour, alpha=0.15, linewidth=0)
    chance = 100.0 / way
    ax.axhline(chance, color="0.3", linestyle="--", linewidth=1, label=f"chance ({chance:.0f}%)")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training episodes")
    ax.set_ylabel(f"{way}-way 1-shot validation accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("fsar demo: validation accuracy (95% interval bands)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure
