"""Process hygiene for fsar's commands: workers that die with their parent, and one run per output folder.

**Workers die with their command.** ``fsar synth``, ``track``, ``data prepare`` and the data loaders of ``train``
and ``pretrain`` do their work in child processes. If the command's own process is killed (``kill -9``, the OOM
killer, a scheduler that signals only the main process), those children would otherwise live on, idle, with
parent PID 1. :func:`die_with_parent`, called first thing in every worker (the pools' ``initializer``, the
DataLoader's ``worker_init_fn`` :func:`loader_worker_init`), asks Linux to send the worker ``SIGKILL`` when its
parent exits (``prctl(PR_SET_PDEATHSIG)``), then checks that the parent did not die before that request was made
(the request would then never fire). Where ``prctl`` is unavailable (macOS, Windows), a daemon thread checks every
second whether the parent is gone. A killed worker leaves only what it had finished: every output is written
under a temporary name and renamed when complete, and a rerun trusts only finished outputs.

The parent-death signal follows the *thread* that started the worker: pools must be started from a thread that
outlives them (fsar starts them from the command's main thread). Multiprocessing's resource tracker needs nothing:
it exits by itself once the parent and every worker have closed their end of its pipe.

**One run per folder.** :func:`lock_folder` takes an exclusive ``flock`` on a lock file inside an output folder and
writes the holder's PID and host into it. The operating system releases the lock when the process exits however it
exits, so a killed run never leaves a stale lock; a second process into the same folder gets a
:class:`~fsar.errors.FolderLockedError` naming the holder, before it has written anything. The lock file itself
stays (deleting it would race with the next holder) and is ignored by the folders' "is it empty?" checks
(:func:`is_lock_file`). ``flock`` works on local file systems and on NFS (Linux emulates it with POSIX locks
there); on a network file system without lock support the lock fails loudly rather than being skipped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import multiprocessing
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fsar.errors import FolderLockedError, OutputDirError

__all__ = [
    "LOCK_FILE",
    "FolderLock",
    "die_with_parent",
    "is_lock_file",
    "loader_worker_init",
    "lock_folder",
    "parent_death_preexec",
    "set_parent_death_signal",
    "tune_allocator",
    "watch_parent",
]

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
LOCK_FILE = ".fsar-lock"
DEAD_HOLDER_GRACE_S = 10.0  # how long a new holder waits for the workers of a killed holder to finish exiting
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


# ------------------------------------------------------------------------------------------ allocator
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
ALLOCATOR_KEEP_BYTES = 32 << 20  # mmap threshold: blocks below it come from the heap and are reused


@functools.cache
def tune_allocator() -> bool:
    """Keep freed tensor memory in the process instead of handing it back to the kernel (glibc ``mallopt``).

    glibc serves large blocks (over 128 KiB at first) with ``mmap`` and returns them with ``munmap`` on free, so a
    training step that allocates and frees the same activations every episode page-faults and zero-fills them anew
    each time. With the mmap threshold at 32 MiB (above the demo's activations) and the trim threshold at 1 GiB,
    such blocks are reused: a training step of the demo's small CNN (fp32, one thread, 2026-12-04, AMD Zen 3,
    machine otherwise idle) took 56-58 instead of 75-89 ms, and the system time of 30 steps fell from 1.0 to 0.3 s. Peak memory is unchanged, but freed memory stays with
    the process until it exits. Numbers are unaffected.

    fsar's commands call it at start (and their worker processes); a program using fsar as a library may call it
    too. Returns whether glibc accepted both settings (False, doing nothing, on other C libraries); set
    ``FSAR_TUNE_MALLOC=0`` to leave the allocator alone."""
    if os.environ.get("FSAR_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and other C libraries without mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    mmap_ok = mallopt(M_MMAP_THRESHOLD, ALLOCATOR_KEEP_BYTES) == 1
    trim_ok = mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1
    return mmap_ok and trim_ok


# ------------------------------------------------------------------------------------------ parent death
@functools.cache
def _prctl():
    """libc's ``prctl`` (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.restype = ctypes.c_int
    return prctl


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when the thread that started it exits (Linux
    ``prctl(PR_SET_PDEATHSIG)``). Returns False where that is not available."""
    prctl = _prctl()
    return prctl is not None and prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(int(sig)), 0, 0, 0) == 0


def _parent_gone(parent_pid: int | None) -> bool:
    """Whether this process's parent has exited. A multiprocessing child asks its parent's sentinel (a pipe that
    reaches end-of-file when the parent dies, also when the child was started through a fork server); any other
    process compares its parent PID with ``parent_pid``."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        return not parent.is_alive()
    if parent_pid is not None:
        return os.getppid() != parent_pid
    return os.getppid() == 1


