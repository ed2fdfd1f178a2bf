"""Video data: one ``Video`` over encoded files and frame folders, seeded frame samplers, clip transforms, split
parsers, named benchmarks, clip loading, episodes, ``data check`` and the synthetic benchmark (``fsar.data.synthetic``).
"""

from fsar.data.batch import ClipBatch
from fsar.data.benchmarks import BENCHMARKS, Benchmark, SplitData, VideoRecord, load_benchmark, load_synthetic
from fsar.data.clips import ClipLoader, LoadedClip, make_clip_batch
from fsar.data.episodes import Episode, EpisodeSampler, load_episodes, save_episodes
from fsar.data.sampling import FRAME_SAMPLERS, build_frame_sampler
from fsar.data.transforms import ClipTransform
from fsar.data.video import Video, open_video

__all__ = [
    "BENCHMARKS",
    "FRAME_SAMPLERS",
    "Benchmark",
    "ClipBatch",
    "ClipLoader",
    "ClipTransform",
    "Episode",
    "EpisodeSampler",
    "LoadedClip",
    "SplitData",
    "Video",
    "VideoRecord",
    "build_frame_sampler",
    "load_benchmark",
    "load_episodes",
    "load_synthetic",
    "make_clip_batch",
    "open_video",
    "save_episodes",
]
