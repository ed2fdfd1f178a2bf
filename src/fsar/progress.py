"""Progress of long steps (synthesis, tracking, preparing, feature extraction, pretraining, training, evaluation).

One utility for every layer (it depends on nothing else in fsar): :func:`progress_bar` returns

- on a terminal (the stream's ``isatty()`` is true): a tqdm bar, redrawn in place, with count, rate and ETA;
- otherwise (a log file, a pipe, a batch job's output): :class:`LogProgress`, which writes whole lines, one per
  step at a sensible interval, never ``\\r`` redraws. A line is written when ``percent`` (10) per cent more of the
  work is done and at least ``min_interval_s`` (5 s) have passed since the last line, or when ``interval_s`` (30 s)
  have passed, whichever comes first, and once at the end. So a run writes at most ``100 / percent`` per-cent lines
  plus one line per ``interval_s`` of its duration plus the final line; a step that is over in seconds writes one
  line. Each line holds the count, the per cent, the rate and the ETA::

      track: 450/1000 videos (45%), 3.61 videos/s, ETA 2:32, elapsed 2:04

- when ``enabled`` is false (``--no-progress``, a non-zero distributed rank): an object that does nothing.

The rate counts only the work done by this process (``initial``, e.g. outputs found complete from an earlier run,
is not counted), so a resumed run shows its true rate and ETA. Bars made with ``leave=False`` (evaluation inside
training) write a final line in a log only if they wrote a progress line, i.e. if they ran long.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

DEFAULT_INTERVAL_S = 30.0
DEFAULT_MIN_INTERVAL_S = 5.0
DEFAULT_PERCENT = 10.0


def stream_is_terminal(stream: Any) -> bool:
    """True if ``stream`` is an interactive terminal (a closed or odd stream counts as not one)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def format_seconds(seconds: float) -> str:
    """``1:02:03`` / ``2:03`` (the tqdm style); ``?`` when unknown."""
    if seconds != seconds or seconds in (float("inf"), float("-inf")) or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _format_count(n: float) -> str:
    return f"{int(n)}" if float(n).is_integer() else f"{n:.1f}"


class NoProgress:
    """The disabled progress object: every method does nothing."""

    n = 0

    def update(self, n: float = 1) -> None:
        pass

    def set_postfix(self, **values: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LogProgress:
    """Progress as whole lines for a log file (see the module docstring for when a line is written)."""

    def __init__(
        self,
        total: float | None,
        desc: str,
        unit: str = "it",
        *,
        initial: float = 0,
        stream: IO[str] | None = None,
        leave: bool = True,
        interval_s: float = DEFAULT_INTERVAL_S,
        min_interval_s: float = DEFAULT_MIN_INTERVAL_S,
        percent: float = DEFAULT_PERCENT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0 or percent <= 0 or min_interval_s < 0:
            raise ValueError(
                f"interval_s and percent must be > 0 and min_interval_s >= 0, got {interval_s}, {percent}, "
                f"{min_interval_s}"
            )
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = initial
        self.initial = initial
        self.stream = stream if stream is not None else sys.stderr
        self.leave = leave
        self.interval_s = float(interval_s)
        self.min_interval_s = float(min_interval_s)
        self.percent = float(percent)
        self.clock = clock
        self.start = self.last_time = clock()
        self.last_n = initial
        self.lines = 0
        self.postfix: dict[str, Any] = {}
        self.closed = False

    def _fraction(self, n: float) -> float:
        return n / self.total if self.total else 0.0

    def update(self, n: float = 1) -> None:
        self.n += n
        now = self.clock()
        since = now - self.last_time
        step = 100.0 * (self._fraction(self.n) - self._fraction(self.last_n))
        due = since >= self.interval_s or (step >= self.percent and since >= self.min_interval_s)
        if due and (self.total is None or self.n < self.total):  # the final line comes from close()
            self._write(now)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = dict(values)

    def line(self, now: float | None = None) -> str:
        """The text of a progress line at time ``now``."""
        now = self.clock() if now is None else now
        elapsed = max(0.0, now - self.start)
        done = self.n - self.initial
        rate = done / elapsed if elapsed > 0 else float("nan")
        parts = [f"{self.desc}: {_format_count(self.n)}"]
        if self.total is not None:
            parts[0] += f"/{_format_count(self.total)} {self.unit} ({100.0 * self._fraction(self.n):.0f}%)"
        else:
            parts[0] += f" {self.unit}"
        parts.append(f"{rate:.3g} {self.unit}/s" if rate == rate else f"? {self.unit}/s")
        if self.total is not None:
            left = self.total - self.n
            eta = 0.0 if left <= 0 else (left / rate if rate and rate == rate and rate > 0 else float("nan"))
            parts.append(f"ETA {format_seconds(eta)}")
        parts.append(f"elapsed {format_seconds(elapsed)}")
        parts.extend(f"{k} {v}" for k, v in self.postfix.items())
        return ", ".join(parts)

    def _write(self, now: float) -> None:
        self.stream.write(self.line(now) + "\n")
        self.stream.flush()
        self.lines += 1
        self.last_time, self.last_n = now, self.n

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.leave or self.lines:
            self._write(self.clock())

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(
    total: float | None,
    desc: str,
    unit: str = "it",
    *,
    initial: float = 0,
    enabled: bool = True,
    stream: IO[str] | None = None,
    leave: bool = True,
    interval_s: float = DEFAULT_INTERVAL_S,
    min_interval_s: float = DEFAULT_MIN_INTERVAL_S,
    percent: float = DEFAULT_PERCENT,
):
    """A progress object with ``update(n)``, ``set_postfix(**values)``, ``close()`` and ``with`` support: a tqdm
    bar on a terminal, :class:`LogProgress` lines otherwise, :class:`NoProgress` when not ``enabled``. ``stream``
    defaults to ``sys.stderr`` (looked up at call time)."""
    if not enabled:
        return NoProgress()
    stream = stream if stream is not None else sys.stderr
    if stream_is_terminal(stream):
        from tqdm import tqdm

        return tqdm(
            total=total, initial=initial, desc=desc, unit=unit, file=stream, leave=leave, dynamic_ncols=True
        )
    return LogProgress(
        total,
        desc,
        unit,
        initial=initial,
        stream=stream,
        leave=leave,
        interval_s=interval_s,
        min_interval_s=min_interval_s,
        percent=percent,
    )
