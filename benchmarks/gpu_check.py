"""GPU readiness check: every GPU-dependent path of fsar in one run of under 8 minutes on one H100/H200.

Steps, in order (each a subprocess with its own time limit; a global budget skips what no longer fits):

1. ``environment``: torch, CUDA, device, NCCL version, bf16 support (``nvidia-smi`` when present).
2. ``pytest_cuda``: the test suite's ``cuda``-marked tests (``pytest -m cuda tests``): OTAM / TA2N (fast and
   reference) / TATs forward + backward on the GPU equal to the CPU, fp16 (grad scaler) and bf16 trainer steps,
   pinned-memory loading. On a GPU machine a skipped test is a failure.
3. ``synth``: the tiny synthetic benchmark (``fsar synth --preset tiny``), used by the training steps.
4. ``nccl_allreduce``: ``torchrun`` with one process, ``init_process_group("nccl")`` and an all-reduce.
5. ``train_torchrun``: ``torchrun --nproc_per_node=1 -m fsar train demo_ta2n_tiny`` on the GPU (NCCL process group)
   for a few tasks, validation and test included.
6. ``train_fp16`` / ``train_bf16``: the same training in one process with ``train.precision=fp16`` (grad scaler) and
   ``bf16``.
7. ``bench_tats_fp32`` / ``bench_tats_bf16`` / ``bench_tats_bf16_unmasked``: ``benchmarks/bench_tats_block.py
   --device cuda`` at the real size (FLOPs counted, share of the bf16 peak), with query masks and with the
   all-True mask that lets PyTorch use flash attention.
8. ``bench_ta2n``: ``benchmarks/bench_ta2n_acm.py --device cuda``: TA2N fast vs reference at the real size.
9. ``bench_bf16``: ``benchmarks/bench_bf16.py --device cuda``: bf16 vs fp32 speed and logit deviation.
10. ``bench_loader``: ``benchmarks/bench_loader.py`` (TA2N and TATs, frame folders and the clip store, 1 and
    cores - 1 workers, augmentation in the loader and on the GPU; arguments from ``$FSAR_GPU_CHECK_LOADER_ARGS``
    if set).

Between 6 and 7, ``real_<method>``: ``benchmarks/real_size_training.py``: each method with a real recipe (TA2N, TRX,
TATs) trains its published preset for a few dozen tasks on 320x240 synthetic videos from a clip store (TA2N also
from frame folders), with random weights in the published file layouts and loader workers sized from the host's
cores (TA2N from the store: ``data.augment_on=device`` with 4 workers); reports episodes/s, the data-wait share,
peak GPU memory and the projected wall time of the full recipe.

Every planned command's arguments are checked against the argument parser of the script it calls by the test
suite (``tests/engine/test_benchmark_scripts.py``), so a renamed flag fails CI.

Writes ONE JSON summary (``WORK/summary.json``, or ``--out``): per step ``status`` (ok / failed / skipped),
``seconds``, ``numbers`` (the key results), the command, the log file and a note. Exit status 0 when no step
failed.

Modes: default ``cuda``. ``--cpu`` runs the same flow on the CPU at toy sizes (gloo instead of NCCL; the cuda tests
are then expected to be skipped), to check the script anywhere in a few minutes. ``--dry-run`` only writes the plan.

    bash benchmarks/gpu_check.sh                       # on the GPU machine, from the repository root
    bash benchmarks/gpu_check.sh --cpu --work /tmp/gc  # the flow on a CPU
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

NCCL_SCRIPT = """
import json, os, torch, torch.distributed as dist
backend = os.environ["FSAR_CHECK_BACKEND"]
device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if backend == "nccl" else torch.device("cpu")
if device.type == "cuda":
    torch.cuda.set_device(device)
dist.init_process_group(backend=backend)
x = torch.full((1024,), float(dist.get_rank() + 1), device=device)
dist.all_reduce(x)
dist.barrier()
world = dist.get_world_size()
ok = bool(torch.all(x == world * (world + 1) / 2))
nccl = ".".join(map(str, torch.cuda.nccl.version())) if backend == "nccl" else None
print(json.dumps({"backend": dist.get_backend(), "world_size": world, "allreduce_ok": ok, "nccl": nccl}))
dist.destroy_process_group()
"""

ENV_SCRIPT = """
import json, torch
info = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(), "cuda": torch.version.cuda}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(device=p.name, memory_gib=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}",
                devices=torch.cuda.device_count(), bf16=torch.cuda.is_bf16_supported(),
                nccl=".".join(map(str, torch.cuda.nccl.version())))
