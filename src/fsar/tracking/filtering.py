"""Post-processing of raw tracks: TATs' "corrected" recipe (Kumar et al., ECCV 2024; tats.md §1).

1. :func:`mask_before_query`: a point does not exist before its query frame, so its visibility is False there
   (the tracker's positions are kept).
2. :func:`filter_redundant`: re-queried grid points already explained by an existing trajectory are dropped.
3. :func:`sample_subset`: a fixed subset of 256 point ids per video. The original draws it without a seed;
   fsar seeds it per video so that it is reproducible (see :func:`video_rng`). With motion query points
   (fsar's own) the subset can prefer the points the motion rule picked over the grid top-ups.
"""

from __future__ import annotations

import zlib

import numpy as np


def mask_before_query(visibility: np.ndarray, query_frame: np.ndarray) -> np.ndarray:
    """A copy of ``visibility`` [T, N] with ``False`` at every row ``t < query_frame[n]``."""
    visibility = np.asarray(visibility, dtype=bool)
    query_frame = np.asarray(query_frame)
    if visibility.ndim != 2 or query_frame.shape != (visibility.shape[1],):
        raise ValueError(
            f"need visibility [T, N] and query_frame [N], got {visibility.shape} and {query_frame.shape}"
        )
    rows = np.arange(visibility.shape[0])[:, None]
    return visibility & (rows >= query_frame[None, :])


