"""Finding a test's own processes by a marker, and small process programs for the ``fsar.procs`` tests.

Every process a test starts carries ``FSAR_TEST_MARKER=<unique>`` in its environment, inherited by its workers, so
the test can find exactly the processes of its run (never other people's, on a shared machine) and kill only those
when cleaning up. Run as ``python -m tests.process_tools MODE ...`` it is one of the programs below.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

MARKER = "FSAR_TEST_MARKER"


def new_marker_env(**extra: str) -> tuple[str, dict[str, str]]:
    """A fresh marker and an environment carrying it (and ``PYTHONPATH`` with ``src`` and the repo root)."""
    marker = uuid.uuid4().hex
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join([str(root / "src"), str(root), os.environ.get("PYTHONPATH", "")])
    return marker, dict(os.environ, **{MARKER: marker, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1"}, **extra)


def marked_pids(marker: str, session: int | None = None) -> set[int]:
    """Live (not zombie) processes of this user whose environment holds ``FSAR_TEST_MARKER=marker`` or, with
    ``session``, that belong to that session (started with ``start_new_session=True``: its leader's PID). The
    session also finds a process in the middle of exiting: its environment is unreadable from the moment its
    memory is released, but it still holds its open files (and so its locks) until a little later."""
    needle = f"{MARKER}={marker}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            mine = session is not None and int(fields[3]) == session
            if not mine and needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
        except OSError:  # gone, or another user's
            continue
        if fields[0] not in ("Z", "X"):
            found.add(int(entry.name))
    return found


def wait_until_gone(marker: str, timeout_s: float, session: int | None = None) -> set[int]:
    """Wait up to ``timeout_s`` for every marked process (see :func:`marked_pids`) to end; returns those still
    alive."""
    deadline = time.monotonic() + timeout_s
    while (alive := marked_pids(marker, session)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def wait_for(predicate, timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False


def kill_marked(marker: str, session: int | None = None) -> None:
    """Clean-up: SIGKILL whatever is left of this test's own processes."""
    for pid in marked_pids(marker, session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# ------------------------------------------------------------------------------------------ programs
def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _init_without_prctl() -> None:
    """A worker initialiser for a platform without ``prctl``: only the vanished-parent check is left."""
    from fsar import procs

    procs.set_parent_death_signal = lambda *a, **k: False
    procs.die_with_parent(interval_s=0.2)


def _pool(initializer_name: str) -> None:
    """A spawn pool of 2 workers set up like fsar's; prints their PIDs once both run, then waits forever."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from fsar.procs import die_with_parent

    initializer = {"die_with_parent": die_with_parent, "without_prctl": _init_without_prctl}[initializer_name]
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=2, mp_context=ctx, initializer=initializer)
    pids: set[int] = set()
    while len(pids) < 2:
        pids |= {f.result() for f in [pool.submit(_pid_after, 0.3) for _ in range(4)]}
    for _ in range(2):
        pool.submit(time.sleep, 600)
    print(json.dumps(sorted(pids)), flush=True)
    time.sleep(600)


class _StuckDataset:
    """Items that never finish loading: a worker inside one cannot reach torch's own between-items watchdog."""

    seed = 0  # episode_loader seeds its own generator from the dataset's seed

    def __len__(self) -> int:
        return 100

    def __getitem__(self, i: int):
        print(os.getpid(), flush=True)
        time.sleep(600)


def _loader() -> None:
    """fsar's episode loader with 2 workers, both stuck in an item; waits forever."""
    from fsar.engine.episode_data import episode_loader

    next(iter(episode_loader(_StuckDataset(), 2)))


def _late_parent() -> None:
    """Starts a child that arms the parent-death signal only after this process has exited."""
    import subprocess

    child = subprocess.Popen([sys.executable, "-m", "tests.process_tools", "late-child", str(os.getpid())])
    print(child.pid, flush=True)
    os._exit(0)


def _late_child(parent_pid: int) -> None:
    from fsar.procs import die_with_parent

    time.sleep(1.0)  # the parent is gone by now: the signal, armed too late, would never come
    die_with_parent(parent_pid)
    time.sleep(600)


def _hold_lock(folder: str, tag: str | None) -> None:
    from fsar.procs import lock_folder

    lock = lock_folder(folder, tag=tag)  # noqa: F841 - held until the process ends
    print("locked", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "pool":
        _pool(args[0])
    elif mode == "loader":
        _loader()
    elif mode == "late-parent":
        _late_parent()
    elif mode == "late-child":
        _late_child(int(args[0]))
    elif mode == "lock":
        _hold_lock(args[0], args[1] if len(args) > 1 else None)
    else:
        raise SystemExit(f"unknown mode {mode}")