print(json.dumps(info))
"""


# Real-size training steps (benchmarks/real_size_training.py): every method with a real recipe, from the clip store,
# and TA2N also from JPEG frame folders; (method, source, data.augment_on). TA2N from the store augments on the GPU
# with 4 loader workers (the issue-15 target: one GPU fed by <= 4 host cores); TRX runs the same pixel pipeline
# augmented in the loader with every core, for comparison.
REAL_SIZE_STEPS = (
    ("ta2n", "store", "device"),
    ("ta2n", "frames", "loader"),
    ("trx", "store", "loader"),
    ("tats", "store", "loader"),
)
DEVICE_AUGMENT_WORKERS = 4


@dataclass
class Step:
    name: str
    command: list[str]
    timeout: float
    parse: object = None  # callable(ctx, stdout) -> (ok: bool, numbers: dict, note: str)
    env: dict = field(default_factory=dict)
    skip_note: str | None = None  # set: the step is skipped with this note


@dataclass
class Context:
    mode: str  # cuda | cpu
    work: Path
    python: str

    @property
    def device(self) -> str:
        return "cuda" if self.mode == "cuda" else "cpu"


def last_json(text: str) -> dict:
    lines = [line for line in text.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def parse_environment(ctx: Context, out: str):
    info = last_json(out)
    smi = (
        subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        if _which("nvidia-smi")
        else None
    )
    if smi is not None and smi.returncode == 0:
        info["nvidia_smi"] = smi.stdout.strip()
    if ctx.mode == "cuda" and not info.get("cuda_available"):
        return False, info, "torch.cuda.is_available() is false: not a usable GPU machine"
    return True, info, ""


def parse_pytest(ctx: Context, out: str):
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", out)}
    if ctx.mode == "cuda":
        ok = counts.get("passed", 0) > 0 and not counts.get("failed") and not counts.get("skipped")
        return ok, counts, "" if ok else "on a GPU machine every cuda test must run and pass"
    ok = not counts.get("failed") and not counts.get("error") and not counts.get("errors")
    return ok, counts, "CPU mode: the cuda tests are expected to be skipped"


def parse_nccl(ctx: Context, out: str):
    info = last_json(out)
    want = "nccl" if ctx.mode == "cuda" else "gloo"
    return bool(info.get("allreduce_ok")) and info.get("backend") == want, info, ""


def parse_training(run: Path, expect_world: int | None = None):
    def parse(ctx: Context, out: str):
        path = run / "results.json"
        if not path.is_file():
            return False, {}, f"{path} was not written"
        r = json.loads(path.read_text())
        numbers = {
            k: r.get(k) for k in ("world_size", "test_mean", "test_ci95", "train_seconds", "selected_task")
        }
        rows = (
            list(csv.DictReader((run / "train_log.csv").open())) if (run / "train_log.csv").is_file() else []
        )
        if rows:
            numbers["episodes_per_s"] = float(rows[-1]["episodes_per_s"])
            numbers["last_loss"] = float(rows[-1]["loss"])
        ok = numbers["test_mean"] is not None and (
            expect_world is None or r.get("world_size") == expect_world
        )
        return ok, numbers, ""

    return parse


def parse_tats(path: Path):
    def parse(ctx: Context, out: str):
        if not path.is_file():
            return False, {}, f"{path} was not written"
        r = json.loads(path.read_text())
        numbers = {f"{k}_median_ms": v["median_ms"] for k, v in r["results"].items()}
        numbers.update(
            {
                f"{k}_share_of_peak": v["fraction_of_peak"]
                for k, v in r["results"].items()
                if "fraction_of_peak" in v
            }
        )
        numbers.update(
            {f"{k}_peak_mib": v["peak_memory_mib"] for k, v in r["results"].items() if "peak_memory_mib" in v}
        )
        numbers["device"] = r.get("device")
        return True, numbers, ""

    return parse


def parse_ta2n(path: Path):
    def parse(ctx: Context, out: str):
        if not path.is_file():
            return False, {}, f"{path} was not written"
        r = json.loads(path.read_text())
        numbers: dict = {}
        errors = [x for x in r["results"] if "error" in x]
        for x in r["results"]:
            key = f"{x['episode']}/{x['scope']}/{x['mode']}/{x['impl']}"
            numbers[key] = x.get("error") or {
                "ms": round(1e3 * x["time_median_s"], 2),
                "extra_mb": round(x["extra_mb"], 1),
            }
        return not errors, numbers, f"{len(errors)} configuration(s) failed" if errors else ""

    return parse


def parse_bf16(path: Path):
    def parse(ctx: Context, out: str):
        if not path.is_file():
            return False, {}, f"{path} was not written"
        r = json.loads(path.read_text())["results"]
        keys = (
            "time_over_fp32_median",
            "logit_max_rel_error",
            "logit_mean_rel_error",
            "prediction_agreement",
        )
        numbers = {
            part: {variant: {k: v[variant][k] for k in keys} for variant in ("bf16", "bf16_fp32_head")}
            for part, v in r.items()
        }
        return True, numbers, ""

    return parse


def parse_loader(path: Path):
    def parse(ctx: Context, out: str):
        if not path.is_file():
            return True, {}, f"ran, but wrote no {path.name}; see the log"
        data = json.loads(path.read_text())
        numbers = (
            {k: v for k, v in data.items() if isinstance(v, (int, float, str))}
            if isinstance(data, dict)
            else {}
        )
        return True, numbers, ""

    return parse


def parse_real_size(path: Path):
    def parse(ctx: Context, out: str):
        if not path.is_file():
            return False, {}, f"{path} was not written"
        r = json.loads(path.read_text())
        keys = (
            "episodes_per_s",
            "data_wait_fraction",
            "peak_memory_mib",
            "workers",
            "augment_on",
            "seconds",
            "steady",
        )
        numbers = {k: r.get(k) for k in keys}
        numbers["projected_training_only"] = r.get("projected_training_only")
        return r.get("episodes_per_s", 0) > 0, numbers, ""

    return parse


def real_workers(ctx: Context) -> int:
    """Loader workers of the real-size steps: the host's cores minus one (at most 16); 1 in CPU mode."""
    if ctx.mode == "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, min(16, cores - 1))


