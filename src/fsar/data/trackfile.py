"""The per-video point-track file (``.npz``, no pickle) used by TATs-style models.

TATs (Kumar et al., "Trajectory-aligned Space-time Tokens for Few-shot Action Recognition", ECCV 2024) tracks a
grid of points through every video once, offline, and the model then reads a fixed subset of 256 tracks per
video. The original stores one Python pickle per video (see :mod:`fsar.tracking.reference_pickle`); fsar stores
the same information in a plain numpy ``.npz`` archive that loads without executing code.

Conventions
-----------
* **Pixels.** ``tracks[t, n] = (x, y)`` in pixels of the frame the tracker saw (``frame_size = (H, W)``), with
  the *pixel-centre* convention: the centre of pixel (row 0, column 0) is (0, 0) and the centre of the
  bottom-right pixel is (W-1, H-1). This is the convention of OpenCV's Lucas-Kanade and of CoTracker's outputs.
  Positions may lie outside the frame (a point that left it).
* **Timeline.** Track row ``t`` refers to frame ``timeline[t]`` of the decoded video (0-based frame numbering of
  the video reader), so ``timeline / fps`` are timestamps in seconds. ``fps`` is the decoded video's native
  frame rate, or NaN when unknown (e.g. a reference pickle read without it).
* **Query frames.** ``query_frame[n]`` is the row of the timeline at which point ``n`` was queried. Rows before
  it hold the tracker's positions but are meaningless; ``visibility`` is False there.
* **Subset.** ``sampled_indices`` (sorted, unique) are the ids of the fixed subset the model uses (256 in TATs);
  ``num_points_total`` is the number of tracks before the redundancy filter.
* **Clusters (optional).** ``cluster_id`` (int32 [N]) is the semantic cluster of each point (Trokens' semantic
  query points, ``fsar track --query-points semantic``), used by :func:`cluster_sample` at load time. Files
  without it (every other kind) are unchanged and read as before; readers that do not know it ignore it.
* **Parameters.** ``tracker`` names the tracker; ``params`` is a JSON object with every setting that produced the
  file (tracker options, grid, query frames, filter distance, seed...). It is stored as canonical JSON.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fsar.errors import TrackFileError

FORMAT_VERSION = 1

# Keys of the .npz archive, in the order written.
_KEYS = (
    "format_version",
    "tracks",
    "visibility",
    "query_frame",
    "frame_size",
    "timeline",
    "fps",
    "tracker",
    "params",
    "sampled_indices",
    "num_points_total",
    "video_id",
)


def canonical_json(params: dict[str, Any]) -> str:
    """``params`` as canonical JSON (sorted keys, no spaces): equal settings give equal strings."""
    try:
        return json.dumps(params, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"tracker params must be JSON-serialisable (str/int/float/bool/list/dict): {exc}"
        ) from None


@dataclass
class SelectedTracks:
    """Tracks of a subset of points at selected rows of the timeline (what a TATs clip needs).

    tracks:       float32 [t, K, 2] pixel (x, y).
    visibility:   bool [t, K] tracker visibility.
    query_mask:   bool [t, K], True where the selected row is at or after the point's query frame.
    video_frames: int64 [t], the decoded-video frame numbers to read so that pixels line up with the tracks.
    """

    tracks: np.ndarray
    visibility: np.ndarray
    query_mask: np.ndarray
    video_frames: np.ndarray


@dataclass
class TrackFile:
    """All tracks of one video. See the module docstring for the conventions."""

    tracks: np.ndarray  # float32 [T, N, 2]
    visibility: np.ndarray  # bool [T, N]
    query_frame: np.ndarray  # int32 [N]
    frame_size: tuple[int, int]  # (H, W)
    timeline: np.ndarray  # int64 [T]
    fps: float
    tracker: str
    params: dict[str, Any] = field(default_factory=dict)
    sampled_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # int64 [K]
    num_points_total: int = 0
    video_id: str = ""
    format_version: int = FORMAT_VERSION
    cluster_id: np.ndarray | None = None  # int32 [N], semantic query points only

    def __post_init__(self) -> None:
        self.frame_size = (int(self.frame_size[0]), int(self.frame_size[1]))
        self.fps = float(self.fps)
        self.num_points_total = int(self.num_points_total)
        self.format_version = int(self.format_version)

    # ------------------------------------------------------------------ properties
    @property
    def num_frames(self) -> int:
        return int(self.tracks.shape[0])

    @property
    def num_points(self) -> int:
        return int(self.tracks.shape[1])

    @property
    def params_json(self) -> str:
        return canonical_json(self.params)

    # ------------------------------------------------------------------ validation
    def validate(self, source: object = "<TrackFile>") -> None:
        """Raise :class:`TrackFileError` naming ``source`` and the key if any field is inconsistent."""

        def fail(key: str, reason: str) -> None:
            raise TrackFileError(source, f"key {key!r}: {reason}")

        def check_array(key: str, value: object, dtype: type, ndim: int) -> np.ndarray:
            if not isinstance(value, np.ndarray):
                fail(key, f"expected a numpy array, got {type(value).__name__}")
            if value.dtype != np.dtype(dtype):
                fail(
                    key,
                    f"expected dtype {np.dtype(dtype)}, got {value.dtype}; cast it before building the file",
                )
            if value.ndim != ndim:
                fail(key, f"expected {ndim} dimensions, got shape {value.shape}")
            return value

        if self.format_version != FORMAT_VERSION:
            fail(
                "format_version",
                f"version {self.format_version} is not supported (this fsar reads {FORMAT_VERSION}); "
                "re-create the file with `fsar track`",
            )
        tracks = check_array("tracks", self.tracks, np.float32, 3)
        if tracks.shape[2] != 2:
            fail("tracks", f"expected shape [T, N, 2], got {tracks.shape}")
        T, N = tracks.shape[:2]
        if T < 1:
            fail("tracks", "no frames (T = 0)")
        if not np.isfinite(tracks).all():
            fail("tracks", "contains NaN or infinite positions")
        vis = check_array("visibility", self.visibility, np.bool_, 2)
        if vis.shape != (T, N):
            fail("visibility", f"expected shape {(T, N)} to match tracks, got {vis.shape}")
        qf = check_array("query_frame", self.query_frame, np.int32, 1)
        if qf.shape != (N,):
            fail("query_frame", f"expected shape {(N,)} to match tracks, got {qf.shape}")
        if N and (qf.min() < 0 or qf.max() >= T):
            fail("query_frame", f"values must lie in [0, {T - 1}], got [{qf.min()}, {qf.max()}]")
        H, W = self.frame_size
        if H < 1 or W < 1:
            fail("frame_size", f"expected a positive (H, W), got {self.frame_size}")
        timeline = check_array("timeline", self.timeline, np.int64, 1)
        if timeline.shape != (T,):
            fail("timeline", f"expected shape {(T,)} to match tracks, got {timeline.shape}")
        if timeline.min() < 0 or (T > 1 and np.any(np.diff(timeline) <= 0)):
            fail("timeline", "frame numbers must be >= 0 and strictly increasing")
        if not (math.isnan(self.fps) or self.fps > 0):
            fail("fps", f"expected a positive frame rate or NaN (unknown), got {self.fps}")
        if not isinstance(self.tracker, str) or not self.tracker:
            fail("tracker", "expected a non-empty tracker name")
        if not isinstance(self.params, dict):
            fail("params", f"expected a dict, got {type(self.params).__name__}")
        try:
            canonical_json(self.params)
        except ValueError as exc:
            fail("params", str(exc))
        sub = check_array("sampled_indices", self.sampled_indices, np.int64, 1)
        if sub.size and (sub.min() < 0 or sub.max() >= N):
            fail("sampled_indices", f"ids must lie in [0, {N - 1}], got [{sub.min()}, {sub.max()}]")
        if sub.size > 1 and np.any(np.diff(sub) <= 0):
            fail("sampled_indices", "ids must be sorted and unique")
        if self.num_points_total < N:
            fail("num_points_total", f"{self.num_points_total} is smaller than the {N} stored tracks")
        if not isinstance(self.video_id, str):
            fail("video_id", f"expected a string, got {type(self.video_id).__name__}")
        if self.cluster_id is not None:
            ids = check_array("cluster_id", self.cluster_id, np.int32, 1)
            if ids.shape != (N,):
                fail("cluster_id", f"expected shape {(N,)} to match tracks, got {ids.shape}")
            if N and ids.min() < 0:
                fail("cluster_id", f"cluster ids must be >= 0, got {ids.min()}")

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Validate and write atomically: a temporary file in the same folder, then ``os.replace``."""
        path = Path(path)
        self.validate(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "format_version": np.asarray(self.format_version, dtype=np.int64),
            "tracks": self.tracks,
            "visibility": self.visibility,
            "query_frame": self.query_frame,
            "frame_size": np.asarray(self.frame_size, dtype=np.int64),
            "timeline": self.timeline,
            "fps": np.asarray(self.fps, dtype=np.float64),
            "tracker": np.asarray(self.tracker, dtype=np.str_),
            "params": np.asarray(self.params_json, dtype=np.str_),
            "sampled_indices": self.sampled_indices,
            "num_points_total": np.asarray(self.num_points_total, dtype=np.int64),
            "video_id": np.asarray(self.video_id, dtype=np.str_),
        }
        if self.cluster_id is not None:
            arrays["cluster_id"] = self.cluster_id
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrackFile:
        """Read and validate a file written by :meth:`save`; any problem is a :class:`TrackFileError`."""
        path = Path(path)
        if not path.is_file():
            raise TrackFileError(path, "no such track file; create it with `fsar track`")
        try:
            archive = np.load(path, allow_pickle=False)
        except Exception as exc:  # zipfile/numpy raise many types for a corrupt file
            raise TrackFileError(
                path, f"not a readable .npz archive ({exc}); re-create it with `fsar track`"
            ) from None
        with archive:
            missing = [key for key in _KEYS if key not in archive.files]
            if missing:
                raise TrackFileError(
                    path, f"missing key(s) {', '.join(missing)}; it is not an fsar track file (re-create it)"
                )
            try:
                data = {key: archive[key] for key in _KEYS}
                cluster_id = archive["cluster_id"] if "cluster_id" in archive.files else None
            except Exception as exc:
                raise TrackFileError(
                    path, f"cannot read the archive's arrays ({exc}); re-create it"
                ) from None
        try:
            params = json.loads(str(data["params"]))
        except json.JSONDecodeError as exc:
            raise TrackFileError(path, f"key 'params': not valid JSON ({exc})") from None
        frame_size = data["frame_size"]
        if frame_size.shape != (2,):
            raise TrackFileError(
                path, f"key 'frame_size': expected 2 values (H, W), got shape {frame_size.shape}"
            )
        for key in ("format_version", "fps", "tracker", "num_points_total", "video_id"):
            if data[key].shape != ():
                raise TrackFileError(path, f"key {key!r}: expected a scalar, got shape {data[key].shape}")
        if not isinstance(params, dict):
            raise TrackFileError(path, "key 'params': expected a JSON object")
        result = cls(
            tracks=data["tracks"],
            visibility=data["visibility"],
            query_frame=data["query_frame"],
            frame_size=(int(frame_size[0]), int(frame_size[1])),
            timeline=data["timeline"],
            fps=float(data["fps"]),
            tracker=str(data["tracker"]),
            params=params,
            sampled_indices=data["sampled_indices"],
            num_points_total=int(data["num_points_total"]),
            video_id=str(data["video_id"]),
            format_version=int(data["format_version"]),
            cluster_id=cluster_id,
        )
        result.validate(path)
        return result

    # ------------------------------------------------------------------ use by models
    def select(self, rows: np.ndarray | list[int], points: str | np.ndarray = "sampled") -> SelectedTracks:
        """Tracks at timeline ``rows`` for the fixed subset (``points="sampled"``), all points, or given ids.

        The query mask follows TATs: ``mask[t, k] = rows[t] >= query_frame[k]`` (both in timeline rows).
        """
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= self.num_frames)):
            raise IndexError(
                f"rows must be a 1-D list of timeline rows in [0, {self.num_frames - 1}], got {rows}"
            )
        if isinstance(points, str):
            if points == "sampled":
                ids = self.sampled_indices
            elif points == "all":
                ids = np.arange(self.num_points, dtype=np.int64)
            else:
                raise ValueError(f"points must be 'sampled', 'all' or an array of ids, got {points!r}")
        else:
            ids = np.asarray(points, dtype=np.int64)
        tracks = self.tracks[rows][:, ids]
        return SelectedTracks(
            tracks=tracks,
            visibility=self.visibility[rows][:, ids],
            query_mask=rows[:, None] >= self.query_frame[ids][None, :].astype(np.int64),
            video_frames=self.timeline[rows],
        )


