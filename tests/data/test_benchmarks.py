import time
from pathlib import Path

import pytest

from fsar.data.benchmarks import BENCHMARKS, VideoRecord, get_benchmark_spec, load_benchmark, load_synthetic
from fsar.errors import DataLayoutError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_splits(folder: Path, lists: dict[str, list[str]], split_id="03") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, lines in lists.items():
        (folder / f"{split}list{split_id}.txt").write_text("".join(line + "\n" for line in lines))
    return folder


def test_registry_and_specs():
    assert BENCHMARKS.names() == ["hmdb51", "kinetics100", "ssv2_full", "ssv2_small", "synthetic", "ucf101"]
    assert (
        not get_benchmark_spec("ssv2_full").flip_allowed and not get_benchmark_spec("ssv2_small").flip_allowed
    )
    assert get_benchmark_spec("ucf101").flip_allowed
    assert get_benchmark_spec("kinetics100").expected_classes == {"train": 64, "val": 12, "test": 24}
    assert get_benchmark_spec("hmdb51").expected_classes == {"train": 31, "val": 10, "test": 10}
    with pytest.raises(KeyError, match="unknown benchmark 'ssv3'"):
        get_benchmark_spec("ssv3")


def test_class_folder_resolution_with_kinetics_spaces(tmp_path):
    root = tmp_path / "videos"
    a = touch(root / "air_drumming" / "-VtLx-mcPds_000012_000022.mp4")  # spaces replaced by _ on disk
    b = touch(root / "abseiling" / "vid2.webm")
    (root / "abseiling" / "vid3").mkdir(parents=True)  # frame folder
    touch(root / "abseiling" / "vid3" / "img_1.jpg")
    touch(root / "abseiling" / "vid3.mp4")  # the frame folder wins over a same-named file
    touch(root / "abseiling" / "vid4.avi")
    touch(root / "abseiling" / "vid4.mp4")  # mp4 comes before avi
    splits = write_splits(
        tmp_path / "splits",
        {
            "train": [
                "air drumming/-VtLx-mcPds_000012_000022",
                "abseiling/vid2",
                "abseiling/vid3",
                "abseiling/vid4",
                "air drumming/gone_000001_000011",
                "no such class/x",
            ],
            "test": ["abseiling/vid2.webm"],
        },
    )
    bench = load_benchmark("kinetics100", root, splits)
    assert bench.available_splits == ["train", "test"]
    train = bench.split("train")
    assert train.classes == ["air drumming", "abseiling", "no such class"]  # first appearance
    assert [r.label for r in train.records] == [0, 1, 1, 1, 0, 2]
    paths = [r.path for r in train.records]
    assert paths[:4] == [a, b, root / "abseiling" / "vid3", root / "abseiling" / "vid4.mp4"]
    assert paths[4:] == [None, None]
    assert train.records[4] == VideoRecord("gone_000001_000011", "air drumming", 0, None, 5)
    assert [r.entry for r in train.missing] == ["air drumming/gone_000001_000011", "no such class/x"]
    assert len(train.present) == 4 and train.num_classes == 3
    assert bench.split("test").records[0].path == b  # an entry written with its extension
    assert bench.split("train") is train  # parsed once
    with pytest.raises(DataLayoutError, match=r"no vallistNN\.txt .*splits present: train, test"):
        bench.split("val")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        bench.split("dev")


def test_ssv2_resolution_by_id(tmp_path):
    root = tmp_path / "20bn-something-something-v2"
    w = touch(root / "78687.webm")
    (root / "42326").mkdir(parents=True)
    touch(root / "42326" / "00001.jpg")
    splits = write_splits(
        tmp_path / "splits",
        {"train": ["train8/78687", "train50/42326", "train8/999"], "val": ["val2/188509"]},
        split_id="07",
    )
    bench = load_benchmark("ssv2_full", root, splits)
    train = bench.split("train")
    assert train.classes == ["train8", "train50"]
    assert [(r.video_id, r.label, r.path) for r in train.records] == [
        ("78687", 0, w),
        ("42326", 1, root / "42326"),
        ("999", 0, None),
    ]
    assert bench.split("val").records[0].path is None


def test_errors_for_missing_root_and_ambiguous_split_ids(tmp_path):
    splits = write_splits(tmp_path / "splits", {"train": ["a/1"]})
    with pytest.raises(
        DataLayoutError, match=r"nowhere: videos root folder not found for benchmark 'ucf101'"
    ):
        load_benchmark("ucf101", tmp_path / "nowhere", splits)
    write_splits(splits, {"train": ["a/1"]}, split_id="07")
    (tmp_path / "v").mkdir()
    with pytest.raises(DataLayoutError, match="several ids"):
        load_benchmark("ucf101", tmp_path / "v", splits)
    assert (
        load_benchmark("ucf101", tmp_path / "v", splits, split_id=7).split_files["train"].name
        == "trainlist07.txt"
    )


def test_load_synthetic_layout(tmp_path):
    out = tmp_path / "synth"
    touch(out / "videos" / "wave" / "wave_000.mp4")
    write_splits(out / "splits", {"train": ["wave/wave_000"], "val": ["wave/wave_001"]}, split_id="01")
    bench = load_synthetic(out)
    assert bench.name == "synthetic" and not bench.spec.flip_allowed  # direction-sensitive classes
    assert bench.split("train").records[0].path == out / "videos" / "wave" / "wave_000.mp4"
    assert bench.split("val").missing[0].video_id == "wave_001"


def test_resolving_the_77500_line_otam_list_is_fast(shared_splits, tmp_path):
    root = tmp_path / "ssv2"
    for vid in ["78687", "42326", "34899"]:
        touch(root / f"{vid}.webm")
    start = time.perf_counter()
    bench = load_benchmark("ssv2_full", root, shared_splits / "ta2n" / "ssv2_OTAM")
    train = bench.split("train")
    elapsed = time.perf_counter() - start
    assert len(train.records) == 77_500 and len(train.classes) == 64
    assert [r.path.name for r in train.records[:3]] == ["78687.webm", "42326.webm", "34899.webm"]
    assert len(train.missing) == 77_497
    assert elapsed < 3.0  # measured about 0.3 s
