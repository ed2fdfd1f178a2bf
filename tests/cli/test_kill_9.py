"""kill -9 of a multi-process command's own process (2 workers): no process of that run is left a few seconds
later, and the same command run again in the same folder gives what an uninterrupted run gives. Two ``fsar train``
into one folder: the second is refused, the first finishes intact.

The processes of a run are found by a marker in their environment (``tests.process_tools``), so only this test's
own processes are ever looked at or killed. Each test runs real commands on the tiny synthetic benchmark.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fsar.cli.main import main
from fsar.procs import is_lock_file
from tests.process_tools import kill_marked, marked_pids, new_marker_env, wait_for, wait_until_gone

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TRACK = ["--grid", "4", "--points", "16", "--workers", "2", "--no-progress"]
TRAIN = [  # 2 loader workers; a short run (decoding is the slow part here)
    "data.workers=2",
    "train.tasks=6",
    "train.val_every=3",
    "train.log_every=3",
    "train.val_episodes=4",
    "train.checkpoint_every=1",
    "train.tensorboard=false",
    "episodes.train_queries=2",
    "eval.episodes=8",
    "eval.order_episodes=0",
]


def _fsar(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "fsar", *args],
            cwd=REPO,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_9_mid_run(args: list[str], ready, tmp_path: Path, timeout_s: float = 600.0) -> None:
    """Start ``fsar ARGS``; once it has at least 2 worker processes and ``ready()`` holds, kill -9 its own process
    (only that one) and check that every process of the run is gone within 10 s."""
    marker, env = new_marker_env()
    log = tmp_path / f"killed_{args[0]}.log"
    proc = _fsar(args, env, log)
    try:
        started = wait_for(
            lambda: proc.poll() is not None or (len(marked_pids(marker) - {proc.pid}) >= 2 and ready()),
            timeout_s,
        )
        assert started and proc.poll() is None, (
            f"finished or stalled before it could be killed: {log.read_text()}"
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        left = wait_until_gone(marker, 10.0, session=proc.pid)
        assert left == set(), {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in left}
    finally:
        kill_marked(marker, session=proc.pid)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (but the lock files) with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not is_lock_file(p.name)
    }


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """The tiny synthetic benchmark, made without interruption (also the reference of the synth test)."""
    out = tmp_path_factory.mktemp("bench") / "synth"
    assert main(["synth", "--preset", "tiny", "--workers", "2", "--quiet", "--out", str(out)]) == 0
    return out


def test_synth_killed_leaves_no_process_and_the_rerun_equals_an_uninterrupted_run(bench, tmp_path):
    out = tmp_path / "synth"
    args = ["synth", "--preset", "tiny", "--workers", "2", "--quiet", "--out", str(out)]
    kill_9_mid_run(args, lambda: any((out / "videos").rglob("*.mp4")), tmp_path)
    assert not (out / "meta.json").exists()  # unfinished: the rerun finishes it
    assert main(args) == 0
    assert tree(out) == tree(bench)


def test_data_prepare_killed_leaves_no_process_and_the_rerun_equals_an_uninterrupted_run(bench, tmp_path):
    def args(out: Path) -> list[str]:
        return ["data", "prepare", "demo_protonet_tiny", f"data.root={bench}", "--out", str(out)] + [
            "--workers",
            "2",
            "--shard-videos",
            "4",
            "--no-progress",
        ]

    store = tmp_path / "store"
    kill_9_mid_run(args(store), lambda: any(store.glob("*/shard_*.json")), tmp_path)
    assert not (store / "index.json").exists()
    assert main(args(store)) == 0
    assert main(args(tmp_path / "reference")) == 0
    assert tree(store) == tree(tmp_path / "reference")


def test_track_killed_leaves_no_process_and_the_rerun_equals_an_uninterrupted_run(bench, tmp_path):
    def args(out: Path) -> list[str]:
        return ["track", "--benchmark", "synthetic", "--root", str(bench), "--out", str(out), *TRACK]

    out = tmp_path / "tracks"
    kill_9_mid_run(args(out), lambda: any(out.rglob("*.npz")), tmp_path)
    assert main(args(out)) == 0
    assert main(args(tmp_path / "reference")) == 0
    got, want = tree(out), tree(tmp_path / "reference")
    assert sorted(got) == sorted(want) and len(got) == 90
    for name in want:  # same arrays and metadata (npz members are compared, not zip timestamps)
        a, b = np.load(out / name), np.load(tmp_path / "reference" / name)
        assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files), name


def test_pretrain_killed_leaves_no_loader_worker_and_the_rerun_equals_an_uninterrupted_run(bench, tmp_path):
    from safetensors.torch import load_file

    def args(out: Path) -> list[str]:
        return ["pretrain", "demo_pretrain_tiny", f"data.root={bench}", "data.workers=2", "--out", str(out)]

    out = tmp_path / "pretrain"
    kill_9_mid_run(args(out), lambda: True, tmp_path)
    assert not (out / "pretrain.json").exists()
    assert main(args(out)) == 0
    assert main(args(tmp_path / "reference")) == 0
    a, b = load_file(out / "backbone.safetensors"), load_file(tmp_path / "reference" / "backbone.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_train_killed_leaves_no_loader_worker_and_the_resumed_run_equals_an_uninterrupted_run(
    bench, tmp_path
):
    import torch

    from fsar.engine.checkpoint import load_checkpoint

    def args(out: Path) -> list[str]:
        return ["train", "demo_protonet_tiny", f"data.root={bench}", *TRAIN, "--out", str(out)]

    out = tmp_path / "run"
    kill_9_mid_run(args(out), lambda: (out / "last.pt").exists(), tmp_path)
    assert not (out / "results.json").exists()
    assert main(args(out)) == 0
    assert main(args(tmp_path / "reference")) == 0
    a, b = load_checkpoint(out / "last.pt"), load_checkpoint(tmp_path / "reference" / "last.pt")
    assert a["trainer_state"]["tasks_done"] == b["trainer_state"]["tasks_done"] == 6
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (out, tmp_path / "reference"))
    assert ra["test_mean"] == rb["test_mean"]


def test_a_second_train_into_the_same_folder_is_refused_and_the_first_finishes_intact(bench, tmp_path):
    out = tmp_path / "run"
    args = ["train", "demo_protonet_tiny", f"data.root={bench}", *TRAIN, "--out", str(out)]
    marker, env = new_marker_env()
    first = _fsar(args, env, tmp_path / "first.log")
    try:
        assert wait_for(
            lambda: f'"pid": {first.pid},' in _read(out / ".fsar-lock") or first.poll() is not None, 300
        )
        second = subprocess.run(
            [sys.executable, "-m", "fsar", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 1
        assert f"in use by another fsar process (pid {first.pid} on host" in second.stderr
        assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()
    finally:
        kill_marked(marker)
    rows = list(csv.DictReader((out / "train_log.csv").open()))
    assert [int(r["tasks"]) for r in rows] == [3, 6]  # one run's rows, once each
    assert json.loads((out / "results.json").read_text())["test_episodes"] == 8


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def test_train_nproc_2_killed_leaves_no_torchrun_or_rank(bench, tmp_path):
    """``fsar train --nproc 2`` launches torchrun, which starts 2 ranks: kill -9 of the fsar process ends them all."""
    out = tmp_path / "ddp"
    args = ["train", "demo_protonet_tiny", f"data.root={bench}", *TRAIN, "data.workers=0"]
    args += ["train.tasks_per_update=2", "--nproc", "2", "--out", str(out)]
    kill_9_mid_run(args, lambda: (out / "last.pt").exists(), tmp_path)
