"""benchmarks/track_actor_coverage.py: the scene ground truth it builds, and a run on two tiny videos."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "track_actor_coverage.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("track_actor_coverage", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_true_tracks_reproduce_the_renderers_actor_points(bench):
    from fsar.data.synthetic import SynthConfig
    from fsar.data.synthetic.classes import build_classes

    config = SynthConfig.preset("tiny")  # camera jitter, noise and distractors: every term of the geometry
    class_def = build_classes(config)[3]
    for video_idx in range(3):
        clip = bench.render_clip(config, class_def, video_idx)
        frames = np.arange(0, config.num_frames, 2)  # a timeline that skips frames
        points, visible = clip.points[frames], clip.visible[frames]
        seen = visible.any(axis=0)
        first = visible.argmax(axis=0)[seen]
        query_xy = points[first, np.flatnonzero(seen)]
        gt, gt_visible, layer = bench.true_tracks(clip, frames, first, query_xy)
        np.testing.assert_array_equal(layer, 0)  # visible actor points: the actor is on top
        np.testing.assert_allclose(gt, points[:, seen], atol=1e-3)
        np.testing.assert_array_equal(gt_visible, visible[:, seen])
        # The rendered actor mask agrees with the geometry: visible actor points lie in it.
        assert bench.in_mask(clip.actor_mask[frames], gt)[gt_visible].mean() > 0.95


def test_in_mask_rounds_to_the_pixel_and_is_false_outside(bench):
    mask = np.zeros((1, 4, 5), bool)
    mask[0, 1, 2] = True
    xy = np.array([[[2.4, 0.6], [1.4, 1.0], [2.0, 1.49], [-3.0, 1.0], [2.0, 9.0]]], np.float32)
    np.testing.assert_array_equal(bench.in_mask(mask, xy), [[True, False, True, False, False]])


def test_run_on_two_tiny_videos(bench, tmp_path):
    out = tmp_path / "out"
    rows = ["grid:grid_size=4,points=8", "motion:grid_size=4,points=8,query_points=motion,max_dist=2"]
    argv = ["--synthetic", str(tmp_path / "syn"), "--preset", "tiny", "--every", "45", "--out", str(out)]
    assert bench.main([*argv, *[a for r in rows for a in ("--row", r)]]) == 1  # nothing rendered yet
    assert bench.main([*argv, "--render", *[a for r in rows for a in ("--row", r)]]) == 0
    report = json.loads((out / "track_actor_coverage.json").read_text())
    assert report["num_videos"] == 2 and [r["name"] for r in report["results"]] == ["grid", "motion"]
    for r in report["results"]:
        assert r["videos"] == 2
        assert r["all_on_actor"] == pytest.approx(r["visible"] * r["vis_on_actor"])
        assert 0 <= r["vis_on_actor"] <= 1 and r["all_on_actor"] <= r["pos_on_actor"] <= 1
    grid, motion = report["results"]
    assert grid["settings"]["grid_size"] == 4 and motion["settings"]["query_points"] == "motion"
    assert motion["points_queried_on_actor"] > grid["points_queried_on_actor"]
    assert "| motion |" in (out / "track_actor_coverage.md").read_text()
