"""Video data: one ``Video`` over encoded files and frame folders, seeded frame samplers, clip transforms, split
parsers, named benchmarks, clip loading, episodes, ``data check`` and the synthetic benchmark (``fsar.data.synthetic``).

Clip sources (``fsar.data.sources``) are where the engine gets clips from, whatever holds the pixels: videos or frame
folders (decoded per clip), the clip store (``fsar.data.clip_store``, built by ``fsar.data.prepare``), point tracks
(``fsar.data.tracks`` over the ``fsar.data.trackfile`` format) and cached backbone features
(``fsar.data.feature_store``).

Augmentation (``fsar.data.augment``): each clip's random choices are drawn in the loader into a ``ClipPlan`` and
carried out by one batched implementation, in the loader or, with uint8 clips shipped as a ``RawClipBatch``, on the
model's device (``data.augment_on``).
"""

import importlib
from typing import TYPE_CHECKING

# Exported names and their modules, imported on first use (PEP 562): importing a light module such as
# ``fsar.data.trackfile`` (``fsar track`` and its workers) does not import torch through this package.
_EXPORTS = {
    "ClipPlan": "fsar.data.augment",
    "RawClipBatch": "fsar.data.augment",
    "realize_clips": "fsar.data.augment",
    "ClipBatch": "fsar.data.batch",
    "BENCHMARKS": "fsar.data.benchmarks",
    "Benchmark": "fsar.data.benchmarks",
    "SplitData": "fsar.data.benchmarks",
    "VideoRecord": "fsar.data.benchmarks",
    "load_benchmark": "fsar.data.benchmarks",
    "load_synthetic": "fsar.data.benchmarks",
    "ClipStore": "fsar.data.clip_store",
    "ClipLoader": "fsar.data.clips",
    "LoadedClip": "fsar.data.clips",
    "make_clip_batch": "fsar.data.clips",
    "Episode": "fsar.data.episodes",
    "EpisodeSampler": "fsar.data.episodes",
    "load_episodes": "fsar.data.episodes",
    "save_episodes": "fsar.data.episodes",
    "FRAME_SAMPLERS": "fsar.data.sampling",
    "build_frame_sampler": "fsar.data.sampling",
    "sampler_support": "fsar.data.sampling",
    "ClipSource": "fsar.data.sources",
    "LoadedVideo": "fsar.data.sources",
    "PixelClips": "fsar.data.sources",
    "ClipTransform": "fsar.data.transforms",
    "Video": "fsar.data.video",
    "open_video": "fsar.data.video",
}

if TYPE_CHECKING:
    from fsar.data.augment import ClipPlan, RawClipBatch, realize_clips
    from fsar.data.batch import ClipBatch
    from fsar.data.benchmarks import (
        BENCHMARKS,
        Benchmark,
        SplitData,
        VideoRecord,
        load_benchmark,
        load_synthetic,
    )
    from fsar.data.clip_store import ClipStore
    from fsar.data.clips import ClipLoader, LoadedClip, make_clip_batch
    from fsar.data.episodes import Episode, EpisodeSampler, load_episodes, save_episodes
    from fsar.data.sampling import FRAME_SAMPLERS, build_frame_sampler, sampler_support
    from fsar.data.sources import ClipSource, LoadedVideo, PixelClips
    from fsar.data.transforms import ClipTransform
    from fsar.data.video import Video, open_video


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fsar.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BENCHMARKS",
    "FRAME_SAMPLERS",
    "Benchmark",
    "ClipBatch",
    "ClipLoader",
    "ClipPlan",
    "ClipSource",
    "ClipStore",
    "ClipTransform",
    "Episode",
    "EpisodeSampler",
    "LoadedClip",
    "LoadedVideo",
    "PixelClips",
    "RawClipBatch",
    "SplitData",
    "Video",
    "VideoRecord",
    "build_frame_sampler",
    "load_benchmark",
    "load_episodes",
    "load_synthetic",
    "make_clip_batch",
    "open_video",
    "realize_clips",
    "sampler_support",
    "save_episodes",
]
