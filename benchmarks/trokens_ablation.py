"""Trokens ablation on the synthetic benchmark: which motion signal makes trajectory tokens read temporal order?

Trains, under the demo's budget and from the demo's pretrained backbone, each *variant*

* ``tats``: TATs (appearance sampled along the tracks, no motion embedding);
* ``hod``: Trokens with the HoD embedding only;
* ``rel``: Trokens with the relative-motion embedding only;
* ``both``: Trokens (HoD + relative motion, the paper's model);
* ``gate``: ``both`` with ``motion_gate=0`` (**not in the original**: a learnable scalar gate on each motion
  embedding, initialised to 0, so training starts from TATs and lets the motion in as far as it helps; see
  :class:`fsar.models.trokens.Trokens`);

on each kind of *tracks*

* ``grid``: the demo's LK tracks on TATs' uniform query grid (``DEMO/synthetic_*/tracks_lk``);
* ``motion``: LK on motion query points (``fsar track --query-points motion``; made here if missing);
* ``gt``: the generator's ground-truth actor trajectories (``trajectories/*.npz``: 64 points on the actor, query
  frame 0, visibility from the renderer), written as track files on the LK files' timeline so the clip store's
  frames still match (made here if missing);

and reports the standard 5-way 1-shot accuracy and the accuracy on twin queries (the reversed-order twin class is
in the episode), both with 95% intervals, from the same test episodes for every run.

Needs a finished demo folder (``fsar demo --out DEMO --methods tats``: synthetic benchmark, LK tracks, clip store,
pretrained backbone). Usage (the measured subset is in BENCHMARKS.md)::

    python benchmarks/trokens_ablation.py --demo DEMO --out OUT --variants tats,hod,rel,both --tracks grid,gt \\
        --seeds 0

Every run is a plain ``Trainer`` run in ``OUT/runs/<tracks>_<variant>_seed<seed>`` (a finished run is reused: any
folder there with a ``results.json``, so finished runs of the same preset, seed and backbone made elsewhere, e.g.
the demo's ``runs/tats`` and ``runs/trokens`` for ``grid_tats_seed0`` and ``grid_both_seed0``, can be linked in).
The motion and ground-truth track files are written into DEMO's synthetic folder.
Writes ``OUT/trokens_ablation.json`` and ``OUT/trokens_ablation.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = {
    "tats": ("tats", []),
    "hod": ("trokens", ["model.kwargs.use_relative_motion=false"]),
    "rel": ("trokens", ["model.kwargs.use_hod=false"]),
    "both": ("trokens", []),
    "gate": ("trokens", ["model.kwargs.motion_gate=0.0"]),
}
TRACKS = ("grid", "motion", "gt")


def find_synthetic(demo: Path, preset: str) -> Path:
    candidates = sorted(demo.glob(f"synthetic_{preset}*"))
    if not candidates:
        raise SystemExit(
            f"{demo}: no synthetic_{preset}* folder; run `fsar demo --out {demo} --methods tats` first"
        )
    return candidates[0]


def make_motion_tracks(synth: Path, out: Path, log) -> None:
    """LK on motion query points, with the demo's other tracking settings (grid 8, 64 points, 6 fps)."""
    from fsar.data.benchmarks import load_synthetic
    from fsar.tracking.runner import TrackingSettings, benchmark_jobs, run_tracking

    bench = load_synthetic(synth)
    jobs, missing = benchmark_jobs(bench, ("train", "val", "test"), out)
    settings = TrackingSettings(tracker="lk", grid_size=8, points=64, max_fps=6.0, query_points="motion")
    report = run_tracking(jobs, settings, workers=1, progress=False)
    if missing or report.failed:
        raise SystemExit(f"motion tracks: {len(report.failed)} failed, {len(missing)} missing")
    log(f"motion-query LK tracks in {out}: {report.summary()}")


def make_ground_truth_tracks(synth: Path, lk_dir: Path, out: Path, log) -> None:
    """Track files of the generator's actor trajectories on each LK file's timeline (query frame 0)."""
    from fsar.data.trackfile import TrackFile

    count = 0
    for lk_path in sorted(lk_dir.rglob("*.npz")):
        target = out / lk_path.relative_to(lk_dir)
        if target.is_file():
            continue
        lk = TrackFile.load(lk_path)
        truth = np.load(synth / "trajectories" / lk_path.relative_to(lk_dir))
        points, visible = truth["points"][lk.timeline], truth["visible"][lk.timeline]
        n = points.shape[1]
        TrackFile(
            tracks=np.ascontiguousarray(points, dtype=np.float32),
            visibility=np.ascontiguousarray(visible, dtype=bool),
            query_frame=np.zeros(n, dtype=np.int32),
            frame_size=tuple(int(v) for v in truth["frame_size"]),
            timeline=lk.timeline,
            fps=lk.fps,
            tracker="ground_truth",
            params={"source": "synthetic trajectories", "timeline": "LK file"},
            sampled_indices=np.arange(n, dtype=np.int64),
            num_points_total=n,
            video_id=lk.video_id,
        ).save(target)
        count += 1
    log(f"ground-truth track files in {out} ({count} written now)")


def points_per_file(track_dir: Path) -> int:
    """The subset size of the track files in ``track_dir`` (the first file's; the loader checks the others)."""
    from fsar.data.trackfile import TrackFile

    first = next(iter(sorted(track_dir.rglob("*.npz"))), None)
    if first is None:
        raise SystemExit(f"{track_dir}: no track files")
    return len(TrackFile.load(first).sampled_indices)


