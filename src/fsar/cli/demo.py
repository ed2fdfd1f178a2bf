"""``fsar demo``: synthesise the built-in benchmark, pretrain a backbone, train each method briefly from it and
evaluate on the test classes (standard, twin-query and order-episode accuracy)."""

from __future__ import annotations

import argparse

from fsar.cli.overrides import add_overrides
from fsar.engine.demo import DEMO_METHODS, EXTENDED_DEMO_METHODS  # a light module: no torch at import


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="synthesise the built-in benchmark, train every method briefly and print a results table",
        description="End-to-end demo on the synthetic benchmark: `fsar synth`, point tracks (for TATs), a clip "
        "store, base-class pretraining of the backbone (`fsar pretrain`), then every method trained from the "
        "pretrained backbone under the same budget and evaluated 5-way 1-shot: standard accuracy, accuracy on "
        "twin queries (the reversed-order twin class is in the episode) and on order episodes, with 95%% "
        "intervals, and two figures (results.png, validation.png). Steps already done in --out are reused.",
    )
    p.add_argument("--out", default="runs/demo", help="output folder (synthetic data, runs, results.md)")
    p.add_argument(
        "--preset", default="default", choices=("default", "tiny"), help="synthetic dataset preset"
    )
    p.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated methods to run (default: {','.join(DEMO_METHODS)})",
    )
    p.add_argument(
        "--extended",
        action="store_true",
        help="also run the methods too slow for the five-minute demo"
        + (f" ({','.join(EXTENDED_DEMO_METHODS)})" if EXTENDED_DEMO_METHODS else " (none yet)")
        + "; ignored with --methods",
    )
    p.add_argument("--tasks", type=int, default=None, help="training episodes per method (default: preset's)")
    p.add_argument("--episodes", type=int, default=None, help="test episodes per method (default: preset's)")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="methods trained at once, each in its own process with one torch thread (default 1: one after "
        "another, each with all threads)",
    )
    p.add_argument("--seed", type=int, default=0, help="training seed of every method")
    p.add_argument(
        "--synth-seed", type=int, default=0, help="seed of the synthetic benchmark (new classes and videos)"
    )
    p.add_argument(
        "--no-clip-store",
        action="store_true",
        help="decode videos while training instead of reading a clip store (slower; same numbers)",
    )
    p.add_argument(
        "--no-pretrain",
        action="store_true",
        help="train every method from a random backbone (nothing learns)",
    )
    add_overrides(p, "config overrides applied to every method, e.g. train.val_every=100")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fsar.engine.demo import run_demo
    from fsar.procs import lock_folder

    methods = [m.strip() for m in (args.methods or "").split(",") if m.strip()] or None
    with lock_folder(args.out):  # one demo per folder; its steps lock their own sub-folders
        run_demo(
            args.out,
            preset=args.preset,
            methods=methods,
            tasks=args.tasks,
            episodes=args.episodes,
            seed=args.seed,
            synth_seed=args.synth_seed,
            overrides=list(args.overrides),
            clip_store=not args.no_clip_store,
            pretrain=not args.no_pretrain,
            extended=args.extended,
            jobs=args.jobs,
        )
    return 0
