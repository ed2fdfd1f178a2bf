"""``--part I/N``: the rule, the bookkeeping and, per command, 3 parts (one killed with SIGKILL mid-way and re-run)
merged into exactly the bytes a single-machine run writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fsar.cli.main import main
from fsar.parts import (
    PARTS_DIR,
    Part,
    PartsError,
    finish_part,
    gather_parts,
    parse_part,
    start_part,
)

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ the rule
def test_parse_part_accepts_i_of_n():
    assert parse_part("2/8") == Part(2, 8)
    assert parse_part(" 1/1 ") == Part(1, 1)
    assert str(Part(3, 4)) == "3/4" and Part(3, 4).tag == "part-3-of-4"


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/3", "1/0", "-1/3", "1/3/5", "", "2 / x"])
def test_bad_part_values_are_refused_naming_the_value_and_the_format(text):
    with pytest.raises(PartsError) as info:
        parse_part(text)
    assert (
        repr(text) in str(info.value)
        and "expected I/N" in str(info.value)
        and "1 <= I <= N" in str(info.value)
    )


def test_bad_part_on_the_command_line_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["track", "--videos", str(tmp_path), "--out", str(tmp_path / "o"), "--part", "5/4"])
    assert info.value.code == 2
    assert "--part '5/4': expected I/N" in capsys.readouterr().err


def test_parts_are_disjoint_cover_everything_and_are_balanced():
    n, units = 7, 100
    owners = [[p for p in range(1, n + 1) if Part(p, n).owns(u)] for u in range(units)]
    assert all(len(o) == 1 for o in owners)
    sizes = [sum(1 for o in owners if o == [p]) for p in range(1, n + 1)]
    assert sizes == [15, 15, 14, 14, 14, 14, 14]
    assert [u for u in range(10) if Part(2, 3).owns(u)] == [1, 4, 7]


# ------------------------------------------------------------------------------------------------ bookkeeping
def test_gather_names_missing_unfinished_and_inconsistent_parts(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(PartsError, match="no part manifests"):
        gather_parts(out)
    start_part(out, Part(1, 3), "track", "plan-a", 6)
    start_part(out, Part(2, 3), "track", "plan-a", 6)
    finish_part(out, Part(1, 3), "track", "plan-a", 6, ["a", "d"], [])
    with pytest.raises(PartsError) as info:
        gather_parts(out)
    assert "2/3 started but not finished" in str(info.value) and "3/3 not started" in str(info.value)
    finish_part(out, Part(2, 3), "track", "plan-a", 6, ["b", "e"], [])
    finish_part(out, Part(3, 3), "track", "plan-a", 6, ["c", "a"], [])
    with pytest.raises(PartsError, match="unit a is claimed by parts 1 and 3"):
        gather_parts(out)
    finish_part(out, Part(3, 3), "track", "plan-a", 6, ["c"], [])
    with pytest.raises(PartsError, match="hold 5 of 6 units"):
        gather_parts(out)
    finish_part(out, Part(3, 3), "track", "plan-a", 6, ["c", "f"], [])
    assert [m["part"] for m in gather_parts(out, "track")] == [1, 2, 3]
    with pytest.raises(PartsError, match="not clip store"):
        gather_parts(out, "clip store")


def test_a_part_refuses_to_start_beside_parts_of_another_run(tmp_path):
    start_part(tmp_path, Part(1, 3), "track", "plan-a", 5)
    start_part(tmp_path, Part(1, 3), "track", "plan-a", 5)  # the same part again (a re-run) is fine
    with pytest.raises(PartsError, match="other videos or settings"):
        start_part(tmp_path, Part(2, 3), "track", "plan-b", 5)
    with pytest.raises(PartsError, match="3 parts"):
        start_part(tmp_path, Part(2, 4), "track", "plan-a", 5)
    with pytest.raises(PartsError, match="a track run; .*not of this clip store run"):
        start_part(tmp_path, Part(2, 3), "clip store", "plan-a", 5)
    assert json.loads((tmp_path / PARTS_DIR / "part-1-of-3.json").read_text())["status"] == "running"


# ------------------------------------------------------------------------------------------------ end to end
def tree(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (but the part manifests and the run locks, which name their holder) with its
    bytes."""
    from fsar.procs import is_lock_file

    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and PARTS_DIR not in p.relative_to(root).parts and not is_lock_file(p.name)
    }


