"""fsar.progress: a tqdm bar on a terminal, a bounded number of whole lines with rate and ETA in a log."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest

from fsar.progress import LogProgress, NoProgress, format_seconds, progress_bar, stream_is_terminal

LINE = re.compile(
    r"^work: (\d+)/1000 videos \((\d+)%\), ([0-9.e+]+) videos/s, ETA (\d+:\d\d(?::\d\d)?), elapsed \S+"
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class TerminalStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_lines_are_bounded_and_carry_rate_and_eta():
    stream, clock = io.StringIO(), FakeClock()
    bar = LogProgress(1000, "work", "videos", stream=stream, clock=clock)
    for i in range(1000):  # 1000 updates, 0.5 s apart: 500 s in all
        clock.t = (i + 1) / 2
        bar.update(1)
    bar.close()
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    # at most 100/10 per-cent lines + one per 30 s + the final line; here every 10% is reached after 50 s > 30 s,
    # so the 30 s rule rules: a line at 30, 60, ..., 480 s (16) and the final one
    assert len(lines) == 17
    assert len(lines) <= 100 // 10 + 500 // 30 + 1
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    first = matches[0]
    assert first.group(1) == "60" and float(first.group(3)) == pytest.approx(2.0)  # 60 videos in 30 s
    assert first.group(4) == "7:50"  # 940 left at 2 videos/s
    last = matches[-1]
    assert last.group(1) == "1000" and last.group(2) == "100" and last.group(4) == "0:00"


def test_fast_steps_write_per_cent_lines_at_most_every_min_interval():
    stream, clock = io.StringIO(), FakeClock()
    bar = LogProgress(1000, "work", "videos", stream=stream, clock=clock)
    for i in range(1000):  # 10 ms apart: 10 s in all, so per-cent lines at most every 5 s
        clock.t = (i + 1) / 100
        bar.update(1)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert [LINE.match(line).group(1) for line in lines] == ["500", "1000"]


def test_resumed_work_counts_only_this_run_in_the_rate():
    stream, clock = io.StringIO(), FakeClock()
    bar = LogProgress(100, "work", "videos", initial=60, stream=stream, clock=clock)
    clock.t = 10.0
    bar.update(20)  # 20 in 10 s: 2/s, 20 left: ETA 10 s
    assert bar.line() == "work: 80/100 videos (80%), 2 videos/s, ETA 0:10, elapsed 0:10"


def test_transient_bar_is_silent_in_a_log_unless_it_ran_long():
    stream, clock = io.StringIO(), FakeClock()
    with LogProgress(10, "eval", "ep", stream=stream, clock=clock, leave=False) as bar:
        bar.update(10)
    assert stream.getvalue() == ""
    with LogProgress(10, "eval", "ep", stream=stream, clock=clock, leave=False) as bar:
        clock.t += 40
        bar.update(5)
        bar.update(5)
    assert len(stream.getvalue().splitlines()) == 2  # the 30 s line and the final one


def test_postfix_and_unknown_total():
    stream, clock = io.StringIO(), FakeClock()
    bar = LogProgress(None, "train", "ep", stream=stream, clock=clock)
    clock.t = 4.0
    bar.update(8)
    bar.set_postfix(loss="0.123")
    assert bar.line() == "train: 8 ep, 2 ep/s, elapsed 0:04, loss 0.123"


def test_terminal_stream_gets_a_tqdm_bar_and_a_log_gets_lines():
    from tqdm import tqdm

    assert isinstance(progress_bar(10, "x", stream=TerminalStream()), tqdm)
    assert isinstance(progress_bar(10, "x", stream=io.StringIO()), LogProgress)
    assert isinstance(progress_bar(10, "x", stream=TerminalStream(), enabled=False), NoProgress)
    assert not stream_is_terminal(object())


def test_a_real_pseudo_terminal_is_a_terminal():
    pty = pytest.importorskip("pty")
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "w", closefd=False) as stream:
            bar = progress_bar(3, "x", stream=stream)
            assert type(bar).__name__ == "tqdm"
            bar.close()
    finally:
        os.close(leader)
        os.close(follower)


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.4, 61, 3725, float("nan"))] == [
        "0:00",
        "0:59",
        "1:01",
        "1:02:05",
        "?",
    ]


def test_bad_intervals_are_refused():
    with pytest.raises(ValueError, match="interval_s"):
        LogProgress(10, "x", interval_s=0)


def test_a_command_writing_to_a_file_writes_few_lines(tmp_path):
    """``fsar synth`` with stderr in a file: whole lines with rate and ETA, no carriage returns."""
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "fsar",
                "synth",
                "--out",
                str(tmp_path / "s"),
                "--preset",
                "tiny",
                "--workers",
                "1",
            ],
            stdout=f,
            stderr=f,
            check=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    text = log.read_text()
    assert "\r" not in text
    progress = [line for line in text.splitlines() if line.startswith("synth: ")]
    assert 1 <= len(progress) <= 12
    assert re.match(r"synth: 90/90 videos \(100%\), \S+ videos/s, ETA 0:00, elapsed", progress[-1])
