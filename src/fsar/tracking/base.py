"""The point-tracker interface and the input checks every tracker shares.

A tracker has a ``name``, ``params() -> dict`` (JSON-serialisable settings, stored in each track file) and
``track(frames, queries) -> (tracks, visibility)``:

* ``frames``: uint8 [T, H, W, 3] RGB.
* ``queries``: a :class:`fsar.tracking.queries.Queries` (or a ``(query_frame [N], xy [N, 2])`` pair) in pixel
  coordinates of ``frames`` (pixel-centre convention).
* returns ``tracks`` float32 [T, N, 2] and ``visibility`` bool [T, N]; every query point has a finite position at
  every frame (before its query frame too; :func:`fsar.tracking.filtering.mask_before_query` hides those).

This module imports no tracker: the trackers (:mod:`fsar.tracking.lk`, :mod:`fsar.tracking.cotracker`) import it,
and :mod:`fsar.tracking.registry` imports them lazily, so the modules form no import cycle.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from fsar.tracking.queries import Queries


@runtime_checkable
class PointTracker(Protocol):
    name: str

    def params(self) -> dict[str, Any]: ...

    def track(
        self, frames: np.ndarray, queries: Queries | tuple[np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]: ...


def as_queries(queries: Queries | tuple[np.ndarray, np.ndarray]) -> Queries:
    if isinstance(queries, Queries):
        return queries
    query_frame, xy = queries
    return Queries(np.asarray(query_frame, dtype=np.int32), np.asarray(xy, dtype=np.float32))


def check_track_inputs(
    frames: np.ndarray, queries: Queries | tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, Queries]:
    """Validate the common tracker inputs; errors say what was expected."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3] RGB, got {frames.dtype} {frames.shape}")
    if frames.shape[0] < 1:
        raise ValueError("frames must hold at least one frame")
    queries = as_queries(queries)
    T, H, W = frames.shape[:3]
    if len(queries):
        qf, xy = queries.query_frame, queries.xy
        if qf.min() < 0 or qf.max() >= T:
            raise ValueError(f"query frames must lie in [0, {T - 1}], got [{qf.min()}, {qf.max()}]")
        if not np.isfinite(xy).all():
            raise ValueError("query points contain NaN or infinite coordinates")
        outside = (xy[:, 0] < 0) | (xy[:, 0] > W - 1) | (xy[:, 1] < 0) | (xy[:, 1] > H - 1)
        if outside.any():
            first = int(np.flatnonzero(outside)[0])
            raise ValueError(
                f"{int(outside.sum())} query point(s) lie outside the {W}x{H} frame "
                f"(e.g. point {first} at {tuple(xy[first].tolist())}); valid x in [0, {W - 1}], y in [0, {H - 1}]"
            )
    return frames, queries


def check_options(tracker: str, options: dict[str, Any], allowed: Iterable[str]) -> None:
    """Reject unknown tracker options with a message listing the valid ones."""
    allowed = sorted(allowed)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"{tracker}: unknown option(s) {', '.join(unknown)}; valid options: {', '.join(allowed)}"
        )