def run_killed(target: str, after: int, argv: list[str]) -> None:
    """Run ``fsar argv`` in a process that kills itself with SIGKILL at the (after+1)-th call of ``target``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.parts_worker", target, str(after), *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr  # killed mid-way, not finished


def three_parts_one_killed(argv: list[str], out: Path, target: str, after: int) -> None:
    """Parts 1 and 3 run; part 2 is killed mid-way, then re-run; the re-run, the last to finish, merges."""
    assert main([*argv, "--out", str(out), "--part", "1/3"]) in (0, 1)
    run_killed(target, after, [*argv, "--out", str(out), "--part", "2/3"])
    assert json.loads((out / PARTS_DIR / "part-2-of-3.json").read_text())["status"] == "running"
    assert main([*argv, "--out", str(out), "--part", "3/3"]) in (0, 1)
    assert main(["data", "merge-parts", str(out)]) == 1  # part 2 is unfinished: nothing merged
    assert not (out / "index.json").exists()
    assert main([*argv, "--out", str(out), "--part", "2/3"]) in (0, 1)
    manifests = gather_parts(out)
    assert all(m["status"] == "complete" for m in manifests)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """The tiny synthetic benchmark (90 videos)."""
    out = tmp_path_factory.mktemp("parts") / "synth"
    assert main(["synth", "--out", str(out), "--preset", "tiny", "--quiet", "--workers", "1"]) == 0
    return out


@pytest.mark.slow
def test_track_parts_merge_into_the_single_machine_result(synth, tmp_path, capsys):
    videos = tmp_path / "videos"
    for cls in sorted((synth / "videos").iterdir())[:3]:
        shutil.copytree(cls, videos / cls.name)
    (videos / "zz").mkdir()
    (videos / "zz" / "bad.mp4").write_bytes(b"not a video")  # fails in every run
    argv = ["track", "--videos", str(videos), "--grid", "4", "--points", "8", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "single")]) == 1
    three_parts_one_killed(argv, tmp_path / "parts", "fsar.tracking.runner._run_job", 3)
    single, merged = tree(tmp_path / "single"), tree(tmp_path / "parts")
    assert len(single) == 18 + 1 and b"bad.mp4" in single["errors.txt"]  # 18 track files, bad.mp4 failed
    assert merged == single


@pytest.mark.slow
def test_clip_store_parts_merge_into_the_single_machine_store(synth, tmp_path):
    root = tmp_path / "synth"
    shutil.copytree(synth, root)
    entry = (root / "splits" / "testlist01.txt").read_text().splitlines()[5]
    (root / "videos" / f"{entry}.mp4").unlink()  # a missing video: every run must list it
    argv = ["data", "prepare", "demo_protonet_tiny", f"data.root={root}", "--splits", "test,val"]
    argv += ["--shard-videos", "4", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "single")]) == 1  # the missing video
    # killed at the 6th video of part 2: its first shard is complete, its second half-written
    three_parts_one_killed(argv, tmp_path / "parts", "fsar.data.prepare.store_video", 5)
    single, merged = tree(tmp_path / "single"), tree(tmp_path / "parts")
    assert {"index.json", "build.json", "errors.txt", "test/table.npz", "val/shard_00007.u8"} <= set(single)
    assert b"missing from the videos root" in single["errors.txt"]
    assert merged == single
    from fsar.data.clip_store import ClipStore

    assert (
        len(ClipStore(tmp_path / "parts").split("test"))
        == len(ClipStore(tmp_path / "single").split("test"))
        == 29
    )


@pytest.mark.slow
def test_frame_folder_parts_merge_into_the_single_machine_folders(synth, tmp_path):
    argv = ["data", "prepare", "demo_protonet_tiny", f"data.root={synth}", "--format", "frames"]
    argv += ["--splits", "test", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "single")]) == 0
    three_parts_one_killed(argv, tmp_path / "parts", "fsar.data.prepare.frames_video", 4)
    assert tree(tmp_path / "parts") == tree(tmp_path / "single")


@pytest.mark.slow
def test_feature_cache_parts_merge_into_the_single_machine_cache(synth, tmp_path):
    argv = [
        "extract-features",
        "demo_ta2n_tiny",
        f"data.root={synth}",
        "data.num_frames=4",
        "model.backbone_kwargs={width: 8, out_channels: 16, in_channels: 6, num_blocks: 3, frozen: true}",
        "--device",
        "cpu",
        "--batch-videos",
        "3",
        "--shard-videos",
        "7",
        "--splits",
        "test",
        "--no-progress",
    ]
    assert main([*argv, "--out", str(tmp_path / "single")]) == 0
    # batches of 3 cross shards of 7: a batch holding two parts' videos is computed whole by each
    # 30 videos: shards 0-4 of 7, 7, 7, 7, 2 videos; part 2 owns shards 1 and 4 and is killed before writing 4
    three_parts_one_killed(argv, tmp_path / "parts", "fsar.engine.feature_cache.write_feature_shard", 1)
    single, merged = tree(tmp_path / "single"), tree(tmp_path / "parts")
    assert set(single) == {"index.json", *(f"test_{k:04d}.safetensors" for k in range(5))}
    assert merged == single


@pytest.mark.slow
def test_clip_store_parts_run_side_by_side(synth, tmp_path):
    """Three parts started at once into one folder (shared storage): the result is the single-machine store."""
    argv = ["data", "prepare", "demo_protonet_tiny", f"data.root={synth}", "--splits", "test"]
    argv += ["--shard-videos", "4", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "single")]) == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fsar", *argv, "--out", str(tmp_path / "parts"), "--part", f"{i}/3"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in (1, 2, 3)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert sum("all 3 parts done, checked and merged" in o for o in outputs) >= 1
    assert tree(tmp_path / "parts") == tree(tmp_path / "single")


def test_stores_in_parts_are_not_opened_before_the_merge(tmp_path):
    from fsar.data.clip_store import ClipStore, ClipStoreError
    from fsar.data.feature_store import FeatureCache
    from fsar.errors import FsarError

    start_part(tmp_path, Part(1, 2), "clip store", "plan", 4)
    with pytest.raises(ClipStoreError, match="prepared in parts .* not merged yet.*merge-parts"):
        ClipStore(tmp_path)
    with pytest.raises(FsarError, match="extracted in parts .* not merged yet"):
        FeatureCache(tmp_path)
