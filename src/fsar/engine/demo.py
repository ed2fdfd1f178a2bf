"""The end-to-end demo: synthetic benchmark -> point tracks -> clip store -> backbone pretraining -> every method
trained from the same pretrained backbone under the same budget -> one results table.

The table shows, per method, the standard 5-way accuracy, the accuracy on *twin queries* (queries whose
reversed-order twin class is in the episode: only temporal order tells them apart) and the accuracy on *order
episodes* (each holds two twin pairs), all with 95% intervals. Order-aware methods (OTAM, TA2N, TRX, TATs) should
beat ProtoNet, which averages frames over time, where order decides the class.

Every step writes into ``out`` and is reused when run again with the same settings (the synthetic benchmark,
tracks, clip store and pretrained weights are all resumable), so a second run only retrains the methods.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from fsar.errors import ConfigError, FsarError

# `make demo`'s five-minute budget on the 2-core machine holds ProtoNet and two order-aware methods (README).
DEMO_METHODS = ("protonet", "otam", "trx")
# Methods too slow for that budget; `fsar demo --extended` (`make demo-extended`) runs them after DEMO_METHODS, from
# the same benchmark, clip store and backbone. Alone on one thread TA2N takes 183 s and TATs 132 s (plus 58 s of LK
# tracking on two workers) at the demo's budget; each default method took 44-56 s with the three sharing two cores
# (2026-12-04, AMD Zen 3). Each needs demo_<method>.yaml (and demo_<method>_tiny.yaml for --preset tiny).
EXTENDED_DEMO_METHODS: tuple[str, ...] = ("ta2n", "tats", "trokens", "hyrsm", "molo", "strm")
# Methods that read point tracks: the demo makes LK tracks (and a clip store with their frames) when one runs.
TRACK_METHODS = ("tats", "trokens")
# fsar's shortcut of TATs' redundancy filter in the demo's tracking (fsar.tracking.filtering.first_frame_admit):
# on the demo's videos it changed no track file (BENCHMARKS.md) and saves a third of the tracking.
DEMO_SKIP_RADIUS = 2.0
# The LK settings the demo's table was made with (LKTracker's defaults until 2026-12-04).
DEMO_LK_OPTIONS = {"win_size": 15, "max_iterations": 30, "epsilon": 0.01}


def demo_methods(extended: bool = False) -> list[str]:
    """The methods `fsar demo` runs by default (with ``extended``, EXTENDED_DEMO_METHODS after them)."""
    return list(DEMO_METHODS) + (list(EXTENDED_DEMO_METHODS) if extended else [])


def _cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and of its finished worker processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _interval(row: dict, key: str) -> str:
    mean, ci = row.get(f"{key}_mean"), row.get(f"{key}_ci95")
    return "–" if mean is None else f"{mean:.2f} ± {ci:.2f}"


def format_results_table(rows: list[dict]) -> str:
    lines = [
        "| method | 5-way acc. (%) | twin queries (%) | order episodes (%) | order ep., twin queries (%) "
        "| test episodes | train episodes | train time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {_interval(r, 'test')} | {_interval(r, 'test_twin')} | {_interval(r, 'order')} "
            f"| {_interval(r, 'order_twin')} | {r['test_episodes']} | {r.get('train_tasks', '–')} "
            f"| {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def _preset(name: str, preset: str) -> str:
    """The demo preset of ``name`` (a method, ``pretrain`` or ``base``) for the synthetic preset ``preset``."""
    if preset == "default":
        return f"demo_{name}"
    return f"demo_{preset}_base" if name == "base" else f"demo_{name}_{preset}"


def make_tracks(synth_dir: Path, tracks_dir: Path, log, workers: int = 2) -> None:
    """LK point tracks of every video of the synthetic benchmark on TATs' uniform query grid, at 6 fps (what
    `fsar track --benchmark synthetic --grid 8 --points 64 --max-fps 6 --skip-radius 2 --tracker-option
    win_size=15 --tracker-option max_iterations=30 --tracker-option epsilon=0.01` does).

    Measured on this benchmark (README, BENCHMARKS.md): motion query points (``--query-points motion``) put ten
    times more of the sampled points on the actor (57% vs 6%), but TATs then scored lower on twin queries (65.4%
    vs 77.7%, same pretrained backbone and budget): a grid fixed in the frame lets its tokens see motion as change
    over time, while points riding on the actor see a nearly still actor. So the demo keeps TATs' own grid."""
    from fsar.data.benchmarks import load_synthetic
    from fsar.tracking.runner import TrackingSettings, benchmark_jobs, run_tracking, write_error_report

    bench = load_synthetic(synth_dir)
    jobs, missing = benchmark_jobs(bench, ("train", "val", "test"), tracks_dir)
    settings = TrackingSettings(
        tracker="lk",
        tracker_options=DEMO_LK_OPTIONS,
        grid_size=8,
        points=64,
        max_fps=6.0,
        skip_radius=DEMO_SKIP_RADIUS,
    )
    report = run_tracking(jobs, settings, workers=workers, progress=True)
    if missing or report.failed:
        failed = len(report.failed)
        report.failed.extend((Path(str(r.entry)), "video missing under the benchmark root") for r in missing)
        write_error_report(report, tracks_dir)
        raise FsarError(
            f"point tracking failed for {failed} videos and {len(missing)} are missing; see "
            f"{tracks_dir / 'errors.txt'}"
        )
    log(f"LK point tracks ready in {tracks_dir}: {report.summary()}")