def cluster_sample(cluster_id: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Trokens' cluster-proportional point sampling (``cluster_sample``, trokens.md section 4): ``count`` point ids
    (int64, possibly repeated) out of the ``P`` points with cluster ids ``cluster_id`` [P], all draws from ``rng``.

    1. Clusters with their sizes ``n_c`` (C clusters). If ``count >= C``, cluster c gets
       ``1 + int((count - C) * n_c / P)`` points and the shortfall is handed out one point at a time to clusters
       drawn with probabilities ``n_c / P`` (with replacement); otherwise ``count`` clusters drawn without
       replacement (same weights) get one point each.
    2. Within a cluster the points are drawn without replacement (with replacement if it is too small).
    3. Duplicates collapse and the kept ids are sorted (original id order); if fewer than ``count`` remain, the
       list is topped up with ids drawn from the kept ones (without replacement when enough, else with).

    The original draws from the worker's global, unseeded RNGs on every load; fsar takes ``rng`` (the loader
    seeds it, see :class:`fsar.data.tracks.TrackSource`).
    """
    ids = np.asarray(cluster_id)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"cluster_sample needs cluster ids [P] with P >= 1, got shape {ids.shape}")
    if count < 1:
        raise ValueError(f"cluster_sample: count must be >= 1, got {count}")
    clusters, sizes = np.unique(ids, return_counts=True)
    total, num = int(ids.size), len(clusters)
    weights = sizes / total
    if count >= num:
        alloc = 1 + ((count - num) * sizes) // total
        shortfall = int(count - alloc.sum())
        if shortfall > 0:
            alloc = alloc + np.bincount(
                rng.choice(num, size=shortfall, replace=True, p=weights), minlength=num
            )
    else:
        alloc = np.zeros(num, dtype=np.int64)
        alloc[rng.choice(num, size=count, replace=False, p=weights)] = 1
    drawn = []
    for cluster, take in zip(clusters, alloc):
        if take:
            members = np.flatnonzero(ids == cluster)
            drawn.append(rng.choice(members, size=int(take), replace=bool(take > members.size)))
    kept = np.unique(np.concatenate(drawn))
    missing = count - kept.size
    if missing > 0:
        kept = np.concatenate([kept, rng.choice(kept, size=missing, replace=bool(missing > kept.size))])
    return kept.astype(np.int64)


def uniform_rows(num_rows: int, count: int) -> np.ndarray:
    """TATs' frame selection over a track timeline: ``int(linspace(0, num_rows - 1, count))`` (tats.md §2)."""
    if num_rows < 1 or count < 1:
        raise ValueError(f"need num_rows >= 1 and count >= 1, got {num_rows} and {count}")
    return np.linspace(0, num_rows - 1, count).astype(np.int64)


