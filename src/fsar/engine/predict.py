"""Classify your own clips: a folder of example clips per class (the support set) and query clips.

The model comes from a checkpoint of ``fsar train`` (``model_from_checkpoint``) or, with no training at all, from
a frozen pretrained backbone (``pretrained_model``): ProtoNet (Snell et al., NeurIPS 2017) and OTAM (Cao et al.,
CVPR 2020) compare query and support features with a fixed metric (cosine to the class mean; ordered temporal
alignment of frame cosines) and have no parameters that must be learned, so a good frozen backbone such as
DINOv2 (Oquab et al., TMLR 2024) or an ImageNet ResNet-50 is enough to use them. TA2N and TATs need a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fsar.data.batch import ClipBatch
from fsar.errors import FsarError

VIDEO_SUFFIXES = {".mp4", ".webm", ".mkv", ".avi", ".mov"}


@dataclass
class Prediction:
    query: str
    label: str
    scores: dict[str, float]  # softmax over the support classes


TRAINING_FREE_METHODS = ("protonet", "otam")


def pretrained_config(
    backbone: str,
    weights: str,
    method: str = "protonet",
    image_size: int = 224,
    overrides: list[str] | None = None,
):
    """The ``Config`` of a training-free model: ``method`` on the frozen ``backbone`` loaded from ``weights``.

    Clips: 8 uniformly sampled frames, short side resized to ``image_size * 256 / 224``, centre crop
    ``image_size``, the backbone's normalisation (ImageNet statistics for DINOv2 and ResNet). ``overrides``
    (``data.num_frames=16`` ...) apply on top."""
    from fsar.backbones import BACKBONES
    from fsar.engine.config import apply_overrides, config_from_dict
    from fsar.errors import ConfigError

    if method not in TRAINING_FREE_METHODS:
        raise ConfigError(
            f"--method {method}: only {' and '.join(TRAINING_FREE_METHODS)} work without training; {method} has "
            "parameters that must be learned (train it with `fsar train` and pass the checkpoint instead)"
        )
    if backbone not in BACKBONES:
        raise ConfigError(
            f"--backbone {backbone}: unknown backbone; available: {', '.join(BACKBONES.names())}"
        )
    if backbone == "small_cnn":
        raise ConfigError(
            "--backbone small_cnn has no pretrained weights; use a dinov2_vit*14 or resnet* backbone"
        )
    if int(image_size) < 1:
        raise ConfigError(f"--image-size must be >= 1, got {image_size}")
    kwargs: dict = {"frozen": True}
    if backbone.startswith("dinov2"):
        kwargs["image_size"] = int(image_size)  # position embeddings resized once, as the official model does
    raw = {
        "name": f"pretrained_{backbone}_{method}",
        "data": {
            "benchmark": "synthetic",
            "num_frames": 8,
            "frame_sampler": "uniform",
            "resize_short": round(int(image_size) * 256 / 224),
            "crop": int(image_size),
            "normalization": "imagenet",
        },
        "model": {
            "name": method,
            "backbone": backbone,
            "backbone_weights": str(weights) if weights else None,
            "require_weights": True,
            "backbone_kwargs": kwargs,
        },
        "train": {"device": "cpu"},
    }
    source = f"--backbone {backbone} --method {method}"
    if overrides:
        raw = apply_overrides(raw, list(overrides))
        source += " + overrides"
    cfg = config_from_dict(raw, source=source)
    if cfg.model.name not in TRAINING_FREE_METHODS:
        raise ConfigError(f"{source}: model.name must stay one of {', '.join(TRAINING_FREE_METHODS)}")
    return cfg


def pretrained_model(cfg, device: torch.device):
    """Build the training-free model of ``pretrained_config`` (backbone weights loaded strictly), in eval mode."""
    from fsar.engine.build import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(
            0
        )  # nothing is left random (every backbone weight is loaded), but stay reproducible
        model = build_model(cfg, num_train_classes=1)
    return model.to(device).eval()


def list_support(support_dir: Path) -> list[tuple[str, list[Path]]]:
    """``support_dir/<class>/<clip>`` (video files or frame folders), classes sorted by name."""
    if not support_dir.is_dir():
        raise FsarError(f"{support_dir}: support folder not found (expected <support>/<class>/<clip>)")
    classes = []
    for cls in sorted(p for p in support_dir.iterdir() if p.is_dir()):
        clips = sorted(p for p in cls.iterdir() if p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES)
        if not clips:
            raise FsarError(f"{cls}: class folder has no video files or frame folders")
        classes.append((cls.name, clips))
    if len(classes) < 2:
        raise FsarError(f"{support_dir}: need at least 2 class folders, found {len(classes)}")
    shots = {name: len(clips) for name, clips in classes}
    if len(set(shots.values())) != 1:
        raise FsarError(
            f"{support_dir}: every class needs the same number of example clips (the methods are K-shot); "
            f"found {shots}. Add or remove clips so the counts match."
        )
    return classes


def predict_clips(
    cfg, model, support_dir: str | Path, queries: list[str | Path], device: torch.device
) -> list[Prediction]:
    from fsar.data.modality import apply_modality
    from fsar.data.sampling import build_frame_sampler
    from fsar.data.video import open_video
    from fsar.engine.data_setup import make_transforms

    classes = list_support(Path(support_dir))
    sampler = build_frame_sampler(cfg.data.frame_sampler)
    _, transform = make_transforms(cfg.data, flip_allowed=False)
    if getattr(model, "needs_tracks", False):
        raise FsarError(
            f"{cfg.model.name}: prediction needs point tracks; run `fsar track` and use `fsar eval`"
        )

    def load(path: Path) -> torch.Tensor:
        _, frames, _ = open_video(path).sample(
            lambda n: sampler(n, cfg.data.num_frames, False, np.random.default_rng(0))
        )
        return apply_modality(transform(frames, np.random.default_rng(0)), cfg.data.modality)

    def batch(paths: list[Path], labels: list[int], class_names: list[str] | None = None) -> ClipBatch:
        frames = torch.stack([load(p) for p in paths])
        lab = torch.as_tensor(labels, dtype=torch.long)
        return ClipBatch(
            frames=frames,
            labels=lab,
            global_labels=torch.full_like(lab, -1),
            video_ids=[str(p) for p in paths],
            class_names=class_names or [],
        )

    s_paths = [p for _, clips in classes for p in clips]
    s_labels = [c for c, (_, clips) in enumerate(classes) for _ in clips]
    q_paths = [Path(q) for q in queries]
    for q in q_paths:
        if not q.exists():
            raise FsarError(f"{q}: query clip not found")
    model.eval()
    with torch.no_grad():
        support = batch(s_paths, s_labels, [classes[c][0] for c in s_labels]).to(device)  # folder names
        query = batch(q_paths, [0] * len(q_paths)).to(device)
        logits = model.episode_logits(model.encode(support), support.labels, model.encode(query))
        probs = logits.float().softmax(dim=-1).cpu()
    names = [name for name, _ in classes]
    out = []
    for q, p in zip(q_paths, probs):
        out.append(Prediction(str(q), names[int(p.argmax())], {n: float(v) for n, v in zip(names, p)}))
    return out
