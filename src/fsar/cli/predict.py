"""``fsar predict``: classify query clips from a folder of example clips per class.

With a checkpoint of ``fsar train``, or with no training at all: ``--backbone NAME --weights FILE --method
protonet|otam`` runs ProtoNet or OTAM on a frozen pretrained backbone (see ``fsar.engine.predict``).
"""

from __future__ import annotations

import argparse

from fsar.cli.overrides import add_overrides


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="classify query clips given a folder of example clips per class",
        description="Few-shot prediction. The support folder holds one sub-folder per class, each with the same "
        "number K of example clips (video files or frame folders). The model is a checkpoint of `fsar train`, or "
        "ProtoNet/OTAM on a frozen pretrained backbone (--backbone, --weights, --method; no training needed).",
    )
    p.add_argument("checkpoint", nargs="?", default=None, help="a checkpoint written by `fsar train`")
    p.add_argument("--support", required=True, help="folder <support>/<class>/<clip>")
    p.add_argument("--query", required=True, nargs="+", help="query clips (video files or frame folders)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="also write the predictions as JSON here")
    g = p.add_argument_group("without a checkpoint: a frozen pretrained backbone")
    g.add_argument(
        "--backbone", default=None, help="dinov2_vits14, dinov2_vitb14, dinov2_vitl14, resnet18/34/50"
    )
    g.add_argument(
        "--weights",
        default=None,
        help="local weights: an official DINOv2 hub .pth, a torchvision ResNet .pth, or a Hugging Face folder",
    )
    g.add_argument("--method", default="protonet", choices=("protonet", "otam"), help="default protonet")
    g.add_argument("--image-size", type=int, default=224, help="frame side fed to the backbone (default 224)")
    add_overrides(p, "config overrides, e.g. data.num_frames=16", absorb=("checkpoint", "query"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from fsar.engine.build import resolve_device
    from fsar.engine.predict import predict_clips, pretrained_config, pretrained_model
    from fsar.engine.trainer import model_from_checkpoint

    if (args.checkpoint is None) == (args.backbone is None):
        print(
            "fsar predict: error: give either a CHECKPOINT of `fsar train` or --backbone NAME --weights FILE",
            file=sys.stderr,
        )
        return 2
    if args.backbone is not None and not args.weights:
        print(
            f"fsar predict: error: --backbone {args.backbone} needs --weights FILE (local pretrained weights; fsar "
            "never downloads them, and random weights would give meaningless predictions)",
            file=sys.stderr,
        )
        return 2
    if not args.query:
        print("fsar predict: error: --query needs at least one clip", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    if args.checkpoint is not None:
        cfg, model, device = model_from_checkpoint(args.checkpoint, device, list(args.overrides))
    else:
        cfg = pretrained_config(
            args.backbone, args.weights, args.method, args.image_size, list(args.overrides)
        )
        model = pretrained_model(cfg, device)
    preds = predict_clips(cfg, model, args.support, args.query, device)
    for p in preds:
        ranked = sorted(p.scores.items(), key=lambda kv: -kv[1])
        scores = ", ".join(f"{k} {v:.3f}" for k, v in ranked)
        print(f"{p.query}: {p.label}  ({scores})")
    if args.json:
        Path(args.json).write_text(json.dumps([p.__dict__ for p in preds], indent=2))
    return 0
