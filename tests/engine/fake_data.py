"""In-memory clip sources for engine tests: no decoding, tiny tensors, class-dependent motion patterns."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

from fsar.engine.episode_data import LoadedVideo, SplitClips


@dataclass(frozen=True)
class FakeRecord:
    video_id: str
    class_name: str
    label: int


def fake_split(
    name: str,
    classes: int,
    videos: int,
    frames: int = 4,
    size: int | tuple[int, int] = 16,
    offset: int = 0,
    channels: int = 3,
    points: int = 0,
) -> SplitClips:
    """``classes`` x ``videos`` clips ``[frames, channels, H, W]``: a class pattern rolling at a class speed plus
    per-video noise, shifted by a random draw in training. ``points > 0`` adds point tracks (positions in
    [-1, 1], query mask and visibility) that also depend on the random draw."""
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    records = [
        FakeRecord(f"{name}_c{c}_v{v}", f"c{c + offset}", c) for c in range(classes) for v in range(videos)
    ]

    def load(record: FakeRecord, train: bool, rng: np.random.Generator) -> LoadedVideo:
        base = np.random.default_rng([record.label + offset, 7]).normal(size=(channels, height, width))
        own = np.random.default_rng([zlib.crc32(record.video_id.encode())]).normal(
            size=(frames, channels, height, width)
        )
        shift = int(rng.integers(0, 3)) if train else 1
        clip = np.stack(
            [np.roll(base, shift + t * (1 + (record.label + offset) % 3), axis=-1) for t in range(frames)]
        )
        short = record.video_id.endswith("_v0")  # pretend every class's first video was shorter than T
        video = LoadedVideo(frames=torch.as_tensor(clip + 0.5 * own, dtype=torch.float32), short=short)
        if points:
            start = rng.uniform(-0.8, 0.8, size=(1, points, 2)) if train else np.zeros((1, points, 2))
            steps = np.linspace(0, 0.1 * (1 + record.label % 3), frames)[:, None, None]
            video.tracks = torch.as_tensor(np.clip(start + steps, -1, 1), dtype=torch.float32)
            video.query_mask = torch.zeros(frames, points, dtype=torch.bool)
            video.query_mask[0] = True
            video.visibility = torch.ones(frames, points, dtype=torch.bool)
        return video

    return SplitClips(name=name, records=records, load_video=load)


def fake_clips(frames: int = 4) -> dict[str, SplitClips]:
    return {
        "train": fake_split("train", 8, 6, frames),
        "val": fake_split("val", 5, 4, frames, offset=100),
        "test": fake_split("test", 5, 4, frames, offset=200),
    }


def preset_clips(cfg, points: int = 8) -> dict[str, SplitClips]:
    """In-memory splits shaped as ``cfg`` loads clips (``data.num_frames``, the input channels of
    ``model.backbone_kwargs``, ``data.resize_to`` or ``data.crop``), with point tracks for every video, so that any
    registered method's preset trains on them without decoding."""
    d = cfg.data
    size = tuple(d.resize_to) if d.resize_to else (d.crop, d.crop)
    channels = int(cfg.model.backbone_kwargs.get("in_channels", 6 if d.modality == "rgb_diff" else 3))
    shape = dict(frames=d.num_frames, size=size, channels=channels, points=points)
    return {
        "train": fake_split("train", 8, 6, **shape),
        "val": fake_split("val", 5, 4, offset=100, **shape),
        "test": fake_split("test", 5, 4, offset=200, **shape),
    }
