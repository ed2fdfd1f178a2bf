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
from pathlib import Path

import numpy as np
import torch

from fsar.data.clips import apply_to_frames
from fsar.data.sources import LoadedVideo
from fsar.data.trackfile import TrackFile, cluster_sample, normalize_tracks, uniform_rows
from fsar.data.transforms import transform_points
from fsar.errors import FsarError

POINT_SAMPLINGS = ("fixed", "cluster")


class TrackSource:
    """Point tracks of a benchmark's videos, from ``fsar track``'s output folder ``root``."""

    def __init__(
        self,
        root: Path,
        num_frames: int,
        convention: str = "tats",
        point_sampling: str = "fixed",
        num_points: int = 256,
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

    def point_ids(self, track_file: TrackFile, path: Path, record, train: bool, rng: np.random.Generator):
        """``"sampled"`` (the fixed subset) or the ids of a cluster-proportional draw (module docstring)."""
        if self.point_sampling == "fixed":
            return "sampled"
        if track_file.cluster_id is None:
            raise FsarError(
                f"{path}: data.point_sampling=cluster needs cluster ids in the track file; make the tracks with "
                "`fsar track --query-points semantic`, or set data.point_sampling=fixed"
            )
        if train:
            draw = rng.spawn(1)[0]
        else:
            draw = np.random.default_rng([0x7C1A, zlib.crc32(str(record.video_id).encode("utf-8"))])
        return cluster_sample(track_file.cluster_id, self.num_points, draw)

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
        track_file = TrackFile.load(self.path_for(record))
        return track_file.select(uniform_rows(track_file.num_frames, self.num_frames)).video_frames

    def load(self, record, loader, train: bool, rng: np.random.Generator) -> LoadedVideo:
        path = self.path_for(record)
        track_file = TrackFile.load(path)
        points = self.point_ids(track_file, path, record, train, rng)
        sel = track_file.select(uniform_rows(track_file.num_frames, self.num_frames), points)
        video = loader.open(record)
        raw = video.frames(sel.video_frames)
        source_hw = tuple(getattr(video, "source_size", raw.shape[1:3]))
        if source_hw != tuple(track_file.frame_size):
            raise FsarError(
                f"{self.path_for(record)}: tracks were made on {tuple(track_file.frame_size)} frames but the video "
                f"{record.path} decodes to {source_hw}; re-run `fsar track`"
            )
        if train and loader.train_augment is not None:
            raw = loader.train_augment(raw, rng)
        transform = loader.transform_train if train else loader.transform_test
        params = transform.sample_params(source_hw, rng)
        frames = apply_to_frames(transform, raw, params)
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
            query_mask=torch.as_tensor(sel.query_mask, dtype=torch.bool),
            visibility=torch.as_tensor(sel.visibility, dtype=torch.bool),
        )
