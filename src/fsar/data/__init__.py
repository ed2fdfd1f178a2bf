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

from fsar.data.augment import ClipPlan, RawClipBatch, realize_clips
from fsar.data.batch import ClipBatch
from fsar.data.benchmarks import BENCHMARKS, Benchmark, SplitData, VideoRecord, load_benchmark, load_synthetic
from fsar.data.clip_store import ClipStore
from fsar.data.clips import ClipLoader, LoadedClip, make_clip_batch
from fsar.data.episodes import Episode, EpisodeSampler, load_episodes, save_episodes
from fsar.data.sampling import FRAME_SAMPLERS, build_frame_sampler, sampler_support
from fsar.data.sources import ClipSource, LoadedVideo, PixelClips
from fsar.data.transforms import ClipTransform
from fsar.data.video import Video, open_video

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
