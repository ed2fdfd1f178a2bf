"""``fsar synth``: render the synthetic few-shot action benchmark (``fsar.data.synthetic``) into a folder."""

from __future__ import annotations

import argparse


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


_OPTION_OF_FIELD = {
    "height": "--size",
    "width": "--size",
    "num_frames": "--frames",
    "videos_per_class": "--videos-per-class",
    "split_counts": "--classes",
    "num_classes": "--classes",
    "min_primitives": "--classes",
}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth",
        help="render the synthetic few-shot action benchmark (no download needed)",
        description="Render the synthetic benchmark: classes are ordered sequences of motion primitives (many "
        "with a reversed-order twin), videos as mp4 with ground-truth actor trajectories and ARN split files. "
        "Deterministic from --seed; re-running with the same settings resumes.",
    )
    p.add_argument("--out", required=True, help="output folder (videos/, splits/, trajectories/, meta.json)")
    p.add_argument(
        "--preset", default="default", choices=("default", "cluttered", "tiny"), help="starting parameters"
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the preset's, 0)")
    p.add_argument(
        "--classes",
        type=_positive,
        default=None,
        help="number of classes, split train/val/test in the preset's ratio (default 100 = 64/12/24)",
    )
    p.add_argument("--videos-per-class", type=_positive, default=None, help="videos per class (default 20)")
    p.add_argument("--frames", type=_positive, default=None, help="frames per video (default 32)")
    p.add_argument("--size", type=_positive, default=None, help="frame height and width, even (default 112)")
    p.add_argument("--workers", type=_positive, default=None, help="processes (default: all CPU cores)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier synthetic benchmark with other settings in --out",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """The ``SynthConfig`` the command line asks for; a bad value raises ``ConfigError`` naming the option."""
    import dataclasses

    from fsar.data.synthetic import SynthConfig
    from fsar.errors import ConfigError

    try:
        config = SynthConfig.preset(args.preset)
        if args.classes is not None:
            config = config.with_num_classes(args.classes)
        changes = {}
        if args.seed is not None:
            changes["seed"] = args.seed
        if args.videos_per_class is not None:
            changes["videos_per_class"] = args.videos_per_class
        if args.frames is not None:
            changes["num_frames"] = args.frames
        if args.size is not None:
            changes["height"] = changes["width"] = args.size
        return dataclasses.replace(config, **changes) if changes else config
    except ValueError as exc:
        text = str(exc)
        options = [opt for key, opt in _OPTION_OF_FIELD.items() if f"SynthConfig.{key}" in text]
        where = f" (option {options[0]})" if options else ""
        raise ConfigError(f"invalid synth options{where}: {text}") from None


def run(args: argparse.Namespace) -> int:
    from fsar.data.synthetic import generate_synthetic
    from fsar.procs import lock_folder

    config = config_from_args(args)
    with lock_folder(args.out):
        summary = generate_synthetic(
            args.out, config, workers=args.workers, progress=not args.quiet, overwrite=args.overwrite
        )
    print(summary.format())
    if min(summary.classes_per_split.values()) < 5:
        print("note: a split has fewer than 5 classes, too few for 5-way episodes")
    return 0
