"""Turning episodes into clip batches: the data side of training and evaluation.

``SplitClips`` binds a split's video records to a clip source of ``fsar.data.sources`` (``LoadedVideo`` lives
there too). ``EpisodeDataset`` is a ``torch.utils.data.Dataset`` whose item ``i`` is the support and query
``ClipBatch`` of an episode; the random
choices made while loading a clip (frame jitter, RandAugment, crop, flip) come from a generator seeded with
``(seed, episode index, position in the episode)``, so the same config and seed give the same tensors whatever the
number of workers.

Where augmentation runs (``data.augment_on``): ``loader`` (default) transforms each clip in the loader, which ships
float ``ClipBatch`` es; ``device`` makes the loader only read the clips and draw their random choices, and ship uint8
clips with their plans (``fsar.data.augment.RawClipBatch``, pinned for a CUDA device); :func:`to_device` copies a
batch to the model's device (non-blocking) and carries the plans out there, batched over the episode.

The loaders never draw from torch's global generator: a DataLoader draws its workers' base seed when its iterator
is created, and drawing it from the global generator would shift every later dropout mask of a resumed run (the
resumed run creates its loader after restoring the saved RNG state, the uninterrupted run did so at the start).
:func:`episode_loader` gives every loader its own ``torch.Generator`` seeded from ``(seed, rank, position in the
run)``, and the workers are seeded from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fsar.data.augment import AUGMENT_PLACES, RawClipBatch, augmented
from fsar.data.batch import ClipBatch
from fsar.data.episodes import Episode
from fsar.data.sources import LoadedVideo
from fsar.procs import loader_worker_init

__all__ = [
    "EpisodeDataset",
    "LoadedVideo",
    "SplitClips",
    "episode_loader",
    "loader_generator",
    "pin_memory_for",
    "stack_videos",
    "to_device",
    "video_rng",
]


@dataclass
class SplitClips:
    """The videos of one split and how to load a clip from each.

    ``load_video(record, train, rng) -> LoadedVideo`` does the work; ``records[i].label`` is the split class label.
    ``plan_video`` (same arguments) gives the uint8 frames and their augmentation plan instead (pixel sources only;
    ``None`` where the clips cannot be augmented elsewhere, e.g. cached features).
    """

    name: str
    records: Sequence  # fsar.data.benchmarks.VideoRecord
    load_video: Callable[[object, bool, np.random.Generator], LoadedVideo]
    skipped: list = field(default_factory=list)  # records left out because their video is missing
    source: Path | None = None  # the split file the records come from
    twins: dict[int, int] = field(default_factory=dict)  # split label -> reversed-order twin's label
    classes: list[str] | None = (
        None  # the split's class names by label (SplitData.classes); None: from records
    )
    plan_video: Callable[[object, bool, np.random.Generator], LoadedVideo] | None = None

    @property
    def labels(self) -> list[int]:
        return [int(r.label) for r in self.records]

    @property
    def num_classes(self) -> int:
        return len({int(r.label) for r in self.records})

    @property
    def class_names(self) -> list[str]:
        """The split's class names, indexed by split label: ``classes`` when given, else read off the records
        (then every label from 0 to the largest must have a record)."""
        if self.classes is not None:
            return list(self.classes)
        names: dict[int, str] = {}
        for r in self.records:
            if names.setdefault(int(r.label), r.class_name) != r.class_name:
                raise ValueError(f"split {self.name!r}: label {r.label} has two class names")
        if sorted(names) != list(range(len(names))):
            raise ValueError(
                f"split {self.name!r}: labels {sorted(names)} are not 0..n-1, so the class names cannot be listed "
                "by label; pass SplitClips(classes=...)"
            )
        return [names[i] for i in range(len(names))]

    def batch(
        self,
        indices: Sequence[int],
        labels: Sequence[int],
        train: bool,
        rngs: Sequence[np.random.Generator],
        planned: bool = False,
    ) -> ClipBatch | RawClipBatch:
        """Load the clips of ``indices`` into one ClipBatch with episode labels ``labels``; ``planned``: a
        ``RawClipBatch`` of uint8 clips and their plans (the same random choices), augmented later."""
        if planned and self.plan_video is None:
            raise ValueError(
                f"split {self.name!r}: these clips cannot be augmented on the device (no pixel source, e.g. cached "
                "features); use data.augment_on=loader"
            )
        load = self.plan_video if planned else self.load_video
        videos = [load(self.records[i], train, rng) for i, rng in zip(indices, rngs)]
        return stack_videos(
            videos,
            labels=labels,
            global_labels=[int(self.records[i].label) for i in indices],
            video_ids=[str(self.records[i].video_id) for i in indices],
            class_names=[str(self.records[i].class_name) for i in indices],
        )


def stack_videos(
    videos: Sequence[LoadedVideo],
    labels: Sequence[int],
    global_labels: Sequence[int],
    video_ids: list[str],
    class_names: Sequence[str] = (),
) -> ClipBatch:
    def stack(name: str) -> torch.Tensor | None:
        values = [getattr(v, name) for v in videos]
        if all(x is None for x in values):
            return None
        if any(x is None for x in values):
            missing = [vid for vid, x in zip(video_ids, values) if x is None]
            raise ValueError(f"{name} missing for videos {missing}")
        return torch.stack(values)

    plans = [v.plan for v in videos]
    if any(p is not None for p in plans) and any(p is None for p in plans):
        raise ValueError("stack_videos: some clips are planned and some are not")
    if plans and plans[0] is not None:
        kind, pixels = RawClipBatch, {"frames": [v.frames for v in videos], "plans": plans}
    else:
        kind, pixels = ClipBatch, {"frames": torch.stack([v.frames for v in videos])}
    return kind(
        **pixels,
        labels=torch.as_tensor(list(labels), dtype=torch.long),
        global_labels=torch.as_tensor(list(global_labels), dtype=torch.long),
        video_ids=video_ids,
        class_names=list(class_names),
        tracks=stack("tracks"),
        query_mask=stack("query_mask"),
        visibility=stack("visibility"),
        short=torch.as_tensor([bool(v.short) for v in videos], dtype=torch.bool),
    )


def video_rng(seed: int, episode: int, position: int, train: bool) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(episode), int(position), int(train)])


def to_device(batch: ClipBatch | RawClipBatch, device: torch.device | str) -> ClipBatch:
    """``batch`` on ``device`` (a non-blocking copy: pinned batches overlap it with compute), augmented there if it
    is a ``RawClipBatch``."""
    return augmented(batch.to(device, non_blocking=True))


class EpisodeDataset(Dataset):
    """Item ``i``: ``(episode, support ClipBatch, query ClipBatch)`` of ``episode_at(i)``; with
    ``augment_on="device"`` the two batches are ``RawClipBatch`` es (:func:`to_device` finishes them)."""

    def __init__(
        self,
        clips: SplitClips,
        episode_at: Callable[[int], Episode],
        length: int,
        train: bool,
        seed: int,
        augment_on: str = "loader",
    ) -> None:
        if augment_on not in AUGMENT_PLACES:
            raise ValueError(f"augment_on must be one of {', '.join(AUGMENT_PLACES)}; got {augment_on!r}")
        self.clips, self.episode_at, self.length, self.train, self.seed = (
            clips,
            episode_at,
            length,
            train,
            seed,
        )
        self.augment_on = augment_on

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[Episode, ClipBatch | RawClipBatch, ClipBatch | RawClipBatch]:
        ep = self.episode_at(i)
        ns = len(ep.support)
        rngs = [video_rng(self.seed, ep.index, k, self.train) for k in range(ns + len(ep.query))]
        planned = self.augment_on == "device"
        support = self.clips.batch(ep.support, ep.support_labels, self.train, rngs[:ns], planned)
        query = self.clips.batch(ep.query, ep.query_labels, self.train, rngs[ns:], planned)
        return ep, support, query


def pin_memory_for(device: torch.device | str | None) -> bool:
    """Pin loaded batches only when they go to a CUDA device (page-locked host memory, asynchronous copies)."""
    return device is not None and torch.device(device).type == "cuda"


def loader_generator(seed: int, rank: int = 0, position: int = 0) -> torch.Generator:
    """A DataLoader's own generator, seeded from ``(seed, rank, position)``: the loader draws its workers' base
    seed from it instead of from torch's global generator (whose state belongs to the model: dropout etc.)."""
    state = np.random.SeedSequence([int(seed), int(rank), int(position), 0x10AD]).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(state[0]) & ((1 << 63) - 1))


def episode_loader(
    dataset: EpisodeDataset,
    workers: int,
    device: torch.device | str | None = None,
    rank: int = 0,
    position: int = 0,
) -> DataLoader:
    """A DataLoader yielding one episode at a time (no re-batching), decoding in ``workers`` processes. For a CUDA
    ``device`` the batches are pinned, so ``batch.to(device, non_blocking=True)`` overlaps the host-to-device copy
    with compute. Its generator (:func:`loader_generator`) is seeded from the dataset's seed, ``rank`` and
    ``position`` (where the dataset's first item stands in the run), so creating and iterating the loader leaves
    torch's global generator untouched."""
    return DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=2 if workers > 0 else None,
        pin_memory=pin_memory_for(device),
        worker_init_fn=loader_worker_init,  # workers die with this process (fsar.procs)
        generator=loader_generator(dataset.seed, rank, position),
    )
