"""The synthetic few-shot action benchmark: deterministic rendered videos, no download needed.

Each class is an ordered sequence of 2-3 motion primitives (``left_then_rotcw``); many classes have a
reversed-order twin in the same split, so time order matters. Videos add nuisances: random textured background,
actor shape and texture, distractors that may occlude it, camera jitter, pixel noise, and the duration / evolution
misalignments of TA2N (Li et al., AAAI 2022). Ground-truth point trajectories of the actor come with every video.

- ``SynthConfig`` (``SynthConfig.preset("default" | "tiny")``): every parameter.
- ``build_classes(config) -> list[ClassDef]``: the class definitions and their splits.
- ``render_video(config, class_def, video_idx) -> (frames, points, visible)``: one video in memory.
- ``generate_synthetic(out_dir, config, workers=None, progress=True, overwrite=False) -> SynthSummary``: the
  dataset on disk, in the layout read by ``fsar.data.benchmarks.load_benchmark("synthetic", ...)``.
"""

from fsar.data.synthetic.classes import ClassDef, build_classes
from fsar.data.synthetic.config import SPLIT_NAMES, SynthConfig, scaled_split_counts
from fsar.data.synthetic.generate import SPLIT_FILES, SynthSummary, generate_synthetic
from fsar.data.synthetic.primitives import PRIMITIVE_NAMES, PRIMITIVES
from fsar.data.synthetic.render import RenderedVideo, render_clip, render_video

__all__ = [
    "PRIMITIVES",
    "PRIMITIVE_NAMES",
    "SPLIT_FILES",
    "SPLIT_NAMES",
    "ClassDef",
    "RenderedVideo",
    "SynthConfig",
    "SynthSummary",
    "build_classes",
    "generate_synthetic",
    "render_clip",
    "render_video",
    "scaled_split_counts",
]