def run_one(base: list[str], variant: str, run_dir: Path, log) -> dict:
    from fsar.engine.config import load_config
    from fsar.engine.trainer import Trainer

    done = run_dir / "results.json"
    if done.is_file():
        log(f"reusing {run_dir}")
        return json.loads(done.read_text())
    method, extra = VARIANTS[variant]
    cfg = load_config(base[0].replace("METHOD", method), [*base[1:], *extra])
    start = time.process_time()
    result = Trainer(cfg, run_dir, log=log).fit()
    result["cpu_seconds"] = time.process_time() - start
    result["train_tasks"] = cfg.train.tasks
    done.write_text(json.dumps(result, indent=2))
    return result


def cell(row: dict, key: str) -> str:
    mean, ci = row.get(f"{key}_mean"), row.get(f"{key}_ci95")
    return "–" if mean is None else f"{mean:.2f} ± {ci:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, required=True, help="a finished `fsar demo` folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", default="default", choices=("default", "tiny"))
    parser.add_argument("--variants", default="tats,hod,rel,both")
    parser.add_argument("--tracks", default="grid,motion,gt")
    parser.add_argument("--seeds", default="0", help="training seeds, comma-separated")
    parser.add_argument(
        "--tasks", type=int, default=None, help="training episodes (default: the demo preset's)"
    )
    parser.add_argument(
        "--episodes", type=int, default=None, help="test episodes (default: the demo preset's)"
    )
    parser.add_argument(
        "--no-pretrain",
        action="store_true",
        help="start every run from a randomly initialised backbone instead of DEMO/pretrain (cheaper: no pretraining)",
    )
    parser.add_argument(
        "--collect",
        action="store_true",
        help="only tabulate the finished runs (nothing is trained or tracked)",
    )
    parser.add_argument(
        "overrides", nargs="*", help="config overrides for every run, e.g. train.val_every=100"
    )
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    kinds = [t for t in args.tracks.split(",") if t]
    bad = sorted(set(variants) - set(VARIANTS)) + sorted(set(kinds) - set(TRACKS))
    if bad:
        parser.error(
            f"unknown variant(s)/track kind(s) {bad}; variants {list(VARIANTS)}, tracks {list(TRACKS)}"
        )
    seeds = [int(s) for s in args.seeds.split(",") if s]

    def log(message: str) -> None:
        print(message, flush=True)

    demo = args.demo.resolve()
    synth = find_synthetic(demo, args.preset)
    weights = demo / "pretrain" / "backbone.safetensors"
    store = synth / "clip_store"
    for needed in (synth / "tracks_lk", store, *([] if args.no_pretrain else [weights])):
        if not needed.exists():
            raise SystemExit(f"{needed} is missing; run `fsar demo --out {demo} --methods tats` first")
    track_dirs = {
        "grid": synth / "tracks_lk",
        "motion": synth / "tracks_lk_motion",
        "gt": synth / "tracks_gt",
    }
    if "motion" in kinds and not args.collect:
        make_motion_tracks(synth, track_dirs["motion"], log)
    if "gt" in kinds and not args.collect:
        make_ground_truth_tracks(synth, track_dirs["grid"], track_dirs["gt"], log)

    preset = "demo_METHOD" if args.preset == "default" else f"demo_METHOD_{args.preset}"
    rows = []
    for seed in seeds:
        for kind in kinds:
            for variant in variants:
                base = [
                    preset,
                    f"data.root={synth}",
                    f"data.tracks={track_dirs[kind]}",
                    f"data.clip_store={store}",
                    *([] if args.no_pretrain else [f"model.backbone_weights={weights}"]),
                    f"train.seed={seed}",
                    "eval.order_episodes=0",
                    "train.tensorboard=false",
                    *([f"train.tasks={args.tasks}"] if args.tasks else []),
                    *([f"eval.episodes={args.episodes}"] if args.episodes else []),
                    *args.overrides,
                ]
                if (
                    VARIANTS[variant][0] == "trokens" and not args.collect
                ):  # the relative-motion width is 2N: N from the files
                    base.append(f"model.kwargs.num_points={points_per_file(track_dirs[kind])}")
                name = f"{kind}_{variant}_seed{seed}"
                run_dir = args.out / "runs" / name
                if args.collect and not (run_dir / "results.json").is_file():
                    log(f"{name}: not run")
                    continue
                log(f"== {name}")
                result = run_one(base, variant, run_dir, log)
                rows.append({"tracks": kind, "variant": variant, "seed": seed, **result})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "trokens_ablation.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| tracks | variant | seed | 5-way acc. (%) | twin queries (%) | test episodes | train episodes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['tracks']} | {r['variant']} | {r['seed']} | {cell(r, 'test')} | {cell(r, 'test_twin')} "
            f"| {r.get('test_episodes', '–')} | {r.get('selected_task', '–')} of {r.get('train_tasks', '–')} |"
        )
    table = "\n".join(lines)
    (args.out / "trokens_ablation.md").write_text(
        f"# Trokens ablation ({args.preset} synthetic benchmark, 5-way 1-shot)\n\n{table}\n\n"
        f"Command: python benchmarks/trokens_ablation.py {' '.join(sys.argv[1:] if argv is None else argv)}\n"
    )
    log("\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