def filter_redundant(
    tracks: np.ndarray,
    visibility: np.ndarray,
    query_frame: np.ndarray,
    max_dist: float = 16.0,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """Ids (int64, sorted) of the points kept by TATs' redundancy filter ("corrected", ``max_dist`` in pixels).

    * All points of the first query frame are kept.
    * For each later query frame q, in order, the *previous* points are the points kept so far (any earlier
      query frame) that are visible at row q (pass the visibility after :func:`mask_before_query`).
      If there are none, every point queried at q is kept. Otherwise a new point is kept iff its distance to
      every previous point is > ``max_dist``, where distance = mean over rows t >= q of the Euclidean distance
      between the two tracks.
    New points of the same query frame are not compared with each other.

    ``candidates`` (bool [N], optional; fsar's own): only these points can be kept (points that were not tracked,
    see :func:`first_frame_admit`); without it every point is a candidate, as in TATs.
    Only rows ``t >= query_frame`` of each point are read, so forward tracks suffice.
    """
    tracks = np.asarray(tracks, dtype=np.float64)
    visibility = np.asarray(visibility, dtype=bool)
    query_frame = np.asarray(query_frame, dtype=np.int64)
    if tracks.ndim != 3 or tracks.shape[2] != 2:
        raise ValueError(f"tracks must be [T, N, 2], got {tracks.shape}")
    T, N = tracks.shape[:2]
    if visibility.shape != (T, N) or query_frame.shape != (N,):
        raise ValueError(
            f"visibility must be {(T, N)} and query_frame {(N,)}, got {visibility.shape} and {query_frame.shape}"
        )
    if candidates is None:
        candidates = np.ones(N, dtype=bool)
    candidates = np.asarray(candidates, dtype=bool)
    if candidates.shape != (N,):
        raise ValueError(f"candidates must be bool [{N}], got shape {candidates.shape}")
    if N == 0:
        return np.zeros(0, dtype=np.int64)
    frames = np.unique(query_frame)
    keep = np.zeros(N, dtype=bool)
    keep[(query_frame == frames[0]) & candidates] = True
    for q in frames[1:]:
        new = np.flatnonzero((query_frame == q) & candidates)
        if new.size == 0:
            continue
        prev = np.flatnonzero(keep & visibility[q])
        if prev.size == 0:
            keep[new] = True
            continue
        total = np.zeros((new.size, prev.size))
        for t in range(q, T):  # accumulate frame by frame: [new, prev] stays small
            dx = tracks[t, new, 0][:, None] - tracks[t, prev, 0][None, :]
            dy = tracks[t, new, 1][:, None] - tracks[t, prev, 1][None, :]
            total += np.sqrt(dx * dx + dy * dy)
        mean_dist = total / (T - q)
        keep[new[mean_dist.min(axis=1) > max_dist]] = True
    return np.flatnonzero(keep).astype(np.int64)


def first_frame_admit(query_frame: np.ndarray, radius: float):
    """An ``admit`` rule for :meth:`fsar.tracking.lk.LKTracker.track_forward` (fsar's own shortcut of
    :func:`filter_redundant`, not in TATs): a point queried after the first query frame is not tracked when a
    point of the first query frame (always kept by the filter) is visible within ``radius`` pixels of it on its
    query frame. Such a point starts where a kept trajectory already is, so with ``radius`` well below
    ``max_dist`` the filter would drop it anyway; skipping it saves its tracking. ``radius <= 0`` admits every
    point (the exact recipe)."""
    query_frame = np.asarray(query_frame)
    first = int(query_frame.min()) if query_frame.size else 0
    first_ids = np.flatnonzero(query_frame == first)

    def admit(t: int, ids: np.ndarray, positions: np.ndarray, visible: np.ndarray) -> np.ndarray:
        if t == first or radius <= 0:
            return np.ones(ids.size, dtype=bool)
        ref = first_ids[visible[first_ids]]
        if ref.size == 0:
            return np.ones(ids.size, dtype=bool)
        diff = positions[ids][:, None, :] - positions[ref][None, :, :]
        return (diff**2).sum(axis=-1).min(axis=1) > float(radius) ** 2

    return admit


def video_rng(seed: int, video_id: str, stream: int = 0) -> np.random.Generator:
    """The generator for one video's random choices: ``default_rng([seed, crc32(video_id as UTF-8)])`` for
    ``stream`` 0 (the point subset), ``default_rng([seed, crc32(...), stream])`` for another independent stream
    (1: the grid top-up of motion query points, :func:`fsar.tracking.queries.build_motion_queries`).

    ``zlib.crc32`` is stable across processes and Python versions (unlike ``hash()``), so the same
    (seed, video id) always gives the same subset, whatever the order or the worker that processes the video.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if stream < 0:
        raise ValueError(f"stream must be >= 0, got {stream}")
    key = [int(seed), zlib.crc32(video_id.encode("utf-8"))]
    return np.random.default_rng(key + [int(stream)] if stream else key)


def sample_subset(
    num_points: int, count: int, rng: np.random.Generator, preferred: np.ndarray | None = None
) -> np.ndarray:
    """``count`` distinct ids out of ``range(num_points)``, drawn with ``rng``, returned sorted (int64).

    Sorting keeps TATs' order (by id: frame-0 grid points first). Too few points is an error, never padding.
    ``preferred`` (bool [num_points], optional; fsar's own, for motion query points): ids where it is True are
    drawn first (all of them if there are at most ``count``), the others only fill the rest. Without it the
    draw is exactly TATs' uniform one.
    """
    if count < 1:
        raise ValueError(f"the subset size must be >= 1, got {count}")
    if num_points < count:
        raise ValueError(
            f"only {num_points} points remain after filtering but {count} were requested; "
            "use a larger grid (--grid) or fewer points (--points)"
        )
    if preferred is None:
        return np.sort(rng.choice(num_points, size=count, replace=False)).astype(np.int64)
    preferred = np.asarray(preferred)
    if preferred.dtype != np.bool_ or preferred.shape != (num_points,):
        raise ValueError(f"preferred must be bool [{num_points}], got {preferred.dtype} {preferred.shape}")
    first, rest = np.flatnonzero(preferred), np.flatnonzero(~preferred)
    take = min(count, first.size)
    chosen = [rng.choice(first, size=take, replace=False), rng.choice(rest, size=count - take, replace=False)]
    return np.sort(np.concatenate(chosen)).astype(np.int64)
