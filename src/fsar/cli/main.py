"""The ``fsar`` command line.

Each sub-command lives in its own module of ``fsar.cli`` exposing ``register(subparsers)``, which adds an
argparse sub-parser and sets ``func=run`` on it, and ``run(args) -> int``. Heavy imports (torch, av, ...) happen
inside ``run`` so that ``fsar --help`` stays fast. Commands that take ``key=value`` config overrides declare them
with ``fsar.cli.overrides.add_overrides``; they are then accepted anywhere on the command line.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fsar import __version__
from fsar.cli.overrides import parse_command_line
from fsar.errors import FsarError

# Sub-command modules, in the order shown by --help. A module missing here is simply not offered.
COMMAND_MODULES = [
    "fsar.cli.synth",
    "fsar.cli.data",
    "fsar.cli.track",
    "fsar.cli.pretrain",
    "fsar.cli.train",
    "fsar.cli.evaluate",
    "fsar.cli.predict",
    "fsar.cli.extract",
    "fsar.cli.viz",
    "fsar.cli.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fsar",
        description="Few-shot action recognition: TA2N, TATs, baselines, data tools and evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"fsar {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_command_line(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from fsar.procs import tune_allocator

    tune_allocator()
    try:
        return int(args.func(args) or 0)
    except FsarError as exc:
        print(f"fsar {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
