"""``fsar demo``: synthesise the built-in benchmark, train each method briefly, evaluate on the test classes."""

from __future__ import annotations

import argparse

from fsar.cli.overrides import add_overrides

DEMO_METHODS = ("protonet", "otam", "ta2n", "tats")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="synthesise the built-in benchmark, train every method briefly and print a results table",
        description="End-to-end demo on the synthetic benchmark: `fsar synth`, then train and evaluate "
        "each method (5-way 1-shot) under the same budget, and print accuracy with 95%% intervals.",
    )
    p.add_argument("--out", default="runs/demo", help="output folder (synthetic data, runs, results.md)")
    p.add_argument(
        "--preset", default="default", choices=("default", "tiny"), help="synthetic dataset preset"
    )
    p.add_argument("--methods", default=",".join(DEMO_METHODS), help="comma-separated methods to run")
    p.add_argument("--tasks", type=int, default=None, help="training episodes per method (default: preset's)")
    p.add_argument("--episodes", type=int, default=None, help="test episodes per method (default: preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--clip-store",
        action="store_true",
        help="decode the videos once into a clip store (fsar data prepare) and train/evaluate from it",
    )
    add_overrides(p, "config overrides applied to every method, e.g. train.val_every=100")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fsar.engine.demo import run_demo

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    run_demo(
        args.out,
        preset=args.preset,
        methods=methods,
        tasks=args.tasks,
        episodes=args.episodes,
        seed=args.seed,
        overrides=list(args.overrides),
        clip_store=args.clip_store,
    )
    return 0
