"""A command into an output folder that another process is writing stops at once, exit status 1, naming the
holder, and changes nothing there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fsar.cli.main import main
from tests.process_tools import kill_marked, new_marker_env

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "command",
    [
        ["synth", "--preset", "tiny", "--quiet", "--out"],
        ["pretrain", "demo_pretrain_tiny", "data.root=nowhere", "--out"],
        ["demo", "--preset", "tiny", "--out"],
    ],
)
def test_a_command_into_a_locked_folder_is_refused_untouched(tmp_path, capsys, command):
    marker, env = new_marker_env()
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.process_tools", "lock", str(tmp_path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.iterdir()}
        assert main([*command, str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert f"in use by another fsar process (pid {holder.pid} on host" in err and str(tmp_path) in err
        assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.iterdir()} == before
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        kill_marked(marker, session=holder.pid)
