"""Clips with point tracks for TATs: frames read on the track file's timeline so that pixels and tracks line up.

For each video, the track file ``<tracks>/<class>/<video>.npz`` (or ``<tracks>/<video>.npz`` for benchmarks laid out
by id, as ``fsar track`` writes them) gives the timeline; TATs' rule picks ``num_frames`` rows uniformly over it
(tats.md §2), the pixels of those video frames are decoded, and the tracks of the fixed 256-point subset go through
the same crop/flip as the pixels, then are normalised with TATs' convention ``u = 2x/W - 1`` in the output frame.
The query mask is True where the selected row is at or after each point's query frame.

Points: ``point_sampling="fixed"`` (TATs) reads the track file's fixed subset. ``"cluster"`` (Trokens, trokens.md §4)
draws ``num_points`` ids per load with :func:`fsar.data.trackfile.cluster_sample` from the file's cluster ids
(``fsar track --query-points semantic``), seeded where the original is not: in training from a child of the clip's
generator (``rng.spawn``, so the pixel draws stay those of the fixed mode; the trainer seeds that generator by
(seed, episode, position), so every load is a new, reproducible draw); at test and validation from
``default_rng([0x7C1A, crc32(video id)])``, the same draw for a video every time (what the caching evaluator needs).

The frames may come from the videos or from a clip store (``fsar.data.clip_store``, prepared with the tracks so it
holds the frames the track files select): the crop/flip are drawn for the original frame size either way (same
``rng`` draws), and the tracks, which are in original pixels, go through the same geometry.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from fsar.data.augment import realize_clips
from fsar.data.clips import plan_clip
from fsar.data.sources import LoadedVideo
from fsar.data.trackfile import SelectedTracks, TrackFile, cluster_sample, normalize_tracks, uniform_rows
from fsar.data.transforms import transform_points
from fsar.errors import FsarError

POINT_SAMPLINGS = ("fixed", "cluster")
CACHED_FILES = (
    4096  # track files whose selected rows a TrackSource keeps in memory (least recently used first out)
)


class TrackSource:
    """Point tracks of a benchmark's videos, from ``fsar track``'s output folder ``root``.

    Reading and validating a track file costs about 5 ms (a dozen ``.npz`` members), which was a quarter of a
    demo TATs run's time, so each source keeps the rows it selects of its ``cache_files`` most recently used files
    (for the fixed subset only its points: about 4 KB for 64 points on 8 rows). The files are assumed not to change
    while a run reads them."""

    def __init__(
        self,
        root: Path,
        num_frames: int,
        convention: str = "tats",
        point_sampling: str = "fixed",
        num_points: int = 256,
        cache_files: int = CACHED_FILES,
    ) -> None:
        if not Path(root).is_dir():
            raise FsarError(f"{root}: data.tracks folder not found; create it with `fsar track`")
        if point_sampling not in POINT_SAMPLINGS:
            raise ValueError(
                f"unknown point_sampling {point_sampling!r}; use one of {', '.join(POINT_SAMPLINGS)}"
            )
        self.root = Path(root)
        self.num_frames = num_frames
        self.convention = convention
        self.point_sampling = point_sampling
        self.num_points = int(num_points)
        self.cache_files = int(cache_files)
        self._cache: OrderedDict[Path, tuple[SelectedTracks, np.ndarray | None, tuple[int, int]]] = (
            OrderedDict()
        )

    def _selected_rows(self, path: Path) -> tuple[SelectedTracks, np.ndarray | None, tuple[int, int]]:
        """The file's tracks at TATs' selected rows (the fixed subset, or every point for cluster sampling), its
        cluster ids and its frame size; cached (class docstring)."""
        hit = self._cache.get(path)
        if hit is not None:
            self._cache.move_to_end(path)
            return hit
        track_file = TrackFile.load(path)
        points = "sampled" if self.point_sampling == "fixed" else "all"
        rows = uniform_rows(track_file.num_frames, self.num_frames)
        hit = (track_file.select(rows, points), track_file.cluster_id, tuple(track_file.frame_size))
        if self.cache_files > 0:
            self._cache[path] = hit
            if len(self._cache) > self.cache_files:
                self._cache.popitem(last=False)
        return hit

    def point_ids(
        self, cluster_id: np.ndarray | None, path: Path, record, train: bool, rng: np.random.Generator
    ) -> np.ndarray | None:
        """None (the fixed subset) or the ids of a cluster-proportional draw (module docstring)."""
        if self.point_sampling == "fixed":
            return None
        if cluster_id is None:
            raise FsarError(
                f"{path}: data.point_sampling=cluster needs cluster ids in the track file; make the tracks with "
                "`fsar track --query-points semantic`, or set data.point_sampling=fixed"
            )
        if train:
            draw = rng.spawn(1)[0]
        else:
            draw = np.random.default_rng([0x7C1A, zlib.crc32(str(record.video_id).encode("utf-8"))])
        return cluster_sample(cluster_id, self.num_points, draw)

    def path_for(self, record) -> Path:
        candidates = [
            self.root / str(record.class_name) / f"{record.video_id}.npz",
            self.root / f"{record.video_id}.npz",
        ]
        for path in candidates:
            if path.is_file():
                return path
        raise FsarError(
            f"no track file for video {record.class_name}/{record.video_id} (looked for {candidates[0]} and "
            f"{candidates[1]}); run `fsar track` over the benchmark into {self.root}"
        )

    def video_frames(self, record) -> np.ndarray:
        """The video frame numbers this record's clip reads (the track file's selected timeline rows)."""
        return self._selected_rows(self.path_for(record))[0].video_frames

    def load(
        self, record, loader, train: bool, rng: np.random.Generator, planned: bool = False
    ) -> LoadedVideo:
        """The clip of ``record`` with its tracks; ``planned``: uint8 frames and their plan instead of the
        transformed frames (the same random choices; the tracks are final either way)."""
        path = self.path_for(record)
        sel, cluster_id, frame_size = self._selected_rows(path)
        ids = self.point_ids(cluster_id, path, record, train, rng)
        if ids is not None:
            sel = SelectedTracks(
                tracks=sel.tracks[:, ids],
                visibility=sel.visibility[:, ids],
                query_mask=sel.query_mask[:, ids],
                video_frames=sel.video_frames,
            )
        video = loader.open(record)
        raw = video.frames(sel.video_frames)
        source_hw = tuple(getattr(video, "source_size", raw.shape[1:3]))
        if source_hw != frame_size:
            raise FsarError(
                f"{path}: tracks were made on {frame_size} frames but the video "
                f"{record.path} decodes to {source_hw}; re-run `fsar track`"
            )
        raw, plan, params = plan_clip(loader, raw, train, rng, source_hw)
        frames = raw if planned else realize_clips([raw], [plan])[0]
        tracks = np.asarray(sel.tracks, dtype=np.float32)
        if params.resized_hw == params.out_hw and not params.flip:
            # resize only (TATs' pipeline): normalise in the original frame, exactly as the original loader
            uv = normalize_tracks(tracks, params.in_hw, self.convention)
        else:
            uv = normalize_tracks(
                np.asarray(transform_points(tracks, params)), params.out_hw, self.convention
            )
        return LoadedVideo(
            frames=frames,
            tracks=torch.as_tensor(uv, dtype=torch.float32),
            # copies: the cached selection must never be changed through a clip
            query_mask=torch.tensor(sel.query_mask, dtype=torch.bool),
            visibility=torch.tensor(sel.visibility, dtype=torch.bool),
            plan=plan if planned else None,
        )
