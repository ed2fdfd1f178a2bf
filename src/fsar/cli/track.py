"""``fsar track``: offline point tracking of videos into ``.npz`` track files (TATs' recipe, tats.md §1).

Folder mode tracks every video file and frame folder below ``--videos``; benchmark mode tracks every video of a
named benchmark's splits. Outputs mirror the videos' paths relative to ``--videos`` / ``--root`` with a ``.npz``
suffix (``walk/a.mp4 -> OUT/walk/a.npz``, frame folder ``walk/b -> OUT/walk/b.npz``).
"""

from __future__ import annotations

import argparse
import json

from fsar.parts import PART_HELP, part_argument


def _tracker_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a plain string (e.g. a path)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "track",
        help="track a grid of points through videos into .npz track files (for TATs)",
        description="Track a 16x16 grid queried on 7 frames (uniform_8), drop redundant re-queried points "
        "(max distance 16 px), keep a fixed seeded subset of 256 points, and write one .npz per video. "
        "Outputs that are complete (same tracker and parameters) are skipped; failures are listed in "
        "OUT/errors.txt and make the exit code 1.",
    )
    source = p.add_argument_group("videos (one of)")
    source.add_argument(
        "--videos", metavar="DIR", help="folder mode: every video file / frame folder below DIR"
    )
    source.add_argument(
        "--benchmark", metavar="NAME", help="benchmark mode: a named benchmark (see `fsar data`)"
    )
    p.add_argument("--root", metavar="DIR", help="benchmark mode: the videos root")
    p.add_argument(
        "--splits",
        metavar="DIR",
        help="benchmark mode: the split files' folder (synthetic: default ROOT/splits with videos in ROOT/videos)",
    )
    p.add_argument(
        "--split-id", default=None, help="benchmark mode: which split variant (default: the benchmark's)"
    )
    p.add_argument(
        "--split-names",
        default=None,
        help="benchmark mode: comma-separated splits to track (default: every split the benchmark has)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for the .npz files")
    p.add_argument("--tracker", default="lk", help="tracker name: lk (default, OpenCV) or cotracker")
    p.add_argument(
        "--tracker-option",
        action="append",
        default=[],
        type=_tracker_option,
        metavar="KEY=VALUE",
        help="tracker option (repeatable; VALUE is JSON if it parses, else a string), e.g. fb_threshold=2.0",
    )
    p.add_argument(
        "--checkpoint", default=None, help="cotracker: local checkpoint path (nothing is downloaded)"
    )
    p.add_argument("--grid", type=int, default=16, help="grid side: grid x grid points per query frame (16)")
    p.add_argument(
        "--grid-style",
        choices=("cotracker", "pixel"),
        default="cotracker",
        help="cotracker: CoTracker's 384x512 grid with 8 px margin, rescaled (TATs); pixel: cell centres",
    )
    p.add_argument(
        "--query", default="uniform_8", help="query frames: uniform_K (default uniform_8), beginning, middle"
    )
    p.add_argument(
        "--query-points",
        choices=("grid", "motion", "semantic"),
        default="grid",
        help="where the points go on each query frame: grid (default, TATs) or motion (fsar's own: grid x grid "
        "points on what moves, against the video's temporal median; grid top-ups when too little moves; the "
        "subset takes the motion points first). For static shots with small actors, e.g. the synthetic benchmark; "
        "or semantic (Trokens: k-means clusters of a backbone's patch features, per cluster a peak frame and "
        "k-means query points; cluster ids stored for cluster-proportional sampling at load time)",
    )
    p.add_argument(
        "--semantic-option",
        action="append",
        default=[],
        type=_tracker_option,
        metavar="KEY=VALUE",
        help="semantic query points: backbone (dinov2_vitb14), weights (local path; needed for DINOv2), "
        "backbone_kwargs (JSON), image_size (224), normalization (imagenet|clip|none), cluster_frames (32), "
        "clusters (16), points_per_cluster (16); see fsar.tracking.semantic.SemanticRule",
    )
    p.add_argument(
        "--motion-option",
        action="append",
        default=[],
        type=_tracker_option,
        metavar="KEY=VALUE",
        help="motion query points: reference (median|neighbours), gap, sigma, erode, spacing, threshold "
        "(repeatable; see fsar.tracking.queries.MotionRule), e.g. spacing=3",
    )
    p.add_argument(
        "--uniform-subset",
        action="store_true",
        help="motion query points: draw the subset uniformly (TATs' rule) instead of motion points first",
    )
    p.add_argument("--points", type=int, default=256, help="size of the fixed seeded subset per video (256)")
    p.add_argument(
        "--seed", type=int, default=0, help="global seed; each video's subset uses (seed, crc32(id))"
    )
    p.add_argument("--max-dist", type=float, default=16.0, help="redundancy filter distance in pixels (16)")
    p.add_argument(
        "--skip-radius",
        type=float,
        default=None,
        help="lk: do not track a point queried within this many pixels of a visible first-frame trajectory "
        "(fsar's shortcut of the redundancy filter, not TATs'; default 2 for lk, which changed no track file "
        "in BENCHMARKS.md; 0 = TATs' filter exactly)",
    )
    p.add_argument(
        "--max-fps",
        type=float,
        default=10.0,
        help="resample non-webm videos to at most this frame rate, like TATs (10); 0 tracks every frame",
    )
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (1)")
    p.add_argument(
        "--overwrite", action="store_true", help="re-track videos whose output is already complete"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--part", type=part_argument, default=None, metavar="I/N", help=PART_HELP)
    p.set_defaults(func=run)


class _UsageError(Exception):
    pass


def _benchmark_jobs(args: argparse.Namespace, out_dir):
    from pathlib import Path

    from fsar.data.benchmarks import load_benchmark
    from fsar.tracking.runner import benchmark_jobs

    if not args.root:
        raise _UsageError("--benchmark needs --root DIR (the videos root)")
    root = Path(args.root)
    splits = Path(args.splits) if args.splits else None
    if splits is None:
        if args.benchmark != "synthetic":
            raise _UsageError("--benchmark needs --splits DIR (the split files' folder)")
        splits, root = root / "splits", root / "videos"
    bench = load_benchmark(args.benchmark, root=root, splits_dir=splits, split_id=args.split_id)
    if args.split_names:
        names = [s.strip() for s in args.split_names.split(",") if s.strip()]
    else:
        names = list(getattr(bench, "available_splits", ("train", "val", "test")))
    return benchmark_jobs(bench, names, out_dir, root)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import sys
    from pathlib import Path

    from fsar.errors import FsarError
    from fsar.procs import lock_folder
    from fsar.tracking.queries import MotionRule
    from fsar.tracking.runner import TrackingSettings, folder_jobs, run_tracking, write_error_report
    from fsar.tracking.semantic import SemanticRule

    if bool(args.videos) == bool(args.benchmark):
        print("fsar track: error: give exactly one of --videos DIR or --benchmark NAME", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    options = dict(args.tracker_option)
    if args.checkpoint:
        options["checkpoint"] = args.checkpoint
    if args.query_points != "motion" and (args.motion_option or args.uniform_subset):
        print(
            "fsar track: error: --motion-option and --uniform-subset need --query-points motion",
            file=sys.stderr,
        )
        return 2
    if args.query_points != "semantic" and args.semantic_option:
        print("fsar track: error: --semantic-option needs --query-points semantic", file=sys.stderr)
        return 2
    try:
        semantic = SemanticRule(**dict(args.semantic_option))
    except TypeError:
        valid = ", ".join(f.name for f in dataclasses.fields(SemanticRule))
        unknown = sorted(set(dict(args.semantic_option)) - {f.name for f in dataclasses.fields(SemanticRule)})
        print(
            f"fsar track: error: unknown --semantic-option {', '.join(unknown)}; valid: {valid}",
            file=sys.stderr,
        )
        return 2
    except ValueError as exc:
        print(f"fsar track: error: {exc}", file=sys.stderr)
        return 2
    try:
        motion = MotionRule(**dict(args.motion_option))
    except TypeError:
        valid = ", ".join(f.name for f in dataclasses.fields(MotionRule))
        unknown = sorted(set(dict(args.motion_option)) - {f.name for f in dataclasses.fields(MotionRule)})
        print(
            f"fsar track: error: unknown --motion-option {', '.join(unknown)}; valid: {valid}",
            file=sys.stderr,
        )
        return 2
    except ValueError as exc:
        print(f"fsar track: error: {exc}", file=sys.stderr)
        return 2
    try:
        settings = TrackingSettings(
            tracker=args.tracker,
            tracker_options=options,
            grid_size=args.grid,
            grid=args.grid_style,
            query=args.query,
            points=args.points,
            seed=args.seed,
            max_dist=args.max_dist,
            max_fps=args.max_fps,
            query_points=args.query_points,
            motion=motion,
            prefer_picked=not args.uniform_subset,
            skip_radius=args.skip_radius,
            semantic=semantic,
        )
    except ValueError as exc:
        print(f"fsar track: error: {exc}", file=sys.stderr)
        return 2
    try:
        settings.create_tracker()  # bad tracker name / options / missing package: fail before any work
        settings.create_query_encoder()  # semantic: the backbone and its weights
    except (KeyError, TypeError, ValueError, ImportError, FileNotFoundError, FsarError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"fsar track: error: {message}", file=sys.stderr)
        return 2

    missing = []
    try:
        if args.videos:
            jobs = folder_jobs(args.videos, out_dir)
        else:
            jobs, missing = _benchmark_jobs(args, out_dir)
    except (_UsageError, FileNotFoundError, ValueError) as exc:
        print(f"fsar track: error: {exc}", file=sys.stderr)
        return 2
    if not jobs and not missing:
        print(f"fsar track: error: no videos found (searched {args.videos or args.root})", file=sys.stderr)
        return 1

    with lock_folder(
        out_dir, tag=None if args.part is None else args.part.tag
    ):  # one run (or part) per folder
        if args.part is not None:
            return _run_part(args, jobs, missing, settings, out_dir)
        report = run_tracking(
            jobs, settings, workers=args.workers, progress=not args.no_progress, overwrite=args.overwrite
        )
        for record in missing:
            entry = getattr(record, "entry", record.video_id)
            report.failed.append((Path(str(entry)), "video missing under the benchmark root"))
        error_file = write_error_report(report, out_dir)
    print(f"fsar track: {report.summary()}; outputs in {out_dir}")
    if report.failed:
        for source, message in report.failed[:20]:
            print(f"  FAILED {source}: {message}", file=sys.stderr)
        if len(report.failed) > 20:
            print(f"  ... and {len(report.failed) - 20} more", file=sys.stderr)
        print(f"fsar track: the list of failures is in {error_file}", file=sys.stderr)
        return 1
    return 0


def _run_part(args: argparse.Namespace, jobs, missing, settings, out_dir) -> int:
    """``--part I/N``: track this part's videos; the last part to finish checks all parts and writes errors.txt."""
    import sys

    from fsar.tracking.parts import track_part

    entries = [str(getattr(record, "entry", record.video_id)) for record in missing]
    report, merged = track_part(
        jobs,
        entries,
        settings,
        out_dir,
        args.part,
        workers=args.workers,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    print(f"fsar track: part {args.part}: {report.summary()}; outputs in {out_dir}")
    for source, message in report.failed[:20]:
        print(f"  FAILED {source}: {message}", file=sys.stderr)
    if len(report.failed) > 20:
        print(f"  ... and {len(report.failed) - 20} more", file=sys.stderr)
    if merged is None:
        print(
            f"fsar track: waiting for the other parts; the last to finish merges them (or run "
            f"`fsar data merge-parts {out_dir}`)"
        )
    else:
        failed = sum(len(m["errors"]) for m in merged)
        print(f"fsar track: all {args.part.count} parts done and checked; {failed} failure(s) in all")
    return 1 if report.failed else 0
