"""The demo's figures: valid PNGs whose plotted values are the results' and the validation logs'."""

import struct

import numpy as np
import pytest

from fsar.engine.demo_figures import (
    plot_results,
    plot_validation_curves,
    read_validation_log,
    results_figure,
    validation_figure,
)
from fsar.errors import FsarError

ROWS = [
    {
        "method": "protonet",
        "test_mean": 84.4,
        "test_ci95": 1.01,
        "test_twin_mean": 54.85,
        "test_twin_ci95": 4.38,
    },
    {
        "method": "otam",
        "test_mean": 91.58,
        "test_ci95": 0.76,
        "test_twin_mean": 87.31,
        "test_twin_ci95": 3.16,
    },
]


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_results_figure_draws_each_method_standard_and_twin_with_chance(tmp_path):
    figure = results_figure(ROWS, way=5)
    ax = figure.axes[0]
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == pytest.approx([84.4, 91.58, 54.85, 87.31])  # standard bars, then twin bars
    assert [t.get_text() for t in ax.get_xticklabels()] == ["protonet", "otam"]
    chance = [line for line in ax.get_lines() if np.allclose(line.get_ydata(), 20.0)]
    assert chance, "chance (20% for 5-way) is not marked"
    out = plot_results(ROWS, tmp_path / "results.png")
    width, height = png_size(out)
    assert 400 <= width <= 2000 and 300 <= height <= 1200


def test_validation_curves_read_each_run_log(tmp_path):
    for method, accs in (("protonet", (50.0, 60.5)), ("otam", (55.0, 70.25))):
        run = tmp_path / method
        run.mkdir()
        rows = "".join(f"{t},val,{a},2.0\n" for t, a in zip((100, 200), accs))
        (run / "val_log.csv").write_text("tasks,split,acc,ci95\n" + rows)
    assert read_validation_log(tmp_path / "otam" / "val_log.csv") == ([100, 200], [55.0, 70.25], [2.0, 2.0])
    runs = {"protonet": tmp_path / "protonet", "otam": tmp_path / "otam"}
    lines = [line for line in validation_figure(runs).axes[0].get_lines() if line.get_label() in runs]
    assert [list(line.get_ydata()) for line in lines] == [[50.0, 60.5], [55.0, 70.25]]
    width, height = png_size(plot_validation_curves(runs, tmp_path / "validation.png"))
    assert width >= 400 and height >= 300


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(FsarError, match="no method"):
        results_figure([])
    with pytest.raises(FsarError, match="test_ci95"):
        results_figure([{"method": "x", "test_mean": 1.0}])
    with pytest.raises(FsarError, match="val_log.csv does not exist"):
        validation_figure({"otam": tmp_path})
    (tmp_path / "val_log.csv").write_text("tasks,acc\n1,2\n")
    with pytest.raises(FsarError, match="ci95"):
        read_validation_log(tmp_path / "val_log.csv")


def test_extended_demo_methods_follow_the_default_ones(monkeypatch):
    import fsar.engine.demo as demo

    assert demo.demo_methods() == list(demo.DEMO_METHODS)
    monkeypatch.setattr(demo, "EXTENDED_DEMO_METHODS", ("strm", "molo"))
    assert demo.demo_methods(extended=True) == [*demo.DEMO_METHODS, "strm", "molo"]
    assert "tats" in demo.TRACK_METHODS and "protonet" not in demo.TRACK_METHODS
    with pytest.raises(ValueError, match="jobs"):
        demo.run_demo("unused", jobs=0)