def _which(name: str) -> bool:
    return any((Path(p) / name).is_file() for p in os.environ.get("PATH", "").split(os.pathsep) if p)


def plan(ctx: Context) -> list[Step]:
    py, w, dev, cuda = ctx.python, ctx.work, ctx.device, ctx.mode == "cuda"
    synth = w / "synth"
    train_common = [
        f"data.root={synth}",
        f"train.device={dev}",
        f"train.tasks={8 if cuda else 2}",
        f"train.val_every={4 if cuda else 2}",
        f"train.val_episodes={20 if cuda else 4}",
        f"eval.episodes={100 if cuda else 5}",
        "train.tensorboard=false",
    ]
    torchrun = [py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"]
    tats_size = (
        [] if cuda else ["--batch", "2", "--points", "16", "--dim", "64", "--grid", "4", "--heads", "4"]
    )
    tats_reps = ["--repeats", "5", "--warmup", "2"] if cuda else ["--repeats", "1", "--warmup", "0"]
    ta2n_args = (
        ["--device", "cuda", "--repeats", "5", "--warmup", "2"]
        if cuda
        else [
            "--device",
            "cpu",
            "--channels",
            "64",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--episodes",
            "5w1s25q",
        ]
    )
    loader_args = os.environ.get("FSAR_GPU_CHECK_LOADER_ARGS")
    loader_args = (
        shlex.split(loader_args)
        if loader_args
        else [
            "--work",
            str(w / "loader"),
            *(
                [
                    *(
                        "--methods",
                        "ta2n,tats",
                        "--sources",
                        "frames,store",
                        "--workers",
                        f"1,{real_workers(ctx)}",
                    ),
                    *("--augment-on", "loader,device", "--device", "cuda", "--episodes", "6"),
                ]
                if cuda
                else [
                    *("--classes", "5", "--videos-per-class", "7", "--frames", "24", "--size", "80x60"),
                    *("--methods", "ta2n", "--sources", "store", "--workers", "0", "--no-flops"),
                    *("--episodes", "2", "--warmup", "1", "--augment-on", "loader,device"),
                ]
            ),
            "--out",
            str(w / "bench_loader.json"),
        ]
    )
    steps = [
        Step("environment", [py, str(w / "env_check.py")], 60, parse_environment),
        Step(
            "pytest_cuda",
            [py, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "-rs", "tests"],
            240,
            parse_pytest,
        ),
        Step("synth", [py, "-m", "fsar", "synth", "--out", str(synth), "--preset", "tiny", "--quiet"], 120),
        Step(
            "nccl_allreduce",
            [*torchrun, str(w / "nccl_check.py")],
            90,
            parse_nccl,
            env={"FSAR_CHECK_BACKEND": "nccl" if cuda else "gloo"},
        ),
        Step(
            "train_torchrun",
            [
                *torchrun,
                "-m",
                "fsar",
                "train",
                "demo_ta2n_tiny",
                "--out",
                str(w / "run_torchrun"),
                *train_common,
            ],
            180,
            parse_training(w / "run_torchrun", expect_world=1),
        ),
    ]
    for precision in ("fp16", "bf16"):
        run = w / f"run_{precision}"
        steps.append(
            Step(
                f"train_{precision}",
                [
                    py,
                    "-m",
                    "fsar",
                    "train",
                    "demo_ta2n_tiny",
                    "--out",
                    str(run),
                    *train_common,
                    f"train.precision={precision}",
                ],
                150,
                parse_training(run),
            )
        )
    for method, source, place in REAL_SIZE_STEPS:
        out = w / f"real_{method}_{source}.json"
        size = (
            (["--workers", str(DEVICE_AUGMENT_WORKERS)] if place == "device" else [])
            if cuda
            else [
                *("--toy", "--tasks", "2", "--classes", "15", "--videos-per-class", "6"),
                *("--frames", "24", "--size", "80x60", "--workers", "1"),
            ]
        )
        steps.append(
            Step(
                f"real_{method}" + ("" if source == "store" else f"_{source}"),
                [
                    py,
                    "benchmarks/real_size_training.py",
                    *("--method", method, "--source", source, "--augment-on", place, "--device", dev),
                    *("--work", str(w / "real"), "--out", str(out)),
                    *size,
                ],
                150 if cuda else 300,
                parse_real_size(out),
            )
        )
    for dtype, mask in (("float32", "query"), ("bfloat16", "query"), ("bfloat16", "all")):
        name = f"bench_tats_{'fp32' if dtype == 'float32' else 'bf16'}" + (
            "_unmasked" if mask == "all" else ""
        )
        out = w / f"{name}.json"
        peak = ["--peak-tflops", "989"] if cuda and dtype == "bfloat16" else []  # H100/H200 SXM dense bf16
        steps.append(
            Step(
                name,
                [
                    py,
                    "benchmarks/bench_tats_block.py",
                    *("--device", dev, "--dtype", dtype, "--mask", mask),
                    *tats_size,
                    *tats_reps,
                    *peak,
                    "--out",
                    str(out),
                ],
                120,
                parse_tats(out),
            )
        )
    steps.append(
        Step(
            "bench_ta2n",
            [py, "benchmarks/bench_ta2n_acm.py", *ta2n_args, "--out", str(w / "bench_ta2n.json")],
            240,
            parse_ta2n(w / "bench_ta2n.json"),
        )
    )
    bf16_args = ["--device", dev, "--episodes", "10"] if cuda else ["--device", "cpu", "--quick"]
    steps.append(
        Step(
            "bench_bf16",
            [py, "benchmarks/bench_bf16.py", *bf16_args, "--out", str(w / "bench_bf16.json")],
            150,
            parse_bf16(w / "bench_bf16.json"),
        )
    )
    steps.append(
        Step(
            "bench_loader",
            [py, "benchmarks/bench_loader.py", *loader_args],
            150,
            parse_loader(w / "bench_loader.json"),
        )
    )
    return steps


def run_step(step: Step, ctx: Context, env: dict, remaining: float) -> dict:
    entry = {"name": step.name, "command": shlex.join(step.command), "numbers": {}, "note": ""}
    if step.skip_note:
        return {**entry, "status": "skipped", "seconds": 0.0, "note": step.skip_note}
    limit = min(step.timeout, remaining)
    if limit < 15:
        return {
            **entry,
            "status": "skipped",
            "seconds": 0.0,
            "note": f"only {remaining:.0f} s of the budget left",
        }
    log = ctx.work / "logs" / f"{step.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            step.command, cwd=REPO, env={**env, **step.env}, capture_output=True, text=True, timeout=limit
        )
        out, rc, timed_out = proc.stdout, proc.returncode, False
        log.write_text(f"$ {entry['command']}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    except subprocess.TimeoutExpired as exc:
        out, rc, timed_out = (
            (exc.stdout or b"").decode(errors="replace")
            if isinstance(exc.stdout, bytes)
            else (exc.stdout or ""),
            None,
            True,
        )
        log.write_text(f"$ {entry['command']}\n--- timed out after {limit:.0f} s\n{out}")
    seconds = time.perf_counter() - start
    entry.update(seconds=round(seconds, 1), log=str(log))
    if timed_out:
        return {**entry, "status": "failed", "note": f"timed out after {limit:.0f} s"}
    ok, numbers, note = (rc == 0, {}, "")
    if step.parse is not None:
        try:
            parsed_ok, numbers, note = step.parse(ctx, out)
            ok = ok and parsed_ok
        except Exception as exc:  # a broken output is a failed step, with the reason
            ok, note = False, f"could not read the results: {type(exc).__name__}: {exc}"
    if rc != 0:
        tail = log.read_text().strip().splitlines()[-3:]
        note = (note + "; " if note else "") + f"exit status {rc}: " + " | ".join(tail)
    return {**entry, "status": "ok" if ok else "failed", "numbers": numbers, "note": note}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--work", type=Path, default=Path("runs/gpu_check"), help="working folder (default runs/gpu_check)"
    )
    ap.add_argument("--out", type=Path, default=None, help="summary JSON (default WORK/summary.json)")
    ap.add_argument(
        "--cpu", action="store_true", help="the same flow on the CPU at toy sizes (checks the script)"
    )
    ap.add_argument(
        "--dry-run", action="store_true", help="write the plan (commands) without running anything"
    )
    ap.add_argument(
        "--budget", type=float, default=480.0, help="seconds for all steps together (default 480: 8 minutes)"
    )
    ap.add_argument("--steps", default=None, help="comma-separated subset of the steps to run (default all)")
    args = ap.parse_args(argv)

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context("cpu" if args.cpu else "cuda", work, sys.executable)
    (work / "nccl_check.py").write_text(NCCL_SCRIPT)
    (work / "env_check.py").write_text(ENV_SCRIPT)
    steps = plan(ctx)
    if args.steps:
        wanted = [s.strip() for s in args.steps.split(",") if s.strip()]
        unknown = sorted(set(wanted) - {s.name for s in steps})
        if unknown:
            ap.error(f"unknown steps {unknown}; steps: {', '.join(s.name for s in steps)}")
        steps = [s for s in steps if s.name in wanted]
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    )
    if args.cpu:
        env.setdefault("OMP_NUM_THREADS", "1")
    summary = {
        "mode": ctx.mode,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "host": platform.node(),
        "python": platform.python_version(),
        "work": str(work),
        "budget_s": args.budget,
        "dry_run": args.dry_run,
        "steps": [],
    }
    out = args.out or work / "summary.json"
    start = time.perf_counter()
    for step in steps:
        if args.dry_run:
            status = "skipped" if step.skip_note else "planned"
            summary["steps"].append(
                {
                    "name": step.name,
                    "status": status,
                    "command": shlex.join(step.command),
                    "timeout_s": step.timeout,
                    "note": step.skip_note or "",
                }
            )
            continue
        print(f"[gpu_check] {step.name} ...", file=sys.stderr, flush=True)
        result = run_step(step, ctx, env, args.budget - (time.perf_counter() - start))
        print(
            f"[gpu_check]   {result['status']} in {result['seconds']} s {result['note']}",
            file=sys.stderr,
            flush=True,
        )
        summary["steps"].append(result)
    summary["total_seconds"] = round(time.perf_counter() - start, 1)
    summary["failed"] = [s["name"] for s in summary["steps"] if s["status"] == "failed"]
    summary["ok"] = not summary["failed"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"[gpu_check] summary: {out} ({'ok' if summary['ok'] else 'FAILED: ' + ', '.join(summary['failed'])})"
    )
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
