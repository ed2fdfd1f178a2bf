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
    name: str, classes: int, videos: int, frames: int = 4, size: int = 16, offset: int = 0
) -> SplitClips:
    records = [
        FakeRecord(f"{name}_c{c}_v{v}", f"c{c + offset}", c) for c in range(classes) for v in range(videos)
    ]

    def load(record: FakeRecord, train: bool, rng: np.random.Generator) -> LoadedVideo:
        base = np.random.default_rng([record.label + offset, 7]).normal(size=(3, size, size))
        own = np.random.default_rng([zlib.crc32(record.video_id.encode())]).normal(
            size=(frames, 3, size, size)
        )
        shift = int(rng.integers(0, 3)) if train else 1
        clip = np.stack(
            [np.roll(base, shift + t * (1 + (record.label + offset) % 3), axis=-1) for t in range(frames)]
        )
        short = record.video_id.endswith("_v0")  # pretend every class's first video was shorter than T
        return LoadedVideo(frames=torch.as_tensor(clip + 0.5 * own, dtype=torch.float32), short=short)

    return SplitClips(name=name, records=records, load_video=load)


def fake_clips(frames: int = 4) -> dict[str, SplitClips]:
    return {
        "train": fake_split("train", 8, 6, frames),
        "val": fake_split("val", 5, 4, frames, offset=100),
        "test": fake_split("test", 5, 4, frames, offset=200),
    }
