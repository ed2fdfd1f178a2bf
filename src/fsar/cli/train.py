"""``fsar train CONFIG [key=value ...]``: episodic training with validation-based model selection.

Distributed: ``torchrun --nproc_per_node=N -m fsar train CONFIG ...`` or, equivalently, ``fsar train --nproc N``.
"""

from __future__ import annotations

import argparse

from fsar.cli.overrides import add_overrides


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a few-shot method from a YAML config (or preset name)",
        description="Train a method episodically. Overrides use dotted keys: train.tasks=2000 episodes.shot=5. "
        "A run folder that holds last.pt is resumed exactly where it stopped (use --no-resume to refuse).",
    )
    p.add_argument("config", help="YAML config file or preset name (see configs/)")
    add_overrides(p, "key=value overrides anywhere on the line, e.g. train.tasks=100 data.root=DIR")
    p.add_argument("--out", default=None, help="run folder (default runs/<config name>)")
    p.add_argument("--nproc", type=int, default=1, help="processes (GPUs) on this machine; launches torchrun")
    p.add_argument("--no-resume", action="store_true", help="fail instead of resuming when last.pt exists")
    p.add_argument(
        "--allow-config-change",
        action="store_true",
        help="resume even though keys other than the resumable ones (train.tasks, eval.*, devices, workers, "
        "logging) differ from the run's config.yaml; the changes are recorded in config_history.jsonl and "
        "results.json",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from fsar.engine.config import load_config
    from fsar.engine.distributed import init_distributed, launched_by_torchrun, shutdown
    from fsar.engine.trainer import Trainer, check_launch
    from fsar.errors import FsarError
    from fsar.procs import die_with_parent, parent_death_preexec

    cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    if not launched_by_torchrun():
        check_launch(cfg, args.nproc)  # one clear error here, not one per rank under torchrun's traceback
    if args.nproc > 1 and not launched_by_torchrun():
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={args.nproc}",
        ]
        cmd += ["-m", "fsar", "train", args.config, *args.overrides, "--out", str(out)]
        if args.no_resume:
            cmd.append("--no-resume")
        if args.allow_config_change:
            cmd.append("--allow-config-change")
        # torchrun gets SIGTERM if this process dies, and stops its ranks (fsar.procs)
        return subprocess.call(cmd, preexec_fn=parent_death_preexec(os.getpid()))
    if args.no_resume and (out / "last.pt").exists():
        raise FsarError(
            f"{out}: holds last.pt from an earlier run; remove --no-resume to resume it or use --out"
        )
    if launched_by_torchrun():
        die_with_parent(os.getppid(), signal.SIGTERM)  # a rank ends with its torchrun agent
    ctx, device = init_distributed(cfg.train.device)
    try:
        trainer = Trainer(
            cfg,
            out,
            ctx=ctx,
            device=device,
            resume=not args.no_resume,
            allow_config_change=args.allow_config_change,
        )
        trainer.fit()
    finally:
        shutdown(ctx)
    if ctx.is_main:
        print(f"run folder: {out}")
    return 0