def _die(sig: int) -> None:
    os.kill(os.getpid(), sig)
    os._exit(128 + int(sig))  # pragma: no cover - only where the signal did not end the process


def watch_parent(is_gone: Callable[[], bool], on_gone: Callable[[], None], interval_s: float = 1.0):
    """Start a daemon thread that calls ``on_gone()`` once ``is_gone()`` turns true, checking every
    ``interval_s`` seconds; returns the thread. The fallback of :func:`die_with_parent` where ``prctl`` is absent."""

    def loop() -> None:
        while not is_gone():
            time.sleep(interval_s)
        on_gone()

    thread = threading.Thread(target=loop, name="fsar-parent-watch", daemon=True)
    thread.start()
    return thread


def die_with_parent(
    parent_pid: int | None = None, sig: int = signal.SIGKILL, interval_s: float = 1.0
) -> None:
    """Make this worker process exit as soon as its parent does (see the module docstring). Call it first in a
    worker's initialiser. ``parent_pid``: the expected parent, for processes not started by multiprocessing."""
    armed = set_parent_death_signal(sig)
    if _parent_gone(parent_pid):  # died before the signal was armed: it will never come
        _die(sig)
    if not armed:
        watch_parent(lambda: _parent_gone(parent_pid), lambda: _die(sig), interval_s)


def loader_worker_init(worker_id: int) -> None:  # noqa: ARG001 - the DataLoader's worker_init_fn signature
    """``worker_init_fn`` of fsar's DataLoaders: the worker dies with the process that iterates the loader (and
    keeps freed memory, :func:`tune_allocator`)."""
    die_with_parent()
    tune_allocator()


