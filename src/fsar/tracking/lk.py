"""Pyramidal Lucas-Kanade point tracking with a forward-backward check (OpenCV ``calcOpticalFlowPyrLK``).

The built-in, weight-free tracker of fsar (TATs used CoTracker, see :mod:`fsar.tracking.cotracker`).
Method: Bouguet, "Pyramidal implementation of the Lucas Kanade feature tracker" (Intel, 2000); the
forward-backward consistency check is from Kalal, Mikolajczyk and Matas, "Forward-Backward Error: Automatic
Detection of Tracking Failures" (ICPR 2010).

Each point is tracked by chaining frame to frame, forward from its query frame to the last frame and backward
from its query frame to frame 0 (positions before the query frame fill the array; they are masked later).
For each step t -> t' the point is tracked t -> t' and the result back t' -> t; the step is accepted when both
calls report success (status 1), the back-tracked point lands within ``fb_threshold`` pixels of where it
started, and the new position lies inside the frame ([0, W-1] x [0, H-1], pixel-centre convention).
The default ``fb_threshold`` is 2 px: on a 40-video synthetic benchmark (``fsar synth``, 112 px, 32 frames) it
beat 1 px on every metric (occlusion accuracy 0.834 vs 0.808, delta_avg 0.723 vs 0.719); see
``benchmarks/bench_trackers.py``.

**Lost points.** A point whose step fails is *lost* for the rest of that direction: it stays invisible and its
position is held at its last accepted position (positions are always finite; no point is ever dropped).
At its query frame a point sits exactly at its query coordinates and is visible.

All points active on a frame pair are tracked in a single LK call (LK treats points independently, so batching
the query groups gives the same result as one call per group). :meth:`LKTracker.track_forward` and
:meth:`LKTracker.track_backward` give the two halves separately, so that ``fsar track`` can track backward only
the points its redundancy filter keeps (:mod:`fsar.tracking.runner`).

**Defaults** (since 2026-12-04): an 11 px window, at most 10 iterations, epsilon 0.03 px; earlier 15 px, 30, 0.01.
They cost about a third less CPU. On 200 videos of the default synthetic benchmark (64 px) they track positions
better (delta<2 0.605 vs 0.593, mean error 3.56 vs 3.68 px) but flag occlusion less well (occlusion accuracy
0.876 vs 0.904). On 200 cluttered 112 px videos they are slightly worse (delta<2 0.524 vs 0.533); see
``benchmarks/bench_trackers.py`` and BENCHMARKS.md. The demo keeps the earlier settings, with which its table was
made (:func:`fsar.engine.demo.make_tracks`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from fsar.tracking.base import check_track_inputs
from fsar.tracking.queries import Queries

# admit(t, ids, positions [N, 2], visible [N]) -> bool [len(ids)]: which points queried on frame t to track.
Admit = Callable[[int, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class LKTracker:
    """OpenCV pyramidal LK. ``win_size``/``max_level``/``max_iterations``/``epsilon`` go to OpenCV."""

    win_size: int = 11
    max_level: int = 3
    fb_threshold: float = 2.0
    max_iterations: int = 10
    epsilon: float = 0.03
    min_eig_threshold: float = 1e-4

    name = "lk"

    def __post_init__(self) -> None:
        if self.win_size < 3 or self.win_size % 2 == 0:
            raise ValueError(f"lk: win_size must be an odd integer >= 3, got {self.win_size}")
        if self.max_level < 0:
            raise ValueError(f"lk: max_level must be >= 0, got {self.max_level}")
        if not self.fb_threshold > 0:
            raise ValueError(f"lk: fb_threshold must be > 0 pixels, got {self.fb_threshold}")
        if self.max_iterations < 1 or not self.epsilon > 0:
            raise ValueError("lk: max_iterations must be >= 1 and epsilon > 0")

    def params(self) -> dict[str, Any]:
        return {key: (float(v) if isinstance(v, float) else int(v)) for key, v in asdict(self).items()}

    # ------------------------------------------------------------------
    def _flow(self, src: np.ndarray, dst: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One LK call: positions of ``points`` [n, 2] in ``dst`` and a success flag [n]."""
        next_pts, status, _err = cv2.calcOpticalFlowPyrLK(
            src,
            dst,
            np.ascontiguousarray(points, dtype=np.float32),
            None,
            winSize=(self.win_size, self.win_size),
            maxLevel=self.max_level,
            criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, self.max_iterations, self.epsilon),
            minEigThreshold=self.min_eig_threshold,
        )
        next_pts = next_pts.reshape(-1, 2)
        ok = status.reshape(-1).astype(bool) & np.isfinite(next_pts).all(axis=1)
        return next_pts, ok

    def _step(self, src: np.ndarray, dst: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Track ``points`` src -> dst with the forward-backward check; returns (new positions, accepted)."""
        moved, ok_fwd = self._flow(src, dst, points)
        back, ok_bwd = self._flow(dst, src, moved)
        H, W = src.shape
        fb_error = np.linalg.norm(back - points, axis=1)
        inside = (moved[:, 0] >= 0) & (moved[:, 0] <= W - 1) & (moved[:, 1] >= 0) & (moved[:, 1] <= H - 1)
        accepted = ok_fwd & ok_bwd & inside & (fb_error <= self.fb_threshold)
        return moved, accepted

    def _sweep(
        self,
        gray: list[np.ndarray],
        queries: Queries,
        tracks: np.ndarray,
        vis: np.ndarray,
        step: int,
        admit: Admit | None = None,
    ) -> np.ndarray:
        """Chain through time in direction ``step`` (+1 forward, -1 backward), filling tracks/vis in place.

        ``admit`` (forward only) may decline points when their query frame is reached; declined points are never
        tracked. Returns which points were tracked (bool [N])."""
        T = len(gray)
        qf = queries.query_frame
        alive = np.zeros(len(queries), dtype=bool)
        started = np.zeros(len(queries), dtype=bool)
        order = range(T) if step > 0 else range(T - 1, -1, -1)
        for t in order:
            new = qf == t
            tracks[t, new] = queries.xy[new]
            vis[t, new] = True
            if admit is not None and new.any():
                ids = np.flatnonzero(new)
                new[ids[~admit(t, ids, tracks[t], vis[t] & started)]] = False
            alive |= new
            started |= new
            t_next = t + step
            if not 0 <= t_next < T:
                break
            # Points lost earlier (started but not alive) keep their last accepted position.
            tracks[t_next, started] = tracks[t, started]
            ids = np.flatnonzero(alive)
            if ids.size == 0:
                continue
            moved, accepted = self._step(gray[t], gray[t_next], tracks[t, ids])
            good = ids[accepted]
            tracks[t_next, good] = moved[accepted]
            vis[t_next, good] = True
            alive[ids[~accepted]] = False
        return started

    @staticmethod
    def _gray(frames: np.ndarray) -> list[np.ndarray]:
        return [cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY) for frame in frames]

    def track_forward(
        self,
        frames: np.ndarray,
        queries: Queries | tuple[np.ndarray, np.ndarray],
        admit: Admit | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows at and after each point's query frame only: ``(tracks [T, N, 2], visibility [T, N], tracked [N])``.

        Rows before a point's query frame are zero and invisible. ``admit(t, ids, positions [N, 2],
        visible [N]) -> bool [len(ids)]`` is asked, when frame ``t`` is reached, which of the points ``ids``
        queried there to track, given every point's position and visibility on row ``t`` (points queried
        earlier only); the others are not tracked (``tracked`` False, visible only at their query frame).
        Without ``admit`` every point is tracked, and the rows equal :meth:`track`'s."""
        frames, queries = check_track_inputs(frames, queries)
        T, N = frames.shape[0], len(queries)
        tracks = np.zeros((T, N, 2), dtype=np.float32)
        vis = np.zeros((T, N), dtype=bool)
        if N == 0:
            return tracks, vis, np.zeros(0, dtype=bool)
        tracked = self._sweep(self._gray(frames), queries, tracks, vis, +1, admit)
        return tracks, vis, tracked

    def track_backward(
        self, frames: np.ndarray, queries: Queries | tuple[np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows at and before each point's query frame only (rows after it are zero and invisible); what
        :meth:`track` returns on those rows."""
        frames, queries = check_track_inputs(frames, queries)
        T, N = frames.shape[0], len(queries)
        tracks = np.zeros((T, N, 2), dtype=np.float32)
        vis = np.zeros((T, N), dtype=bool)
        if N == 0:
            return tracks, vis
        self._sweep(self._gray(frames), queries, tracks, vis, -1)
        before = np.arange(T)[:, None] <= queries.query_frame[None, :]
        return np.where(before[..., None], tracks, 0).astype(np.float32), vis & before

    def track(
        self, frames: np.ndarray, queries: Queries | tuple[np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        frames, queries = check_track_inputs(frames, queries)
        T, N = frames.shape[0], len(queries)
        tracks = np.zeros((T, N, 2), dtype=np.float32)
        vis = np.zeros((T, N), dtype=bool)
        if N == 0:
            return tracks, vis
        gray = self._gray(frames)
        forward_tracks, forward_vis = tracks.copy(), vis.copy()
        self._sweep(gray, queries, forward_tracks, forward_vis, +1)
        self._sweep(gray, queries, tracks, vis, -1)
        after = np.arange(T)[:, None] >= queries.query_frame[None, :]
        tracks[after] = forward_tracks[after]
        vis[after] = forward_vis[after]
        return tracks, vis
