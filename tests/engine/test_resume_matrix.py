"""Exact resume for every registered method: kill -9 mid-run, resume, compare with an uninterrupted run.

The matrix is every method of ``fsar.models.MODELS`` (a method that registers later joins automatically; it needs
its tiny demo preset ``demo_<method>_tiny``) x ``data.workers`` 0 and 2 x one process and ``torchrun`` with two
gloo processes. Each case trains 8 episodes (2 per update, ``last.pt`` every update, validation at 4 and 8) on
in-memory clips shaped like the preset's data (``tests/engine/fake_data.preset_clips``). The test kills the launch
(the launcher and every descendant: torchrun, ranks, loader workers) with SIGKILL after the update that ends at
episode 6, before that update is checkpointed (``last.pt`` holds episode 4; with workers, the loader has prefetched
further). A second launch resumes the killed run and, in
another folder, runs the same config uninterrupted. Then, bit for bit:

- weights, buffers, optimiser state, grad-scaler state and every rank's saved RNG state in ``last.pt``;
- every step after the resume point, on every rank: the episode, its support and query tensors (frames, labels,
  tracks, masks), the loss, and the parameters, gradients and buffers after the step (dropout masks included);
- the validation rows and the final test accuracy.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fsar.engine.checkpoint import load_checkpoint
from fsar.engine.config import PRESETS_DIR
from fsar.models import MODELS
from tests.engine import resume_matrix_worker as worker

ROOT = Path(__file__).resolve().parents[2]
METHODS = MODELS.names()
RESUMED_FROM = 4  # last.pt of the killed run
COMBINATIONS = [(0, 1), (2, 1), (0, 2), (2, 2)]  # (data.workers, processes)


def has_preset(method: str) -> bool:
    return (PRESETS_DIR / f"demo_{method}_tiny.yaml").is_file()


def launch(phase: str, workers: int, world: int, root: Path, methods: list[str]) -> subprocess.Popen:
    args = ["-m", "tests.engine.resume_matrix_worker", phase, str(workers), str(root), *methods]
    if world > 1:
        args = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}", *args]
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    log = (root / f"{phase}.log").open("w")
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far) of every process (Linux /proc)."""
    table = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (
                stat.read_text().rsplit(")", 1)[1].split()
            )  # state, ppid, pgrp, ..., utime (11), stime (12)
            table[int(stat.parent.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return table


def descendants(pid: int, table: dict[int, tuple[int, float]]) -> list[int]:
    out, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, (pp, _) in table.items() if pp == parent]
        out += children
        frontier += children
    return out


def kill_tree(proc: subprocess.Popen) -> float:
    """SIGKILL the launched process and every descendant (torchrun starts each rank in a session of its own, so
    a process-group kill would leave the ranks running); returns the CPU seconds they had used."""
    table = _proc_table()
    tree = [proc.pid, *descendants(proc.pid, table)]
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    return sum(table[p][1] for p in tree if p in table)


def run_combination(root: Path, workers: int, world: int) -> None:
    """Both launches of one (workers, processes) combination, for every method with a tiny preset."""
    methods = [m for m in METHODS if has_preset(m)]
    proc = launch("kill", workers, world, root, methods)
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            pending = [
                m
                for m in methods
                if not any((root / m / "killed" / f).exists() for f in ("hanging", "failed"))
            ]
            if not pending:
                break
            time.sleep(0.1)
    finally:
        kill_cpu = kill_tree(proc)  # kill -9 mid-run: no clean exit of anything
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    second = launch("resume", workers, world, root, methods)
    try:
        second.wait(timeout=600)
    finally:
        kill_tree(second)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    resume_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    # CPU seconds of both launches (the killed processes measured just before the kill), for the record
    (root / "cpu.json").write_text(json.dumps({"kill": kill_cpu, "resume": resume_cpu}))


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    roots: dict[tuple[int, int], Path] = {}

    def get(workers: int, world: int) -> Path:
        if (workers, world) not in roots:
            root = tmp_path_factory.mktemp(f"resume_w{workers}_p{world}")
            run_combination(root, workers, world)
            roots[workers, world] = root
        return roots[workers, world]

    return get


def equal(a, b, where: str = "") -> None:
    """Bit-for-bit equality of nested checkpoint contents (tensors with torch.equal and the same dtype)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, type(a)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def steps(run_dir: Path, tag: str, rank: int) -> list[dict]:
    lines = (run_dir / f"steps_{tag}_rank{rank}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


TIMING_KEYS = {
    "episodes_per_s",
    "data_wait_fraction",
    "peak_memory_mib",
}  # wall-clock measurements, not state


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("workers", "world"),
    COMBINATIONS,
    ids=[f"workers{w}-{'single' if n == 1 else 'torchrun2'}" for w, n in COMBINATIONS],
)
@pytest.mark.parametrize("method", METHODS)
def test_kill_9_then_resume_is_bit_identical(method, workers, world, matrix):
    if not has_preset(method):
        pytest.fail(
            f"method {method!r} is registered in fsar.models.MODELS but has no tiny demo preset "
            f"demo_{method}_tiny.yaml in {PRESETS_DIR}: add one (seconds of training) so that its resume is tested"
        )
    root = matrix(workers, world)
    killed, full = root / method / "killed", root / method / "full"
    for failed in (killed / "failed", root / method / "failed"):
        assert not failed.exists(), f"{failed}:\n{failed.read_text()}"
    assert (killed / "hanging").exists(), f"the run was not killed at episode {worker.HANG_AT}:\n" + log_tail(
        root
    )
    # the killed run got further than its checkpoint: the lost steps must be redone identically
    assert max(r["done"] for r in steps(killed, "kill", 0)) == worker.HANG_AT
    assert (root / method / "full" / "results.json").exists(), log_tail(root)

    a, b = load_checkpoint(killed / "last.pt"), load_checkpoint(full / "last.pt")
    assert a["trainer_state"]["tasks_done"] == b["trainer_state"]["tasks_done"] == worker.TASKS
    for key in ("model", "optimizer", "scaler", "rng"):
        equal(a[key], b[key], key)
    assert a["trainer_state"]["val_rows"] == b["trainer_state"]["val_rows"]
    assert without_timing(a["trainer_state"]["train_rows"]) == without_timing(
        b["trainer_state"]["train_rows"]
    )
    for rank in range(world):
        resumed = steps(killed, "resume", rank)
        reference = [r for r in steps(full, "resume", rank) if r["done"] > RESUMED_FROM]
        assert resumed[0]["done"] == RESUMED_FROM + world  # it restarted right after the checkpoint
        assert len(resumed) == (worker.TASKS - RESUMED_FROM) // world
        assert resumed == reference, f"rank {rank}: steps after the resume differ"
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (killed, full))
    assert (ra["test_mean"], ra["selected_task"]) == (rb["test_mean"], rb["selected_task"])


def log_tail(root: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(root.glob("*.log")))