NORMALIZATIONS = ("tats", "align_corners", "pixel_centers")


def normalize_tracks(tracks: np.ndarray, frame_size: tuple[int, int], convention: str = "tats") -> np.ndarray:
    """Pixel (x, y) -> (u, v) in about [-1, 1] (float32), for ``ClipBatch.tracks``.

    * ``tats``: ``u = 2x/W - 1``, ``v = 2y/H - 1``, TATs' loader (tats.md §3; it divides by W, not W-1).
    * ``align_corners``: ``u = 2x/(W-1) - 1``: pixel centres 0 and W-1 map to -1 and 1
      (``grid_sample(..., align_corners=True)``).
    * ``pixel_centers``: ``u = (2x+1)/W - 1``: the image edges map to -1 and 1
      (``grid_sample(..., align_corners=False)``).
    """
    H, W = float(frame_size[0]), float(frame_size[1])
    xy = np.asarray(tracks, dtype=np.float64)
    if xy.shape[-1] != 2:
        raise ValueError(f"tracks must end with an (x, y) axis of size 2, got shape {xy.shape}")
    size = np.array([W, H])
    if convention == "tats":
        out = 2 * xy / size - 1
    elif convention == "align_corners":
        out = 2 * xy / np.maximum(size - 1, 1) - 1
    elif convention == "pixel_centers":
        out = (2 * xy + 1) / size - 1
    else:
        raise ValueError(f"unknown convention {convention!r}; use one of {', '.join(NORMALIZATIONS)}")
    return out.astype(np.float32)
