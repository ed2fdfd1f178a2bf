"""The ``TRACKERS`` registry: ``lk`` (OpenCV Lucas-Kanade) and ``cotracker`` (CoTracker), built by name.

The interface (:class:`PointTracker`) and the shared input checks live in :mod:`fsar.tracking.base`; they are
re-exported here. Each factory imports its tracker module when called, and the tracker modules import only
:mod:`fsar.tracking.base`, so the registry and the trackers do not import each other.
"""

from __future__ import annotations

from typing import Any

from fsar.registry import Registry
from fsar.tracking.base import PointTracker, as_queries, check_options, check_track_inputs

__all__ = ["TRACKERS", "PointTracker", "as_queries", "check_options", "check_track_inputs"]

TRACKERS: Registry[PointTracker] = Registry("tracker")


@TRACKERS.register("lk")
def _create_lk(**options: Any) -> PointTracker:
    from dataclasses import fields

    from fsar.tracking.lk import LKTracker

    check_options("lk", options, (f.name for f in fields(LKTracker)))
    return LKTracker(**options)


@TRACKERS.register("cotracker")
def _create_cotracker(**options: Any) -> PointTracker:
    import inspect

    from fsar.tracking.cotracker import CoTrackerTracker

    allowed = [
        n for n in inspect.signature(CoTrackerTracker.__init__).parameters if n not in ("self", "predictor")
    ]
    check_options("cotracker", options, allowed)
    return CoTrackerTracker(**options)
