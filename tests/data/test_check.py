import json

import numpy as np
import pytest

from fsar.data.benchmarks import load_benchmark
from fsar.data.check import check_benchmark, require_complete
from fsar.errors import MissingVideosError
from tests.helpers import make_frames, write_encoded_video, write_frame_folder


def make_dataset(tmp_path, n_missing_train=1):
    """A tiny class-folder benchmark: good, short, corrupt, empty-folder and missing videos."""
    root = tmp_path / "videos"
    write_encoded_video(root / "jump" / "j1.mp4", make_frames(12, 32, 32, seed=0))
    write_frame_folder(root / "jump" / "j2", make_frames(10, 32, 32, seed=1))
    write_encoded_video(root / "run" / "r1.mp4", make_frames(5, 32, 32, seed=2))  # short (< 8)
    (root / "run" / "r2.mp4").write_bytes(
        np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes()
    )
    (root / "run" / "r3").mkdir(parents=True)  # empty frame folder
    write_encoded_video(root / "sit" / "s1.mp4", make_frames(9, 32, 32, seed=3))
    splits = tmp_path / "splits"
    splits.mkdir()
    train = ["jump/j1", "jump/j2", "run/r1", "run/r2", "run/r3"] + [
        f"jump/gone{i}" for i in range(n_missing_train)
    ]
    (splits / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (splits / "testlist01.txt").write_text("sit/s1\n")
    return load_benchmark("synthetic", root, splits)


def test_check_lists_missing_unreadable_and_short(tmp_path):
    bench = make_dataset(tmp_path)
    report = check_benchmark(bench, num_frames=8)
    assert not report.ok
    train, test = report.splits
    assert (train.split, train.num_classes, train.num_videos, train.num_present) == ("train", 2, 6, 5)
    assert [(p.entry, p.line) for p in train.missing] == [("jump/gone0", 6)]
    assert [p.entry for p in train.unreadable] == ["run/r2", "run/r3"]
    assert "re-encode" in train.unreadable[0].reason and "empty frame folder" in train.unreadable[1].reason
    assert [(p.entry, p.num_frames) for p in train.short] == [("run/r1", 5)]
    assert (test.num_videos, test.missing, test.unreadable, test.short) == (1, [], [], [])
    assert any("val: no vallistNN.txt" in n for n in report.notes)
    assert any("1 videos have fewer than 8 frames" in n for n in report.notes)
    # the boundary: a video of T - 1 frames is short, one of exactly T frames is not
    assert [p.entry for p in check_benchmark(bench, num_frames=6).splits[0].short] == ["run/r1"]
    assert check_benchmark(bench, num_frames=5).splits[0].short == []

    text = report.format()
    for needle in [
        "line 6: jump/gone0",
        "run/r2",
        "empty frame folder",
        "run/r1: 5 frames",
        "PROBLEMS (1 missing, 2 unreadable)",
    ]:
        assert needle in text
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["splits"][0]["num_present"] == 5
    assert data["splits"][0]["missing"][0] == {
        "entry": "jump/gone0",
        "line": 6,
        "path": None,
        "reason": None,
        "num_frames": None,
    }


def test_check_without_decode_and_with_threads(tmp_path):
    bench = make_dataset(tmp_path)
    fast = check_benchmark(bench, num_frames=8, decode=False)
    assert [len(s.missing) for s in fast.splits] == [1, 0]
    assert all(not s.unreadable and not s.short for s in fast.splits)
    assert "existence only" in fast.format()
    threaded = check_benchmark(bench, num_frames=8, workers=3)
    serial = check_benchmark(bench, num_frames=8, workers=1)
    assert threaded.to_dict() == serial.to_dict()


def test_check_notes_canonical_count_differences(tmp_path):
    root = tmp_path / "v"
    root.mkdir()
    splits = tmp_path / "s"
    splits.mkdir()
    (splits / "testlist03.txt").write_text("fencing/a\nkick/b\n")
    report = check_benchmark(load_benchmark("hmdb51", root, splits), splits=("test",), decode=False)
    assert "test: 2 classes in the split file; the canonical hmdb51 split has 10" in report.notes
    assert any("test: 2 videos in the split file" in n and "1292" in n for n in report.notes)


def test_require_complete(tmp_path):
    bench = make_dataset(tmp_path, n_missing_train=25)
    train = bench.split("train")
    with pytest.raises(MissingVideosError) as info:
        require_complete(train, allow_missing=False, report_path=tmp_path / "skipped.txt")
    msg = str(info.value)
    assert "25 of 30 videos of the synthetic train split" in msg and "trainlist01.txt" in msg
    assert "line 6: jump/gone0" in msg and "jump/gone19" in msg and "jump/gone20" not in msg
    assert "... and 5 more" in msg and "data.allow_missing=true" in msg
    assert not (tmp_path / "skipped.txt").exists()

    report = tmp_path / "run" / "skipped_train.txt"
    kept = require_complete(train, allow_missing=True, report_path=report)
    assert [r.entry for r in kept] == ["jump/j1", "jump/j2", "run/r1", "run/r2", "run/r3"]
    assert report.read_text().splitlines() == [f"jump/gone{i}" for i in range(25)]

    test = bench.split("test")
    assert require_complete(test, allow_missing=False) == test.records


def make_damaged(tmp_path):
    """Videos whose damage the sampled-frame check cannot see, plus a truncated mp4."""
    from tests.data.test_video import corrupt_packet_payload

    root = tmp_path / "videos"
    folder = write_frame_folder(root / "jump" / "corrupt_jpeg", make_frames(20, 32, 32, seed=0))
    (folder / "img_4.jpg").write_bytes(b"not a jpeg")  # index 3: not among the 8 uniform frames + the last
    cut = write_frame_folder(root / "jump" / "cut_jpeg", make_frames(20, 32, 32, seed=1))
    (cut / "img_7.jpg").write_bytes((cut / "img_7.jpg").read_bytes()[:-200])  # index 6: not sampled either
    good = write_encoded_video(root / "run" / "good.mp4", make_frames(20, 32, 32, seed=2))
    data = good.read_bytes()
    (root / "run" / "truncated.mp4").write_bytes(data[: len(data) * 2 // 3])
    corrupt_packet_payload(good, 10, root / "run" / "concealed.mp4")
    write_encoded_video(root / "sit" / "fine.mp4", make_frames(9, 32, 32, seed=3))
    splits = tmp_path / "splits"
    splits.mkdir()
    train = ["jump/corrupt_jpeg", "jump/cut_jpeg", "run/good", "run/truncated", "run/concealed"]
    (splits / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (splits / "testlist01.txt").write_text("sit/fine\n")
    return load_benchmark("synthetic", root, splits)


def test_full_check_reads_every_frame(tmp_path):
    bench = make_damaged(tmp_path)
    sampled = check_benchmark(bench, num_frames=8)
    assert [p.entry for p in sampled.splits[0].unreadable] == ["run/truncated"]  # cannot be opened at all
    full = check_benchmark(bench, num_frames=8, full=True)
    train, test = full.splits
    reasons = {p.entry: p.reason for p in train.unreadable}
    assert sorted(reasons) == ["jump/corrupt_jpeg", "jump/cut_jpeg", "run/concealed", "run/truncated"]
    assert reasons["jump/corrupt_jpeg"].startswith("img_4.jpg: unreadable frame image")
    assert reasons["jump/cut_jpeg"].startswith("img_7.jpg: the JPEG file does not end with its end-of-image")
    assert (
        reasons["run/concealed"].startswith("the decoder reported")
        and "re-encode" in reasons["run/truncated"]
    )
    assert (test.unreadable, test.short) == ([], [])
    text = full.format()
    assert "every frame of every video (--full" in text and "PROBLEMS (0 missing, 4 unreadable)" in text
    threaded = check_benchmark(bench, num_frames=8, full=True, workers=3)
    assert threaded.to_dict() == full.to_dict()  # the same errors are found again (none dropped as repeats)


def test_empty_split_list_is_reported_and_other_splits_are_checked(tmp_path):
    make_dataset(tmp_path, n_missing_train=0)
    (tmp_path / "splits" / "trainlist01.txt").write_text("\n\n")
    (tmp_path / "splits" / "vallist01.txt").write_text("jump/j1\njump/nope\n")
    report = check_benchmark(
        load_benchmark("synthetic", tmp_path / "videos", tmp_path / "splits"), num_frames=8
    )
    assert [s.split for s in report.splits] == ["train", "val", "test"] and not report.ok
    train, val, test = report.splits
    assert "trainlist01.txt: the split list has no entries" in train.error
    assert [p.entry for p in val.missing] == ["jump/nope"] and test.num_present == 1
    text = report.format()
    assert "Split file problem, train" in text and "the split list has no entries" in text
    assert "PROBLEMS (1 missing, 0 unreadable, 1 unreadable split file)" in text
    assert json.loads(report.to_json())["splits"][0]["error"] == train.error
