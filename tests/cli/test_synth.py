"""Tests of ``fsar synth``."""

from __future__ import annotations

import json

import pytest

from fsar.cli.main import build_parser, main

SMALL_ARGS = [
    "--preset",
    "tiny",
    "--videos-per-class",
    "1",
    "--frames",
    "8",
    "--size",
    "32",
    "--workers",
    "1",
]


def test_synth_is_listed_in_help(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    assert "synth" in capsys.readouterr().out


def test_synth_writes_the_benchmark_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["synth", "--out", str(out), *SMALL_ARGS, "--seed", "3", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "train    5 classes" in text and "test     5 classes" in text
    assert "15 videos: 15 rendered, 0 already complete" in text
    meta = json.loads((out / "meta.json").read_text())
    cfg = meta["config"]
    assert (cfg["seed"], cfg["num_frames"], cfg["height"], cfg["width"], cfg["videos_per_class"]) == (
        3,
        8,
        32,
        32,
        1,
    )
    assert len((out / "splits" / "trainlist01.txt").read_text().splitlines()) == 5
    assert len(list((out / "videos").glob("*/*.mp4"))) == 15
    # Same command again: nothing to render.
    assert main(["synth", "--out", str(out), *SMALL_ARGS, "--seed", "3", "--quiet"]) == 0
    assert "0 rendered, 15 already complete" in capsys.readouterr().out


def test_synth_classes_keep_the_preset_ratio(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["synth", "--out", str(out), *SMALL_ARGS, "--classes", "31", "--quiet"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"]["classes"] == {"train": 11, "val": 10, "test": 10}
    assert meta["config"]["split_counts"] == [11, 10, 10]


def test_synth_bad_size_names_the_option(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "x"), "--preset", "tiny", "--size", "33"]) == 1
    err = capsys.readouterr().err
    assert "--size" in err and "even" in err
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit):  # argparse rejects non-positive counts
        main(["synth", "--out", str(tmp_path / "x"), "--videos-per-class", "0"])


def test_synth_refuses_other_settings_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["synth", "--out", str(out), *SMALL_ARGS, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["synth", "--out", str(out), *SMALL_ARGS, "--seed", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "other settings (seed: 0 -> 1)" in err and "--overwrite" in err
    assert main(["synth", "--out", str(out), *SMALL_ARGS, "--seed", "1", "--overwrite", "--quiet"]) == 0
    assert json.loads((out / "meta.json").read_text())["config"]["seed"] == 1
