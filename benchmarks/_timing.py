"""Shared timing harness of the benchmark scripts: time a pass with peak memory, and run one configuration in a
fresh subprocess (so that peak memory is per configuration). Imported as ``from _timing import ...`` by scripts run
as ``python benchmarks/NAME.py`` (their folder is on ``sys.path``)."""

from __future__ import annotations

import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def time_passes(one_pass: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> dict:
    """Run ``one_pass`` ``warmup`` times, then time ``repeats`` runs: median, min, all times, peak and extra memory
    (CUDA: allocated; CPU: the process's peak resident memory)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        base = _peak_bytes(device)
    for _ in range(warmup):
        one_pass()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        one_pass()
        times.append(time.perf_counter() - start)
    peak = _peak_bytes(device)
    return {
        "time_median_s": statistics.median(times),
        "time_min_s": min(times),
        "times_s": times,
        "peak_mb": peak / 2**20,
        "extra_mb": (peak - base) / 2**20,
    }


def run_in_subprocess(script: str | Path, cfg: dict, timeout: float) -> dict:
    """``python SCRIPT --worker JSON`` in a fresh process; its last JSON line of stdout, or ``{"error": ...}``."""
    cmd = [sys.executable, str(Path(script).resolve()), "--worker", json.dumps(cfg)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}"}
    return json.loads(lines[-1])


def fmt(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def comparison_cells(a: dict, b: dict) -> str:
    """Markdown cells ``a ms | b ms | a/b time | a extra MB | b extra MB | a/b memory`` of two timed results."""
    at, bt = a.get("time_median_s"), b.get("time_median_s")
    am, bm = a.get("extra_mb"), b.get("extra_mb")
    return (
        f"{fmt(at and at * 1e3)} | {fmt(bt and bt * 1e3)} | {fmt(at / bt if at and bt else None, 3)} | "
        f"{fmt(am)} | {fmt(bm)} | {fmt(am / bm if am and bm else None, 3)}"
    )


def add_timing_arguments(parser) -> None:
    """``--device``, ``--repeats``, ``--warmup`` and ``--out``, the same in every timing script."""
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per configuration (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes before timing (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON to this path")


def write_report(args, results: list[dict], table: str, **extra) -> dict:
    """The JSON report of a timing script (device, versions, threads, how memory was measured, its arguments,
    ``extra`` entries such as the agreement checks, the results and the markdown table); written to ``args.out``
    when set. Returns it."""
    cuda = args.device.startswith("cuda")
    report = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name(args.device)
        if cuda
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": args.threads or torch.get_num_threads(),
        "memory_method": "cuda: max_memory_allocated minus allocated before the passes"
        if cuda
        else "cpu: ru_maxrss high-water mark of a fresh subprocess after minus before the passes",
        "args": {k: v for k, v in vars(args).items() if k not in ("worker", "out")},
        **extra,
        "results": results,
        "table_markdown": table,
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str))
        print(f"[bench] wrote {args.out}", file=sys.stderr)
    return report
