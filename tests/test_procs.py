"""``fsar.procs``: workers die with their parent (also when it dies before they arm the signal, and where ``prctl``
is absent), and one process per output folder (whole folder or one tagged part)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

from fsar.errors import FolderLockedError, OutputDirError
from fsar.procs import LOCK_FILE, is_lock_file, lock_folder, watch_parent
from tests.process_tools import kill_marked, marked_pids, new_marker_env, wait_until_gone

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _start(marker_env, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.process_tools", *args],
        cwd=REPO,
        env=marker_env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.mark.parametrize("initializer", ["die_with_parent", "without_prctl"])
def test_pool_workers_end_when_the_parent_is_killed(initializer):
    """kill -9 of a pool's parent: both workers (and multiprocessing's resource tracker) are gone within seconds,
    by the parent-death signal, or by the vanished-parent check where prctl is absent."""
    marker, env = new_marker_env()
    proc = _start(env, "pool", initializer)
    try:
        workers = set(map(int, proc.stdout.readline().strip("[]\n").split(",")))
        assert len(workers) == 2 and workers <= marked_pids(marker)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert wait_until_gone(marker, 10.0, session=proc.pid) == set()
    finally:
        kill_marked(marker, session=proc.pid)


def test_loader_workers_end_when_the_parent_is_killed_even_mid_item():
    """fsar's DataLoader workers (``loader_worker_init``), each stuck inside an item, where torch's own watchdog
    (checked between items) cannot see the parent die: gone within seconds of kill -9 of the parent."""
    marker, env = new_marker_env()
    proc = _start(env, "loader")
    try:
        workers = {int(proc.stdout.readline()), int(proc.stdout.readline())}
        assert len(workers) == 2 and workers <= marked_pids(marker)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert wait_until_gone(marker, 10.0, session=proc.pid) == set()
    finally:
        kill_marked(marker, session=proc.pid)


def test_a_parent_dead_before_the_signal_is_armed_is_noticed():
    """The child arms the signal after its parent has exited (the signal would never come): it must exit anyway,
    not live on as an orphan (it would sleep 600 s)."""
    marker, env = new_marker_env()
    proc = _start(env, "late-parent")
    try:
        child = int(proc.stdout.readline())
        proc.wait()
        assert child in marked_pids(marker)  # still in its 1 s pause
        assert wait_until_gone(marker, 10.0, session=proc.pid) == set()
    finally:
        kill_marked(marker, session=proc.pid)


def test_watch_parent_calls_back_once_the_parent_is_gone():
    calls = iter([False, False, True])
    done = threading.Event()
    watch_parent(lambda: next(calls), done.set, interval_s=0.01)
    assert done.wait(5.0)


def test_second_holder_is_refused_naming_pid_and_host_and_a_killed_holder_leaves_no_lock(tmp_path):
    marker, env = new_marker_env()
    folder = tmp_path / "run"
    holder = _start(env, "lock", str(folder))
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = sorted(p.name for p in folder.iterdir())
        with pytest.raises(FolderLockedError) as info:
            lock_folder(folder)
        message = str(info.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in message and str(folder) in message
        assert sorted(p.name for p in folder.iterdir()) == before == [LOCK_FILE]
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with lock_folder(folder) as lock:  # the OS released it: no stale lock
            assert lock.held and f'"pid": {os.getpid()}' in (folder / LOCK_FILE).read_text()
        assert not lock.held
    finally:
        kill_marked(marker)


def test_part_locks_coexist_but_exclude_the_same_part_and_a_whole_folder_run(tmp_path):
    part1 = lock_folder(tmp_path, tag="part-1-of-2")
    part2 = lock_folder(tmp_path, tag="part-2-of-2")
    with pytest.raises(FolderLockedError, match="part-1-of-2: pid .*part-2-of-2: pid"):
        lock_folder(tmp_path)
    with pytest.raises(FolderLockedError, match=f"pid {os.getpid()}"):
        lock_folder(tmp_path, tag="part-2-of-2")
    part1.release()
    part2.release()
    with lock_folder(tmp_path), pytest.raises(FolderLockedError):
        lock_folder(tmp_path, tag="part-1-of-2")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        LOCK_FILE,
        f"{LOCK_FILE}-part-1-of-2",
        f"{LOCK_FILE}-part-2-of-2",
    ]


def test_lock_refuses_bad_tags_and_a_file_in_place_of_the_folder(tmp_path):
    with pytest.raises(ValueError, match="lock tag"):
        lock_folder(tmp_path, tag="../x")
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputDirError, match="not a folder"):
        lock_folder(tmp_path / "f")
    assert (
        is_lock_file(".fsar-lock")
        and is_lock_file(".fsar-lock-part-1-of-3")
        and not is_lock_file("x.fsar-lock")
    )


def test_a_killed_holders_lock_still_held_by_its_exiting_workers_is_waited_for(tmp_path):
    """The lock file names a process that no longer exists (killed) while the lock is still held (by its workers,
    which inherited it and are exiting): the new holder waits for them instead of refusing."""
    import json
    import time

    marker, env = new_marker_env()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    worker = _start(env, "lock", str(tmp_path))  # stands in for the killed command's last worker
    try:
        assert worker.stdout.readline().strip() == "locked"
        info = {"pid": int(dead.stdout), "host": socket.gethostname(), "since": "then"}
        (tmp_path / LOCK_FILE).write_text(json.dumps(info))
        threading.Timer(1.0, worker.kill).start()
        start = time.monotonic()
        with lock_folder(tmp_path) as lock:
            assert lock.held and 0.5 < time.monotonic() - start < 8
    finally:
        worker.kill()
        worker.wait()
        kill_marked(marker, session=worker.pid)


def _tune_allocator_in_a_fresh_process(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "FSAR_TUNE_MALLOC"}
    if env_value is not None:
        env["FSAR_TUNE_MALLOC"] = env_value
    code = "from fsar.procs import tune_allocator; print(tune_allocator())"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_tune_allocator_sets_glibc_thresholds_unless_disabled():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt thresholds are glibc's")
    assert _tune_allocator_in_a_fresh_process(None) == "True"
    assert _tune_allocator_in_a_fresh_process("0") == "False"
