"""Classify your own clips: a folder of example clips per class (the support set) and query clips."""

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
        video = open_video(path)
        idx = sampler(video.num_frames, cfg.data.num_frames, False, np.random.default_rng(0))
        return apply_modality(transform(video.frames(idx), np.random.default_rng(0)), cfg.data.modality)

    def batch(paths: list[Path], labels: list[int]) -> ClipBatch:
        frames = torch.stack([load(p) for p in paths])
        lab = torch.as_tensor(labels, dtype=torch.long)
        return ClipBatch(
            frames=frames,
            labels=lab,
            global_labels=torch.full_like(lab, -1),
            video_ids=[str(p) for p in paths],
        )

    s_paths = [p for _, clips in classes for p in clips]
    s_labels = [c for c, (_, clips) in enumerate(classes) for _ in clips]
    q_paths = [Path(q) for q in queries]
    for q in q_paths:
        if not q.exists():
            raise FsarError(f"{q}: query clip not found")
    model.eval()
    with torch.no_grad():
        support = batch(s_paths, s_labels).to(device)
        query = batch(q_paths, [0] * len(q_paths)).to(device)
        logits = model.episode_logits(model.encode(support), support.labels, model.encode(query))
        probs = logits.float().softmax(dim=-1).cpu()
    names = [name for name, _ in classes]
    out = []
    for q, p in zip(q_paths, probs):
        out.append(Prediction(str(q), names[int(p.argmax())], {n: float(v) for n, v in zip(names, p)}))
    return out
