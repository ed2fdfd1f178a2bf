"""benchmarks/bench_trackers.py on a hand-made synthetic folder with exact ground truth."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from .video_fixtures import translating_texture, write_video

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_trackers.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_trackers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_synthetic(root, name, step, T=8, H=48, W=64, seed=0):
    write_video(root / "videos" / "move" / f"{name}.mp4", translating_texture(T, H, W, step, seed=seed))
    start = np.stack(np.meshgrid(np.linspace(8, W - 9, 5), np.linspace(8, H - 9, 4)), -1).reshape(-1, 2)
    points = (start[None] + np.arange(T)[:, None, None] * np.array(step)).astype(np.float32)
    visible = (
        (points[..., 0] >= 0) & (points[..., 0] <= W - 1) & (points[..., 1] >= 0) & (points[..., 1] <= H - 1)
    )
    traj = root / "trajectories" / "move" / f"{name}.npz"
    traj.parent.mkdir(parents=True, exist_ok=True)
    np.savez(traj, points=points, visible=visible, frame_size=np.array([H, W]))


def test_lk_is_accurate_on_translations_and_outputs_are_written(bench, tmp_path):
    make_synthetic(tmp_path / "syn", "a", (1.25, 0.5), seed=1)
    make_synthetic(tmp_path / "syn", "b", (-2.0, 1.0), seed=2)
    make_synthetic(tmp_path / "syn", "c", (0.0, 0.0), seed=3)
    out = tmp_path / "out"
    assert bench.main(["--synthetic", str(tmp_path / "syn"), "--limit", "2", "--out", str(out)]) == 0
    report = json.loads((out / "bench_trackers.json").read_text())
    assert report["num_videos"] == 2
    (result,) = report["results"]
    assert result["tracker"] == "lk" and result["num_videos"] == 2
    assert result["num_evaluated"] > 150
    assert result["mean_error"] < 0.5 and result["delta_1"] > 0.9 and result["delta_16"] == 1.0
    assert result["videos_per_s"] > 0
    table = (out / "bench_trackers.md").read_text()
    assert "| lk |" in table and "<16px" in table


def test_tracker_specs_give_one_row_each(bench, tmp_path):
    assert bench.parse_tracker_spec("lk:fb_threshold=2.0,win_size=21") == (
        "lk",
        {"fb_threshold": 2.0, "win_size": 21},
    )
    assert bench.parse_tracker_spec("lk") == ("lk", {})
    make_synthetic(tmp_path / "syn", "a", (1.0, 0.0))
    out = tmp_path / "out"
    argv = [
        "--synthetic",
        str(tmp_path / "syn"),
        "--out",
        str(out),
        "--tracker",
        "lk",
        "--tracker",
        "lk:win_size=7",
    ]
    assert bench.main(argv) == 0
    results = json.loads((out / "bench_trackers.json").read_text())["results"]
    assert [r["params"]["win_size"] for r in results] == [11, 7]


def test_queries_start_at_the_first_visible_frame_and_are_clamped(bench):
    points = np.array([[[5.0, 5.0], [-0.2, 3.0]], [[6.0, 5.0], [0.5, 3.0]]], np.float32)
    visible = np.array([[False, True], [True, True]])
    queries, clamped = bench.ground_truth_queries(points, visible, (10, 10))
    np.testing.assert_array_equal(queries.query_frame, [1, 0])
    np.testing.assert_array_equal(queries.xy, [[6.0, 5.0], [0.0, 3.0]])
    assert clamped == 1


def test_mismatched_ground_truth_is_an_error(bench, tmp_path):
    make_synthetic(tmp_path / "syn", "a", (1.0, 0.0), T=6)
    traj = tmp_path / "syn" / "trajectories" / "move" / "a.npz"
    with np.load(traj) as data:
        arrays = dict(data)
    np.savez(traj, **{**arrays, "points": arrays["points"][:4], "visible": arrays["visible"][:4]})
    with pytest.raises(ValueError, match="6 frames .* describes 4 frames"):
        bench.main(["--synthetic", str(tmp_path / "syn"), "--out", str(tmp_path / "out")])
    (tmp_path / "syn" / "videos" / "move" / "a.mp4").unlink()
    with pytest.raises(FileNotFoundError, match="no video"):
        bench.main(["--synthetic", str(tmp_path / "syn"), "--out", str(tmp_path / "out")])


def test_protocol_mode_compares_with_an_earlier_revision(bench, tmp_path):
    """Today's recipe with the reference's LK settings gives the reference revision's files, byte for byte."""
    import shutil
    import subprocess

    repo = SCRIPT.parents[1]
    if (
        shutil.which("git") is None
        or subprocess.run(
            ["git", "-C", str(repo), "cat-file", "-e", "44f8a1e"], capture_output=True
        ).returncode
    ):
        pytest.skip("needs the git history (revision 44f8a1e)")
    make_synthetic(tmp_path / "syn", "a", (1.25, 0.5), seed=1)
    make_synthetic(tmp_path / "syn", "b", (-2.0, 1.0), seed=2)
    out = tmp_path / "out"
    argv = ["--synthetic", str(tmp_path / "syn"), "--protocol", "--grid", "8", "--points", "32"]
    argv += ["--tracker", "lk:win_size=15,max_iterations=30,epsilon=0.01", "--out", str(out)]
    assert bench.main(argv) == 0
    report = json.loads((out / "bench_tracking_protocol.json").read_text())
    assert report["num_videos"] == 2 and report["identical_files"] == 2
    assert report["reference"]["cpu_s_per_video"] > 0 and report["new"]["videos_per_s_two_cores"] > 0
    assert "revision 44f8a1e" in (out / "bench_tracking_protocol.md").read_text()
