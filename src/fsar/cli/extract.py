"""``fsar extract-features``: run a frozen backbone once over a benchmark and write a feature cache."""

from __future__ import annotations

import argparse

from fsar.cli.overrides import add_overrides
from fsar.parts import PART_HELP, part_argument


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "extract-features",
        help="cache a frozen backbone's features for a benchmark (then train/eval with data.feature_cache=DIR)",
        description="Run the config's (frozen) backbone over every video of the chosen splits with test-mode "
        "clips and write sharded safetensors plus an index keyed by the data pipeline and the backbone's weights.",
    )
    p.add_argument("config", help="YAML config or preset name")
    add_overrides(p, "key=value overrides, e.g. data.root=DIR")
    p.add_argument("--out", required=True, help="cache folder")
    p.add_argument("--splits", default="train,val,test", help="comma-separated splits")
    p.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-videos", type=int, default=16)
    p.add_argument("--shard-videos", type=int, default=1024, help="videos per shard file (1024)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--part", type=part_argument, default=None, metavar="I/N", help=PART_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from fsar.engine.build import build_backbone, resolve_device
    from fsar.engine.config import load_config
    from fsar.engine.data_setup import build_split_clips
    from fsar.engine.feature_cache import DTYPES, cache_summary, extract_features
    from fsar.procs import lock_folder

    cfg = load_config(args.config, args.overrides)
    names = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    clips = build_split_clips(cfg.data, names)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)  # the same (random-init) weights as a run with this config
        backbone = build_backbone(cfg.model)
    with lock_folder(
        args.out, tag=None if args.part is None else args.part.tag
    ):  # one run (or part) per folder
        index = extract_features(
            cfg,
            backbone,
            clips,
            {n: c.source for n, c in clips.items()},
            args.out,
            resolve_device(args.device),
            dtype=args.dtype,
            batch_videos=args.batch_videos,
            shard_videos=args.shard_videos,
            progress=not args.no_progress,
            part=args.part,
        )
        if index is None:
            print(
                f"feature cache: part {args.part} done; waiting for the other parts, the last to finish merges them "
                f"(or run `fsar data merge-parts {args.out}`)"
            )
            return 0
        if args.part is not None:
            print(f"feature cache: all {args.part.count} parts done, checked and merged")
    size = torch.empty((), dtype=DTYPES[args.dtype]).element_size()
    for name, s in cache_summary(index, size).items():
        print(
            f"{name}: {s['videos']} videos, features {s['shape']} {args.dtype}, {s['bytes_per_video']:,} bytes per video"
        )
    print(f"feature cache: {args.out} (use data.feature_cache={args.out})")
    return 0
