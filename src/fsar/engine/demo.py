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
import time
from pathlib import Path

from fsar.errors import ConfigError, FsarError

DEMO_METHODS = ("protonet", "otam", "ta2n", "tats", "trx")
TRACK_METHODS = ("tats", "trokens")  # methods that read the LK point tracks


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
    `fsar track --benchmark synthetic --grid 8 --points 64 --max-fps 6` does).

    Measured on this benchmark (README, BENCHMARKS.md): motion query points (``--query-points motion``) put ten
    times more of the sampled points on the actor (57% vs 6%), but TATs then scored lower on twin queries (65.4%
    vs 77.7%, same pretrained backbone and budget): a grid fixed in the frame lets its tokens see motion as change
    over time, while points riding on the actor see a nearly still actor. So the demo keeps TATs' own grid."""
    from fsar.data.benchmarks import load_synthetic
    from fsar.tracking.runner import TrackingSettings, benchmark_jobs, run_tracking, write_error_report

    bench = load_synthetic(synth_dir)
    jobs, missing = benchmark_jobs(bench, ("train", "val", "test"), tracks_dir)
    settings = TrackingSettings(tracker="lk", grid_size=8, points=64, max_fps=6.0)
    report = run_tracking(jobs, settings, workers=workers, progress=False)
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
        progress=False,
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
) -> list[dict]:
    """Run the demo into ``out``; return one results dict per method (also in ``out/results.json``).

    ``seed``: training seed of every method; ``synth_seed``: the synthetic benchmark's seed (another seed gives
    new classes and videos); ``overrides``: config overrides applied to every method (and the pretraining)."""
    from fsar.data.synthetic import SynthConfig, generate_synthetic
    from fsar.engine.config import load_config
    from fsar.engine.trainer import Trainer

    start = time.perf_counter()
    out = Path(out)
    methods = list(methods or DEMO_METHODS)
    synth_dir = out / (f"synthetic_{preset}" + (f"_seed{synth_seed}" if synth_seed else ""))
    stamp = time.perf_counter()
    generate_synthetic(synth_dir, SynthConfig.preset(preset, seed=synth_seed), progress=False)
    log(f"synthetic benchmark ready in {synth_dir} ({time.perf_counter() - stamp:.0f} s)")

    common = [f"data.root={synth_dir}", *(overrides or [])]
    tracks_dir = synth_dir / "tracks_lk" if any(m in TRACK_METHODS for m in methods) else None
    if tracks_dir is not None:
        stamp = time.perf_counter()
        make_tracks(synth_dir, tracks_dir, log)
        log(f"  ({time.perf_counter() - stamp:.0f} s)")
    store_dir = synth_dir / "clip_store"
    if clip_store:
        stamp = time.perf_counter()
        make_clip_store(load_config(_preset("base", preset), common), store_dir, tracks_dir, log)
        log(f"  ({time.perf_counter() - stamp:.0f} s)")
        common.append(f"data.clip_store={store_dir}")

    if pretrain:
        from fsar.engine.pretrain import pretrain_backbone

        stamp = time.perf_counter()
        pre_cfg = load_config(_preset("pretrain", preset), common)
        pre_dir = out / "pretrain"
        pretrain_backbone(pre_cfg, pre_dir, log=log)
        common.append(f"model.backbone_weights={pre_dir / 'backbone.safetensors'}")
        log(f"pretrained backbone in {pre_dir} ({time.perf_counter() - stamp:.0f} s)")

    rows = []
    for method in methods:
        extra = [*common, f"train.seed={seed}"]
        if method in TRACK_METHODS:
            extra.append(f"data.tracks={tracks_dir}")
        if tasks is not None:
            extra.append(f"train.tasks={tasks}")
        if episodes is not None:
            extra.append(f"eval.episodes={episodes}")
        try:
            cfg = load_config(_preset(method, preset), extra)
        except ConfigError as exc:
            raise ConfigError(f"demo method {method!r}: {exc}") from None
        log(f"== {method}: {cfg.train.tasks} training episodes, {cfg.eval.episodes} test episodes")
        result = Trainer(cfg, out / "runs" / method, log=log).fit()
        rows.append({**result, "train_tasks": cfg.train.tasks})
    table = format_results_table(rows)
    total = time.perf_counter() - start
    (out / "results.md").write_text(
        f"# fsar demo: synthetic benchmark ({preset}, seed {synth_seed}), 5-way 1-shot, training seed {seed}\n\n"
        f"{table}\n\nTwin queries: queries whose reversed-order twin class is in the episode. Order episodes: "
        f"each holds two twin pairs. Checkpoints selected on the validation split. Whole demo: {total:.0f} s.\n"
    )
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    log("\n" + table)
    log(f"whole demo: {total:.0f} s; table in {out / 'results.md'}")
    return rows