def make_clip_store(cfg, store_dir: Path, tracks_dir: Path | None, log, workers: int = 2) -> None:
    """Decode every video once into a clip store at the demo's training resolution (with the frames the tracks
    select, when TATs runs)."""
    from fsar.data.prepare import prepare_clip_store
    from fsar.engine.data_setup import open_benchmark

    data = cfg.data
    report = prepare_clip_store(
        open_benchmark(data),
        store_dir,
        splits=("train", "val", "test"),
        num_frames=data.num_frames,
        frame_sampler=data.frame_sampler,
        resize_short=data.resize_short,
        resize_to=data.resize_to,
        tracks=tracks_dir,
        workers=workers,
        progress=True,
    )
    if report.failed:
        raise FsarError(f"the clip store is incomplete; see {store_dir / 'errors.txt'}")
    log(f"clip store ready in {store_dir}")


def run_demo(
    out: str | Path,
    preset: str = "default",
    methods: list[str] | None = None,
    tasks: int | None = None,
    episodes: int | None = None,
    seed: int = 0,
    synth_seed: int = 0,
    overrides: list[str] | None = None,
    log=print,
    clip_store: bool = True,
    pretrain: bool = True,
    extended: bool = False,
    jobs: int = 1,
) -> list[dict]:
    """Run the demo into ``out``; return one results dict per method (also in ``out/results.json``).

    ``seed``: training seed of every method; ``synth_seed``: the synthetic benchmark's seed (another seed gives
    new classes and videos); ``overrides``: config overrides applied to every method (and the pretraining);
    ``extended``: without ``methods``, also run EXTENDED_DEMO_METHODS; ``jobs`` > 1: train that many methods at
    once in separate processes with one torch thread each (results may differ from ``jobs=1`` in the last digits,
    as the arithmetic is split over threads differently). Writes ``results.md``, ``results.json``,
    ``results.png`` (standard and twin-query accuracy per method) and ``validation.png`` (validation curves)."""
    from fsar.data.synthetic import SynthConfig, generate_synthetic
    from fsar.engine.config import load_config
    from fsar.engine.trainer import Trainer

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    out = Path(out)
    methods = list(methods or demo_methods(extended))
    steps: dict[str, dict[str, float]] = {}

    def timed(name: str, started: tuple[float, float]) -> float:
        wall, cpu = time.perf_counter() - started[0], _cpu_seconds() - started[1]
        steps[name] = {"wall_s": wall, "cpu_s": cpu}
        return wall

    def clock() -> tuple[float, float]:
        return time.perf_counter(), _cpu_seconds()

    synth_dir = out / (f"synthetic_{preset}" + (f"_seed{synth_seed}" if synth_seed else ""))
    stamp = clock()
    generate_synthetic(synth_dir, SynthConfig.preset(preset, seed=synth_seed), progress=True)
    log(f"synthetic benchmark ready in {synth_dir} ({timed('synthesis', stamp):.0f} s)")

    common = [f"data.root={synth_dir}", *(overrides or [])]
    # Tracks only when a method reads them. The demo's segment sampler keeps every frame in the clip store, so a
    # store made without tracks also holds the tracks' frames (fsar.data.clip_store): a run of any subset of
    # methods reuses (and reproduces) the same store, backbone and rows as the full demo.
    use_tracks = any(m in TRACK_METHODS for m in methods)
    tracks_dir = synth_dir / "tracks_lk" if use_tracks else None
    if tracks_dir is not None:
        stamp = clock()
        make_tracks(synth_dir, tracks_dir, log)
        log(f"  ({timed('tracks', stamp):.0f} s)")
    store_dir = synth_dir / "clip_store"
    if clip_store:
        stamp = clock()
        make_clip_store(load_config(_preset("base", preset), common), store_dir, tracks_dir, log)
        log(f"  ({timed('clip store', stamp):.0f} s)")
        common.append(f"data.clip_store={store_dir}")

    if pretrain:
        from fsar.engine.pretrain import pretrain_backbone

        stamp = clock()
        pre_cfg = load_config(_preset("pretrain", preset), common)
        pre_dir = out / "pretrain"
        pretrain_backbone(pre_cfg, pre_dir, log=log)
        common.append(f"model.backbone_weights={pre_dir / 'backbone.safetensors'}")
        log(f"pretrained backbone in {pre_dir} ({timed('pretraining', stamp):.0f} s)")

    configs = {}
    for method in methods:
        extra = [*common, f"train.seed={seed}"]
        if method in TRACK_METHODS:
            extra.append(f"data.tracks={tracks_dir}")
        if tasks is not None:
            extra.append(f"train.tasks={tasks}")
        if episodes is not None:
            extra.append(f"eval.episodes={episodes}")
        try:
            configs[method] = (load_config(_preset(method, preset), extra), extra)
        except ConfigError as exc:
            raise ConfigError(f"demo method {method!r}: {exc}") from None
    results: dict[str, dict] = {}
    if jobs <= 1:
        for method, (cfg, _) in configs.items():
            log(f"== {method}: {cfg.train.tasks} training episodes, {cfg.eval.episodes} test episodes")
            stamp = clock()
            results[method] = Trainer(cfg, out / "runs" / method, log=log).fit()
            timed(method, stamp)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        stamp = clock()
        log(f"== {', '.join(methods)}: {jobs} at a time, one torch thread each")
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(methods)), mp_context=context) as pool:
            futures = {
                method: pool.submit(
                    _train_method, _preset(method, preset), extra, str(out / "runs" / method), method
                )
                for method, (_, extra) in configs.items()
            }
            for method, future in futures.items():
                results[method], seconds = future.result()
                steps[method] = {"wall_s": seconds}
                log(f"== {method} done ({seconds:.0f} s)")
        timed("methods", stamp)
    rows = [{**results[m], "train_tasks": cfg.train.tasks} for m, (cfg, _) in configs.items()]
    way = next(iter(configs.values()))[0].episodes.way if configs else 5
    table = format_results_table(rows)
    total = time.perf_counter() - start
    (out / "results.md").write_text(
        f"# fsar demo: synthetic benchmark ({preset}, seed {synth_seed}), 5-way 1-shot, training seed {seed}\n\n"
        f"{table}\n\nTwin queries: queries whose reversed-order twin class is in the episode. Order episodes: "
        f"each holds two twin pairs. Checkpoints selected on the validation split. Whole demo: {total:.0f} s.\n"
    )
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    steps["whole demo"] = {"wall_s": total, "cpu_s": _cpu_seconds() - cpu_start}
    (out / "timings.json").write_text(json.dumps(steps, indent=2))
    figures = write_figures(out, rows, methods, way=way)
    log("\n" + table)
    log(f"whole demo: {total:.0f} s; table in {out / 'results.md'}")
    log(f"figures: {figures[0]} (test accuracy) and {figures[1]} (validation curves)")
    return rows


def _train_method(preset: str, overrides: list[str], run_dir: str, method: str) -> tuple[dict, float]:
    """Train and evaluate one demo method in a worker process (one torch thread); its log lines are prefixed."""
    import torch

    from fsar.engine.config import load_config
    from fsar.engine.trainer import Trainer
    from fsar.procs import tune_allocator

    torch.set_num_threads(1)
    tune_allocator()
    start = time.perf_counter()
    cfg = load_config(preset, overrides)
    result = Trainer(cfg, Path(run_dir), log=lambda text: print(f"[{method}] {text}", flush=True)).fit()
    return result, time.perf_counter() - start


def write_figures(out: Path, rows: list[dict], methods: list[str], way: int = 5) -> tuple[Path, Path]:
    """``out/results.png`` from the rows of ``results.json`` and ``out/validation.png`` from each method's
    ``runs/<method>/val_log.csv``."""
    from fsar.engine.demo_figures import plot_results, plot_validation_curves

    results = plot_results(rows, out / "results.png", way=way)
    curves = plot_validation_curves({m: out / "runs" / m for m in methods}, out / "validation.png", way=way)
    return results, curves
