"""Loading clips: a video record -> ``T`` sampled, transformed frames; clips -> a ``ClipBatch``.

``ClipLoader`` ties a frame sampler (``fsar.data.sampling``) to a train and a test ``ClipTransform``. A record
whose video is missing (``path is None``) or unreadable raises ``fsar.errors.VideoError``: a clip is never replaced
by another video (MoLo's ``__getitem__(index - 1)`` fallback silently changes the test set; field.md §3 G).

Where the frames come from is the loader's ``video_source`` (record -> ``Video``): by default the record's file or
frame folder (``open_video``), or a clip store's ``StoreSplit.open`` (``fsar.data.clip_store``), whose videos are
already resized. A video with a ``source_size`` (the original (H, W)) is taken as already resized to the
transform's size: the crop and flip are drawn exactly as for the original frames (same ``rng`` draws, same
``ClipParams``), and only the resize is skipped.

Videos shorter than ``T`` get the short-video policy of ``fsar.data.sampling`` (repeat the last frame) and come
back with ``LoadedClip.short = True``; ``count_short_clips`` counts them so callers can log how many clips were
padded (no counter is kept in global or loader state, so it also works across data-loader worker processes).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fsar.data.augment import ClipPlan, fit_params, realize_clips
from fsar.data.batch import ClipBatch
from fsar.data.sampling import FrameSampler, is_short
from fsar.data.transforms import ClipParams, ClipTransform
from fsar.data.video import Video, open_video
from fsar.errors import VideoError


@dataclass
class LoadedClip:
    """One transformed clip and how it was made."""

    frames: torch.Tensor  # [T, 3, h, w] float32
    indices: np.ndarray  # [T] int64 frame indices into the video
    short: bool  # the video had fewer than T frames; the last frame was repeated
    num_frames_in_video: int
    params: ClipParams | None = None  # resize / crop / flip actually applied (to move point tracks alike)


@dataclass
class PlannedClip:
    """One clip before augmentation (``data.augment_on: device``): the uint8 frames as read and the plan that
    ``fsar.data.augment.realize_clips`` carries out later, wherever the caller runs it."""

    frames: torch.Tensor  # [T, H, W, 3] uint8 (a clip store's frames: already resized)
    plan: ClipPlan
    indices: np.ndarray
    short: bool
    num_frames_in_video: int
    params: ClipParams  # as drawn for the original frames (to move point tracks alike)


class ClipLoader:
    """Sample ``num_frames`` frames with ``sampler`` and transform them (train or test transform).

    The loader remembers the exact frame count of each video it read (per loader object, a few bytes per video). A
    first read finds it during the decode that reads the clip (``Video.sample``); later reads of the same video
    decode only up to the last frame they need.

    ``cache_clips > 0`` keeps up to that many decoded clips (uint8, keyed by video and frame indices, least recently
    used dropped first) in this loader object. It pays off when the sampler is deterministic (``uniform`` at train,
    any sampler at test): each clip is then decoded once per process instead of once per episode. Transforms still
    run on every load, so random crops and flips are unchanged.
    """

    def __init__(
        self,
        num_frames: int,
        sampler: FrameSampler,
        transform_train: ClipTransform,
        transform_test: ClipTransform,
        cache_clips: int = 0,
        train_augment=None,
        video_source=None,
    ) -> None:
        if int(num_frames) < 1:
            raise ValueError(f"ClipLoader: num_frames must be >= 1, got {num_frames}")
        self.num_frames = int(num_frames)
        self.sampler = sampler
        self.transform_train = transform_train
        self.transform_test = transform_test
        self._frame_counts: dict[Path, int] = {}
        # train clips only: an object with ``draw(rng)`` (``fsar.data.randaugment.RandAugment``: drawn here, carried
        # out by ``realize_clips`` with the rest of the plan), or any callable(frames uint8 [T,H,W,3], rng) -> frames
        # (applied at once, in the loader)
        self.train_augment = train_augment
        self.cache_clips = int(cache_clips)
        self._cache: OrderedDict[tuple[Path, bytes], np.ndarray] = OrderedDict()
        self.video_source = video_source  # callable(record) -> Video; None: open the record's path

    def open(self, record) -> Video:
        """The ``Video`` of a ``VideoRecord`` (or anything with ``path``, ``class_name``, ``video_id``, ``line``)."""
        if record.path is None:
            where = (
                f"line {record.line} of the split file" if getattr(record, "line", None) else "the split file"
            )
            raise VideoError(
                f"{record.class_name}/{record.video_id}",
                f"video listed in {where} is missing from the videos root; run `fsar data check` to list every "
                "missing video, or allow skipping missing videos (data.allow_missing)",
            )
        if self.video_source is not None:
            return self.video_source(record)
        return self.open_path(Path(record.path))

    def open_path(self, path: str | Path) -> Video:
        path = Path(path)
        return open_video(path, num_frames=self._frame_counts.get(path))

    def load_video(
        self, video: Video, train: bool, rng: np.random.Generator, planned: bool = False
    ) -> LoadedClip | PlannedClip:
        """Sample, read and transform a clip of an opened video; random choices come from ``rng`` only
        (frame indices first, then the transform's crop and flip).

        The frame count and the frames come from one ``Video.sample`` call (one decode on a first read). If it
        asks for indices twice (a container's listed count was wrong), ``rng`` is rewound before the second draw,
        so the clip is the one an exact count known in advance would give. ``planned``: return the uint8 frames
        and their plan (``PlannedClip``) instead of carrying the plan out."""
        start = None if rng is None else rng.bit_generator.state  # None: a test clip that draws nothing

        def choose(n: int) -> np.ndarray:
            if start is not None:
                rng.bit_generator.state = start
            return self._sample(n, train, rng)

        indices, frames, n = video.sample(choose)
        self._frame_counts[Path(video.path)] = n
        self._remember(video, indices, frames)
        source_hw = getattr(video, "source_size", None)
        return self._finish(frames, indices, n, train, rng, source_hw, planned)

    def load(
        self, record, train: bool, rng: np.random.Generator, planned: bool = False
    ) -> LoadedClip | PlannedClip:
        """The clip of ``record`` (a ``VideoRecord``); raises ``VideoError`` if missing or unreadable.
        ``planned``: the uint8 frames and their plan (``PlannedClip``), the same random choices."""
        known = self._frame_counts.get(Path(record.path)) if record.path is not None else None
        if self.cache_clips and known is not None:
            indices = self._sample(known, train, rng)
            cached = self._cache.get((Path(record.path), indices.tobytes()))
            if cached is not None:
                self._cache.move_to_end((Path(record.path), indices.tobytes()))
                return self._finish(cached, indices, known, train, rng, planned=planned)
            frames = self._read(self.open(record), indices)
            return self._finish(frames, indices, known, train, rng, planned=planned)
        return self.load_video(self.open(record), train, rng, planned)

    def _sample(self, n: int, train: bool, rng: np.random.Generator) -> np.ndarray:
        indices = np.asarray(self.sampler(n, self.num_frames, train, rng), dtype=np.int64)
        if indices.shape != (self.num_frames,):
            raise ValueError(f"frame sampler returned shape {indices.shape}, expected ({self.num_frames},)")
        return indices

    def _read(self, video: Video, indices: np.ndarray) -> np.ndarray:
        frames = video.frames(indices)
        self._remember(video, indices, frames)
        return frames

    def _remember(self, video: Video, indices: np.ndarray, frames: np.ndarray) -> None:
        if self.cache_clips:
            self._cache[(Path(video.path), indices.tobytes())] = frames
            while len(self._cache) > self.cache_clips:
                self._cache.popitem(last=False)

    def plan(
        self, frames: np.ndarray | torch.Tensor, train: bool, rng, source_hw=None
    ) -> tuple[torch.Tensor, ClipPlan, ClipParams]:
        """:func:`plan_clip` with this loader's transforms and ``train_augment``."""
        return plan_clip(self, frames, train, rng, source_hw)

    def _finish(
        self, frames: np.ndarray, indices: np.ndarray, n: int, train: bool, rng, source_hw=None, planned=False
    ) -> LoadedClip | PlannedClip:
        x, plan, params = self.plan(frames, train, rng, source_hw)
        short = is_short(n, self.num_frames)
        if planned:
            return PlannedClip(x, plan, indices, short, n, params)
        return LoadedClip(realize_clips([x], [plan])[0], indices, short, n, params)


def plan_clip(
    loader, frames: np.ndarray | torch.Tensor, train: bool, rng, source_hw=None
) -> tuple[torch.Tensor, ClipPlan, ClipParams]:
    """Draw a clip's augmentation from ``rng`` (RandAugment, then crop and flip) with ``loader``'s
    ``train_augment``, ``transform_train`` and ``transform_test``: the frames as a uint8 tensor (a plain
    ``train_augment`` callable already applied), their plan, and the params drawn for the original size
    ``source_hw`` (default: the frames' size)."""
    augment = None
    if train and loader.train_augment is not None:
        draw = getattr(loader.train_augment, "draw", None)
        if callable(draw):
            augment = draw(rng)
        else:
            frames = loader.train_augment(frames, rng)
    transform = loader.transform_train if train else loader.transform_test
    params = transform.sample_params(source_hw or tuple(frames.shape[1:3]), rng)
    x = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    plan = ClipPlan(fit_params(params, tuple(x.shape[1:3])), transform.normalization, augment)
    return x, plan, params


def count_short_clips(clips: Iterable[LoadedClip]) -> int:
    """How many clips came from videos shorter than the clip length (padded by repeating the last frame)."""
    return sum(1 for c in clips if c.short)


def make_clip_batch(
    clips: Sequence[LoadedClip],
    labels: Sequence[int] | torch.Tensor,
    global_labels: Sequence[int] | torch.Tensor,
    video_ids: Sequence[str],
) -> ClipBatch:
    """Stack clips into a ``ClipBatch`` (frames ``[B, T, 3, h, w]``; labels and global labels as long tensors)."""
    if not clips:
        raise ValueError("make_clip_batch needs at least one clip")
    n = len(clips)
    lengths = {"labels": len(labels), "global_labels": len(global_labels), "video_ids": len(video_ids)}
    wrong = {k: v for k, v in lengths.items() if v != n}
    if wrong:
        raise ValueError(f"make_clip_batch: {n} clips but {wrong}")
    shapes = {tuple(c.frames.shape) for c in clips}
    if len(shapes) != 1:
        detail = ", ".join(f"{vid}: {tuple(c.frames.shape)}" for vid, c in zip(video_ids, clips))
        raise ValueError(f"make_clip_batch: clips have different shapes ({detail}); use a crop or resize_to")
    return ClipBatch(
        frames=torch.stack([c.frames for c in clips]),
        labels=torch.as_tensor(labels, dtype=torch.long).reshape(n),
        global_labels=torch.as_tensor(global_labels, dtype=torch.long).reshape(n),
        video_ids=[str(v) for v in video_ids],
    )
