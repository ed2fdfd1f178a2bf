"""``fsar predict``: classify query clips from a folder of example clips per class."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="classify query clips given a folder of example clips per class",
        description="Few-shot prediction with a trained checkpoint. The support folder holds one sub-folder per "
        "class, each with the same number K of example clips (video files or frame folders).",
    )
    p.add_argument("checkpoint", help="a checkpoint written by `fsar train`")
    p.add_argument("--support", required=True, help="folder <support>/<class>/<clip>")
    p.add_argument("--query", required=True, nargs="+", help="query clips (video files or frame folders)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="also write the predictions as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from fsar.engine.build import resolve_device
    from fsar.engine.predict import predict_clips
    from fsar.engine.trainer import model_from_checkpoint

    device = resolve_device(args.device)
    cfg, model, device = model_from_checkpoint(args.checkpoint, device)
    preds = predict_clips(cfg, model, args.support, args.query, device)
    for p in preds:
        ranked = sorted(p.scores.items(), key=lambda kv: -kv[1])
        scores = ", ".join(f"{k} {v:.3f}" for k, v in ranked)
        print(f"{p.query}: {p.label}  ({scores})")
    if args.json:
        Path(args.json).write_text(json.dumps([p.__dict__ for p in preds], indent=2))
    return 0
