"""Clip sources: one notion for "give me the clip of this video", wherever the pixels come from.

A clip source has ``load(record, train, rng) -> LoadedVideo`` and ``kind`` (a word for logs). The engine asks a
source for clips and does not care where they come from:

- ``PixelClips`` over a ``ClipLoader``: frames sampled from encoded videos or frame folders (decoded per clip), or
  from a clip store (``fsar.data.clip_store``: pre-decoded, memory-mapped, no decoding at all); optionally with
  point tracks (``fsar.data.tracks.TrackSource``, TATs), then turned into the configured input modality;
- ``FeatureClips`` (``fsar.data.feature_store``): a frozen backbone's cached feature maps instead of pixels.

Random choices come from the ``rng`` passed in only (frame jitter first, then crop and flip), so a clip is the same
whatever the source, up to the store's uint8 rounding (see ``fsar.data.clip_store``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import torch

from fsar.data.augment import ClipPlan
from fsar.data.clips import ClipLoader
from fsar.data.modality import apply_modality


@dataclass
class LoadedVideo:
    """One clip and, when the method uses them, its point tracks. With a ``plan`` (``data.augment_on: device``) the
    frames are the uint8 frames as read, ``[T, H, W, 3]``, and the plan says what remains to be done to them."""

    frames: torch.Tensor  # [T, 3, H, W] (or [T, C, h, w] cached feature maps); uint8 [T, H, W, 3] with a plan
    tracks: torch.Tensor | None = None  # [T, N, 2] in [-1, 1]
    query_mask: torch.Tensor | None = None  # [T, N]
    visibility: torch.Tensor | None = None  # [T, N]
    short: bool = False
    plan: ClipPlan | None = None


class ClipSource(Protocol):
    """Anything that loads the clip of a video record."""

    kind: str

    def load(self, record, train: bool, rng: np.random.Generator) -> LoadedVideo: ...


class PixelClips:
    """Clips of pixels: ``loader`` samples and transforms frames (its videos come from files or a clip store),
    ``tracks`` adds point tracks read on the track files' timeline, ``modality`` builds the model input."""

    def __init__(self, loader: ClipLoader, modality: str = "rgb", tracks=None, kind: str = "videos") -> None:
        self.loader = loader
        self.modality = modality
        self.tracks = tracks
        self.kind = kind

    def load(self, record, train: bool, rng: np.random.Generator, planned: bool = False) -> LoadedVideo:
        """The clip of ``record``; ``planned``: its uint8 frames and plan instead (the same random choices)."""
        if self.tracks is not None:
            video = self.tracks.load(record, self.loader, train, rng, planned=planned)
        else:
            clip = self.loader.load(record, train, rng, planned=planned)
            video = LoadedVideo(frames=clip.frames, short=clip.short, plan=getattr(clip, "plan", None))
        if planned:
            video.plan = replace(video.plan, modality=self.modality)
        else:
            video.frames = apply_modality(video.frames, self.modality)
        return video

    def plan(self, record, train: bool, rng: np.random.Generator) -> LoadedVideo:
        """``load(record, train, rng, planned=True)``."""
        return self.load(record, train, rng, planned=True)

    __call__ = load
