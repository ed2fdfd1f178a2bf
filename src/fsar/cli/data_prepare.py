"""``fsar data prepare CONFIG [overrides] --out DIR``: decode a benchmark's videos once.

``--format store`` (default) writes the clip store of ``fsar.data.clip_store`` at the config's stored resolution
(``data.resize_short`` / ``data.resize_to``), for ``data.num_frames`` and ``data.frame_sampler`` (and the frames of
``data.tracks`` when set); train and evaluate from it with ``data.clip_store=DIR``. ``--format frames`` writes
every frame of every video as JPEG frame folders in the benchmark's layout; use them with ``data.root=DIR``.

Exit status 0 when every video was prepared, 1 when some failed (listed in ``DIR/errors.txt``), 2 for a usage
error. Re-running the same command resumes an interrupted prepare.
"""

from __future__ import annotations

import argparse

from fsar.parts import PART_HELP, part_argument


def register_prepare(sub) -> None:
    """Add ``prepare`` to the ``fsar data`` sub-commands."""
    p = sub.add_parser(
        "prepare",
        help="decode a benchmark once into a clip store (data.clip_store=DIR) or JPEG frame folders",
        description="Decode every video of a config's benchmark splits once: into a clip store (memory-mapped "
        "uint8 frames at the training resolution; train/eval with data.clip_store=DIR, no decoding) or into "
        "JPEG frame folders (--format frames; use as data.root=DIR). Parallel, resumable (re-run the same "
        "command), atomic; failures are listed in DIR/errors.txt.",
    )
    p.add_argument("config", help="YAML config or preset name (its data section says what to prepare)")
    p.add_argument(
        "overrides", nargs="*", help="key=value overrides, e.g. data.root=/videos data.splits=/splits"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--format", choices=("store", "frames"), default="store", help="clip store (default) or frames"
    )
    p.add_argument("--splits", default=None, help="comma-separated splits (default: every split with a file)")
    p.add_argument("--workers", type=int, default=1, help="decoding processes (default 1: in this process)")
    p.add_argument(
        "--max-frames",
        type=int,
        default=None,
        help="store: refuse (list as failed) a video needing more stored frames than this (default 512)",
    )
    p.add_argument(
        "--shard-videos", type=int, default=None, help="store: videos per shard file (default 256)"
    )
    p.add_argument("--retry-failed", action="store_true", help="store: redo the shards holding failed videos")
    p.add_argument("--jpeg-quality", type=int, default=95, help="frames: JPEG quality 1-100 (default 95)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--part", type=part_argument, default=None, metavar="I/N", help=PART_HELP)
    p.set_defaults(func=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    import sys

    from fsar.data import prepare
    from fsar.engine.config import load_config
    from fsar.engine.data_setup import open_benchmark
    from fsar.procs import lock_folder

    def usage(message: str) -> int:
        print(f"fsar data prepare: error: {message}", file=sys.stderr)
        return 2

    cfg = load_config(args.config, args.overrides)
    if cfg.data.clip_store:
        return usage("data.clip_store is set: prepare reads the videos; drop the override")
    if args.workers < 0:
        return usage(f"--workers must be >= 0, got {args.workers}")
    if args.format == "frames" and (args.max_frames or args.shard_videos or args.retry_failed):
        return usage("--max-frames, --shard-videos and --retry-failed apply to --format store only")
    bench = open_benchmark(cfg.data)
    names = (
        [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else bench.available_splits
    )
    absent = [s for s in names if s not in bench.split_files]
    if absent or not names:
        return usage(f"no split file for {absent or names} in {bench.splits_dir}")
    progress = not args.no_progress
    with lock_folder(
        args.out, tag=None if args.part is None else args.part.tag
    ):  # one run (or part) per folder
        if args.format == "frames":
            report = prepare.prepare_frame_folders(
                bench,
                args.out,
                splits=names,
                quality=args.jpeg_quality,
                workers=args.workers,
                progress=progress,
                part=args.part,
            )
            use = f"data.root={args.out}"
        else:
            d = cfg.data
            report = prepare.prepare_clip_store(
                bench,
                args.out,
                splits=names,
                num_frames=d.num_frames,
                frame_sampler=d.frame_sampler,
                resize_short=d.resize_short,
                resize_to=d.resize_to,
                tracks=d.tracks,
                max_frames=args.max_frames or prepare.DEFAULT_MAX_FRAMES,
                shard_videos=args.shard_videos or prepare.DEFAULT_SHARD_VIDEOS,
                workers=args.workers,
                retry_failed=args.retry_failed,
                progress=progress,
                part=args.part,
            )
            use = f"data.clip_store={args.out}"
    print(f"fsar data prepare ({report.fmt}): {report.summary()}")
    if report.total:
        print(f"  {report.bytes / max(1, report.done):,.0f} bytes per video prepared now")
    if report.failed:
        for job, reason in report.failed[:20]:
            print(f"  FAILED {job.split} line {job.line} {job.entry}: {reason}", file=sys.stderr)
        if len(report.failed) > 20:
            print(f"  ... and {len(report.failed) - 20} more", file=sys.stderr)
        if args.part is None or report.merged:
            print(
                f"fsar data prepare: the list of failures is in {report.out / 'errors.txt'}", file=sys.stderr
            )
    if args.part is not None and not report.merged:
        print(
            "waiting for the other parts; the last to finish merges them (or run "
            f"`fsar data merge-parts {args.out}`)"
        )
        return 1 if report.failed else 0
    if args.part is not None:
        print(f"all {args.part.count} parts done, checked and merged")
    print(f"use it with {use}")
    return 1 if report.failed else 0
