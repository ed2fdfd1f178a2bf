"""``fsar pretrain CONFIG [key=value ...] --out DIR [--force]``: supervised base-class pretraining of the backbone.

Trains ``model.backbone`` with an order-aware head to classify the train split's classes (``pretrain`` section of the
config; see ``fsar.engine.pretrain``) and writes ``DIR/backbone.safetensors``, to start any few-shot method from
with ``model.backbone_weights=DIR/backbone.safetensors``.
"""

from __future__ import annotations

import argparse

from fsar.cli.overrides import add_overrides


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pretrain",
        help="pretrain the backbone by classifying the train split's classes (then train with its weights)",
        description="Supervised pretraining of the config's backbone on its train split's classes, with a head that "
        "sees frame order. Writes DIR/backbone.safetensors (use it with model.backbone_weights=...), "
        "DIR/head.safetensors, DIR/pretrain.json, DIR/pretrain_log.csv and DIR/config.yaml. A folder that "
        "already holds a finished pretrain with the same config is reused.",
    )
    p.add_argument("config", help="YAML config file or preset name (e.g. demo_pretrain)")
    add_overrides(p, "key=value overrides anywhere on the line, e.g. pretrain.epochs=5 data.root=DIR")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="pretrain again even if DIR holds a finished result")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fsar.engine.config import load_config
    from fsar.engine.pretrain import BACKBONE_FILE, pretrain_backbone
    from fsar.procs import lock_folder

    cfg = load_config(args.config, args.overrides)
    out = Path(args.out)
    with lock_folder(out):  # one pretraining per folder (see fsar.procs)
        pretrain_backbone(cfg, out, force=args.force)
    weights = (out / BACKBONE_FILE).resolve()
    print(f"backbone weights: {weights}")
    print(f"train from them with the override: model.backbone_weights={weights}")
    return 0
