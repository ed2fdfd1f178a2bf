"""``fsar data check``: list the missing, unreadable and too-short videos of a benchmark's splits.
(``fsar data prepare`` lives in ``fsar.cli.data_prepare``.)

Exit status 0 when every listed video is present and readable, 1 otherwise (2 for a usage error).
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "data",
        help="dataset tools (data check, data prepare, data merge-parts)",
        description="Dataset tools.",
    )
    sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    p.set_defaults(func=run, data_parser=p)
    c = sub.add_parser(
        "check",
        help="check a benchmark's videos against its split files",
        description="Resolve every split entry of a benchmark under the videos root and report, per split, the "
        "class and video counts and the full lists of missing, unreadable and shorter-than-T videos.",
    )
    c.add_argument(
        "--benchmark",
        required=True,
        help="ssv2_full, ssv2_small, kinetics100, ucf101, hmdb51 or synthetic",
    )
    c.add_argument(
        "--root",
        required=True,
        help="videos root (for synthetic without --splits: the `fsar synth --out` folder)",
    )
    c.add_argument(
        "--splits", default=None, help="folder holding trainlistNN.txt / vallistNN.txt / testlistNN.txt"
    )
    c.add_argument("--split-id", default=None, help="NN of the split files when the folder holds several ids")
    c.add_argument(
        "--frames", type=int, default=8, help="clip length T; shorter videos are listed (default 8)"
    )
    c.add_argument(
        "--only",
        default="train,val,test",
        help="comma-separated splits to check (default train,val,test)",
    )
    depth = c.add_mutually_exclusive_group()
    depth.add_argument("--no-decode", action="store_true", help="only check that the videos exist (fast)")
    depth.add_argument(
        "--full",
        action="store_true",
        help="read every frame of every video: corrupt or truncated frames anywhere are listed (slow; use --workers)",
    )
    c.add_argument("--workers", type=int, default=1, help="threads decoding videos in parallel (default 1)")
    c.add_argument("--json", default=None, metavar="OUT", help="also write the report as JSON to OUT")
    c.set_defaults(func=run_check)
    from fsar.cli.data_prepare import register_prepare
    from fsar.cli.merge_parts import register_merge

    register_prepare(sub)
    register_merge(sub)


def run(args: argparse.Namespace) -> int:
    args.data_parser.print_help()
    return 2


def run_check(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from fsar.data.benchmarks import BENCHMARKS, load_benchmark
    from fsar.data.check import check_benchmark

    if args.benchmark not in BENCHMARKS:
        print(
            f"fsar data check: error: unknown benchmark {args.benchmark!r}; choose one of "
            f"{', '.join(BENCHMARKS.names())}",
            file=sys.stderr,
        )
        return 2
    root = Path(args.root)
    splits = Path(args.splits) if args.splits else None
    if splits is None:
        if args.benchmark != "synthetic":
            print("fsar data check: error: --splits is required for this benchmark", file=sys.stderr)
            return 2
        root, splits = root / "videos", root / "splits"
    names = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in names if s not in ("train", "val", "test")]
    if bad or not names:
        print(
            f"fsar data check: error: --only takes train, val and/or test, got {args.only!r}", file=sys.stderr
        )
        return 2
    if args.frames < 1:
        print(f"fsar data check: error: --frames must be >= 1, got {args.frames}", file=sys.stderr)
        return 2
    bench = load_benchmark(args.benchmark, root=root, splits_dir=splits, split_id=args.split_id)
    report = check_benchmark(
        bench,
        num_frames=args.frames,
        splits=names,
        decode=not args.no_decode,
        workers=args.workers,
        full=args.full,
        progress=True,
    )
    print(report.format())
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.to_json() + "\n", encoding="utf-8")
        print(f"JSON report: {out}")
    return 0 if report.ok else 1
