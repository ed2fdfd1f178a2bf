"""In-memory clip sources for engine tests: no decoding, tiny tensors, class-dependent motion patterns."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fsar.data.clips import ClipLoader
from fsar.data.randaugment import RandAugment
from fsar.data.sampling import build_frame_sampler
from fsar.data.sources import PixelClips
from fsar.data.transforms import ClipTransform
from fsar.data.video import Video
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


class ArrayVideo(Video):
    """An in-memory uint8 video ``[N, H, W, 3]`` (no decoding)."""

    def __init__(self, path: str, data: np.ndarray) -> None:
        self.path, self._data = Path(path), data

    @property
    def num_frames(self) -> int:
        return int(self._data.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self._data.shape[1]), int(self._data.shape[2])

    @property
    def fps(self) -> float | None:
        return None

    def frames(self, indices) -> np.ndarray:
        return self._data[np.asarray(indices, dtype=np.int64)]

    def verify(self) -> int:
        return self.num_frames


@dataclass(frozen=True)
class PixelRecord:
    video_id: str
    class_name: str
    label: int
    path: str


def pixel_split(
    name: str,
    classes: int,
    videos: int,
    frames: int = 4,
    offset: int = 0,
    transform: dict | None = None,
    rand_augment: bool = True,
) -> SplitClips:
    """``classes`` x ``videos`` in-memory uint8 videos (6 to 9 frames of 24x28 or 28x24) read through the real
    pixel pipeline (``ClipLoader`` -> ``PixelClips``: frame sampling, RandAugment, resize, crop, flip, normalisation),
    so that ``data.augment_on`` both ways can be compared without decoding."""
    tf = dict(resize_short=20, crop=16, flip=True, normalization="imagenet", **(transform or {}))
    data: dict[str, np.ndarray] = {}
    records = []
    for c in range(classes):
        for v in range(videos):
            rng = np.random.default_rng([c + offset, v, 11])
            hw = (24, 28) if (c + v) % 3 else (28, 24)
            base = rng.integers(0, 200, size=(1, *hw, 3))
            motion = np.arange(6 + v % 4)[:, None, None, None] * (3 + (c + offset) % 4)
            rec = PixelRecord(f"{name}_c{c}_v{v}", f"c{c + offset}", c, f"mem/{name}/{c}/{v}")
            data[rec.path] = np.clip(
                base + motion + rng.integers(0, 40, size=(6 + v % 4, *hw, 3)), 0, 255
            ).astype(np.uint8)
            records.append(rec)
    loader = ClipLoader(
        frames,
        build_frame_sampler("ta2n"),
        ClipTransform(train=True, **tf),
        ClipTransform(train=False, **{**tf, "flip": False}),
        train_augment=RandAugment() if rand_augment else None,
        video_source=lambda record: ArrayVideo(record.path, data[record.path]),
    )
    source = PixelClips(loader)
    return SplitClips(name=name, records=records, load_video=source.load, plan_video=source.plan)


def pixel_clips(frames: int = 4, **kw) -> dict[str, SplitClips]:
    return {
        "train": pixel_split("train", 8, 6, frames, **kw),
        "val": pixel_split("val", 5, 4, frames, offset=100, **kw),
        "test": pixel_split("test", 5, 4, frames, offset=200, **kw),
    }