def parent_death_preexec(parent_pid: int, sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``subprocess`` ``preexec_fn`` that gives the child (e.g. ``torchrun``) ``sig`` when this process dies.
    ``SIGTERM`` by default, so that a launcher can still stop its own children. Build it in the parent:
    ``preexec_fn=parent_death_preexec(os.getpid())``."""
    _prctl()  # load libc here: the child of a threaded parent must not load libraries between fork and exec

    def preexec() -> None:
        set_parent_death_signal(sig)
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


# ---------------------------------------------------------------------------------------------- locks
def is_lock_file(name: str) -> bool:
    """Whether ``name`` (a file name) is one of :func:`lock_folder`'s lock files."""
    return name == LOCK_FILE or name.startswith(LOCK_FILE + "-")


def _holder_text(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on host {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its PID yet"


def _dead_holder(path: Path) -> bool:
    """Whether ``path`` names a holder on this host whose process no longer exists."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        if info["host"] != socket.gethostname():
            return False
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return False


def _flock_waiting_for_the_dead(fd: int, mode: int, path: Path, grace_s: float = DEAD_HOLDER_GRACE_S) -> bool:
    """``flock`` without blocking; when the recorded holder has just been killed, its workers may still hold the
    lock (inherited) for the moment they need to exit: then try again for up to ``grace_s`` seconds."""
    import fcntl

    deadline = time.monotonic() + grace_s
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline or not _dead_holder(path):
                return False
            time.sleep(0.1)


class FolderLock:
    """An exclusive lock on one output folder (or one tagged part of it), held until :meth:`release`, the end of a
    ``with`` block, or the process's exit. Made by :func:`lock_folder`."""

    def __init__(self, folder: Path, tag: str | None) -> None:
        import fcntl

        self.folder, self.tag = folder, tag
        self.path = folder / (LOCK_FILE if tag is None else f"{LOCK_FILE}-{tag}")
        self._fds: list[int] = []
        # a part run shares the folder lock (parts coexist, a whole-folder run excludes them all) and holds its
        # part's lock alone; a whole-folder run holds the folder lock alone
        steps = [(folder / LOCK_FILE, fcntl.LOCK_SH if tag is not None else fcntl.LOCK_EX)]
        if tag is not None:
            steps.append((self.path, fcntl.LOCK_EX))
        try:
            for path, mode in steps:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                if not _flock_waiting_for_the_dead(fd, mode, path):
                    os.close(fd)
                    raise FolderLockedError(folder, self._holders(path, mode == fcntl.LOCK_SH))
                self._fds.append(fd)
        except BaseException:
            self.release()
            raise
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        info |= {"tag": tag} if tag is not None else {}
        fd = self._fds[-1]
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)

    def _holders(self, path: Path, wanted_shared: bool) -> str:
        """Who holds ``path``: its writer, or, for a folder lock shared by part runs, each part's holder."""
        import fcntl

        if path.name != LOCK_FILE or wanted_shared:
            return _holder_text(path)
        parts = []
        for part in sorted(self.folder.glob(LOCK_FILE + "-*")):
            fd = os.open(part, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:  # held: a running part
                parts.append(f"{part.name[len(LOCK_FILE) + 1 :]}: {_holder_text(part)}")
            finally:
                os.close(fd)
        return "part runs " + "; ".join(parts) if parts else _holder_text(path)

    def release(self) -> None:
        """Give the lock up (closing the file releases it; the file stays)."""
        while self._fds:
            os.close(self._fds.pop())

    @property
    def held(self) -> bool:
        return bool(self._fds)

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"FolderLock({str(self.path)!r}, held={self.held})"


def lock_folder(folder: str | os.PathLike[str], tag: str | None = None) -> FolderLock:
    """Lock the output folder ``folder`` for this process (creating the folder if needed) and return the lock; use
    it as ``with lock_folder(out): ...`` or keep it for the process's lifetime.

    Without ``tag`` the whole folder is locked (lock file ``folder/.fsar-lock``). With a ``tag`` only that part of
    it is: ``lock_folder(out, tag="part-2-of-3")`` locks ``folder/.fsar-lock-part-2-of-3`` and holds
    ``.fsar-lock`` *shared*, so the N part runs of one job (``--part I/N``, each writing its own share of a common
    output folder) run side by side, while two runs of the same part, or a whole-folder run and any part run,
    exclude each other. ``tag`` is a file-name-safe word (letters, digits, ``.``, ``_``, ``-``). The ``--part I/N``
    runs of ``track``, ``data prepare`` and ``extract-features`` lock with ``tag=f"part-{I}-of-{N}"`` (the CLI
    commands take the lock; without ``--part`` they lock the whole folder).

    The lock file holds the holder's PID, host and start time. Raises :class:`~fsar.errors.FolderLockedError`
    (naming them) when another process holds the folder, before anything in it has been changed. The lock is an
    ``flock``: released by the operating system when the process exits, whatever the signal, and also held by
    children forked after it was taken (fsar's workers die with their parent, see :func:`die_with_parent`).
    """
    path = Path(folder)
    if tag is not None and not _TAG.fullmatch(tag):
        raise ValueError(f"lock tag {tag!r}: use letters, digits, '.', '_' or '-' (e.g. 'part-2-of-3')")
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"{path}: exists and is not a folder; choose another output folder")
    path.mkdir(parents=True, exist_ok=True)
    return FolderLock(path, tag)
