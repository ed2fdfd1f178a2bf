"""``fsar track`` end to end on tiny videos made on the fly."""

import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from fsar.cli.main import main
from fsar.tracking.trackfile import TrackFile
from tests.tracking.video_fixtures import translating_texture, write_video

FAST = ["--grid", "4", "--points", "8", "--no-progress"]


@pytest.fixture
def videos(tmp_path):
    root = tmp_path / "videos"
    write_video(root / "jump" / "v1.mp4", translating_texture(10, 48, 64, (1.0, 0.5), seed=1), fps=10)
    write_video(root / "jump" / "v2.mp4", translating_texture(8, 48, 64, (0.0, 1.0), seed=2), fps=10)
    (root / "sit").mkdir()
    (root / "sit" / "bad.mp4").write_bytes(b"not a video")
    return root


def test_folder_mode_tracks_reports_failures_and_skips_on_rerun(videos, tmp_path, capsys):
    out = tmp_path / "tracks"
    code = main(
        ["track", "--videos", str(videos), "--out", str(out), "--tracker-option", "fb_threshold=1.5", *FAST]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "2 tracked, 0 already complete, 1 failed" in captured.out
    assert "FAILED" in captured.err and "bad.mp4" in captured.err
    assert "bad.mp4" in (out / "errors.txt").read_text()
    track_file = TrackFile.load(out / "jump" / "v1.npz")
    assert track_file.tracker == "lk" and track_file.params["tracker"]["fb_threshold"] == 1.5
    assert track_file.sampled_indices.shape == (8,) and track_file.num_points_total == 7 * 16
    np.testing.assert_array_equal(track_file.timeline, np.arange(10))

    (videos / "sit" / "bad.mp4").unlink()
    code = main(
        ["track", "--videos", str(videos), "--out", str(out), "--tracker-option", "fb_threshold=1.5", *FAST]
    )
    assert code == 0
    assert "0 tracked, 2 already complete, 0 failed" in capsys.readouterr().out
    assert not (out / "errors.txt").exists()

    # Other parameters: the files are re-made.
    code = main(["track", "--videos", str(videos), "--out", str(out), "--seed", "5", *FAST])
    assert code == 0 and "2 tracked" in capsys.readouterr().out
    assert TrackFile.load(out / "jump" / "v1.npz").params["seed"] == 5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--out", "o"], "exactly one of --videos"),
        (["--videos", "v", "--benchmark", "b", "--out", "o"], "exactly one of --videos"),
        (["--videos", "v", "--out", "o", "--tracker", "raft"], "unknown tracker 'raft'"),
        (["--videos", "v", "--out", "o", "--tracker-option", "win_size=4"], "win_size must be an odd"),
        (
            ["--videos", "v", "--out", "o", "--tracker-option", "bogus=1"],
            "lk: unknown option(s) bogus; valid options: epsilon",
        ),
        (["--videos", "nowhere", "--out", "o"], "nowhere does not exist"),
    ],
)
def test_usage_errors_are_clear(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "v").mkdir()
    assert main(["track", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cotracker_without_package_says_how_to_install(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cotracker", None)
    code = main(["track", "--videos", str(tmp_path), "--out", str(tmp_path / "o"), "--tracker", "cotracker"])
    assert code == 2
    assert "'cotracker' is not importable" in capsys.readouterr().err


@dataclass
class FakeRecord:
    video_id: str
    class_name: str
    path: Path | None


def test_benchmark_mode_uses_the_benchmark_records(videos, tmp_path, capsys, monkeypatch):
    calls = {}

    class FakeSplit:
        def __init__(self, records):
            self.records = records

    class FakeBenchmark:
        def split(self, name):
            records = {
                "train": [FakeRecord("v1", "jump", videos / "jump" / "v1.mp4")],
                "val": [FakeRecord("gone", "sit", None)],
                "test": [FakeRecord("v2", "jump", videos / "jump" / "v2.mp4")],
            }
            return FakeSplit(records[name])

    def load_benchmark(name, root, splits_dir, split_id=None):
        calls.update(name=name, root=Path(root), splits_dir=Path(splits_dir), split_id=split_id)
        return FakeBenchmark()

    fake = types.ModuleType("fsar.data.benchmarks")
    fake.load_benchmark = load_benchmark
    monkeypatch.setitem(sys.modules, "fsar.data.benchmarks", fake)
    out = tmp_path / "tracks"
    argv = [
        "track",
        "--benchmark",
        "ucf101",
        "--root",
        str(videos),
        "--splits",
        str(tmp_path),
        "--out",
        str(out),
    ]
    code = main([*argv, "--split-id", "ARN", *FAST])
    assert code == 1  # the missing video is reported
    assert calls == dict(name="ucf101", root=videos, splits_dir=tmp_path, split_id="ARN")
    assert "gone: video missing" in (out / "errors.txt").read_text()
    assert TrackFile.load(out / "jump" / "v1.npz").video_id == "v1"
    assert TrackFile.load(out / "jump" / "v2.npz").video_id == "v2"
    capsys.readouterr()
    assert main([*argv, "--split-names", "train,test", *FAST]) == 0
    assert "2 already complete" in capsys.readouterr().out


def test_benchmark_mode_on_the_real_synthetic_benchmark(tmp_path, capsys):
    syn = tmp_path / "syn"
    synth = ["synth", "--out", str(syn), "--preset", "tiny", "--classes", "6", "--videos-per-class", "2"]
    assert main([*synth, "--quiet", "--workers", "1"]) == 0
    out = tmp_path / "tracks"
    assert main(["track", "--benchmark", "synthetic", "--root", str(syn), "--out", str(out), *FAST]) == 0
    videos = sorted((syn / "videos").rglob("*.mp4"))
    outputs = sorted(out.rglob("*.npz"))
    assert len(outputs) == len(videos) == 12
    assert [p.relative_to(out).with_suffix("") for p in outputs] == [
        p.relative_to(syn / "videos").with_suffix("") for p in videos
    ]
    track_file = TrackFile.load(outputs[0])
    assert track_file.video_id == outputs[0].stem  # the benchmark's video id seeds the subset


def test_motion_query_points_from_the_command_line(tmp_path, capsys):
    from tests.tracking.video_fixtures import moving_square, square_mask

    square = dict(num_frames=10, height=48, width=64, size=12, start=(4, 18), step=(4, 0))
    write_video(tmp_path / "videos" / "push" / "a.mp4", moving_square(**square, seed=1), fps=10)
    out = tmp_path / "tracks"
    argv = ["track", "--videos", str(tmp_path / "videos"), "--out", str(out), *FAST]
    assert main([*argv, "--query-points", "motion", "--motion-option", "spacing=3"]) == 0
    track_file = TrackFile.load(out / "push" / "a.npz")
    params = track_file.params
    assert params["query_points"] == "motion" and params["prefer_picked"] is True
    assert params["motion"]["spacing"] == 3.0 and params["motion"]["reference"] == "median"
    ids = track_file.sampled_indices
    rows = track_file.query_frame[ids]
    xy = np.rint(track_file.tracks[rows, ids]).astype(int)
    assert square_mask(**square)[rows, xy[:, 1], xy[:, 0]].all()  # all 8 points start on the square

    capsys.readouterr()
    assert main([*argv, "--query-points", "motion", "--motion-option", "spacing=3"]) == 0
    assert "0 tracked, 1 already complete" in capsys.readouterr().out
    assert main([*argv, "--query-points", "motion", "--uniform-subset"]) == 0
    assert TrackFile.load(out / "push" / "a.npz").params["prefer_picked"] is False
    assert main(argv) == 0  # back to the grid: re-made without the motion keys
    assert "query_points" not in TrackFile.load(out / "push" / "a.npz").params


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--motion-option", "spacing=3"], "need --query-points motion"),
        (["--uniform-subset"], "need --query-points motion"),
        (
            ["--query-points", "motion", "--motion-option", "radius=3"],
            "unknown --motion-option radius; valid: reference, gap, sigma, erode, spacing, threshold",
        ),
        (["--query-points", "motion", "--motion-option", "threshold=0"], "threshold must be > 0"),
        (["--query-points", "motion", "--motion-option", "reference=mean"], "unknown reference 'mean'"),
    ],
)
def test_motion_option_errors_are_clear(extra, message, tmp_path, capsys):
    (tmp_path / "v").mkdir()
    assert main(["track", "--videos", str(tmp_path / "v"), "--out", str(tmp_path / "o"), *extra]) == 2
    assert message in capsys.readouterr().err
