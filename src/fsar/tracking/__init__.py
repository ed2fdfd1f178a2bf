"""Point tracking for trajectory-based few-shot models (TATs, Kumar et al., ECCV 2024).

* :mod:`~fsar.tracking.trackfile`: the per-video ``.npz`` track file (:class:`TrackFile`);
* :mod:`~fsar.tracking.reference_pickle`: reader for the original TATs pickles;
* :mod:`~fsar.tracking.queries`: query grids and query frames (``uniform_8``), and motion query points
  (:class:`MotionRule`, fsar's own);
* :mod:`~fsar.tracking.filtering`: the "corrected" post-processing and the seeded 256-point subset;
* :mod:`~fsar.tracking.base`: the tracker interface and shared input checks;
* :mod:`~fsar.tracking.registry`: ``TRACKERS`` (``lk``, ``cotracker``), trackers imported lazily;
* :mod:`~fsar.tracking.metrics`: TAP-Vid-style accuracy against ground truth;
* :mod:`~fsar.tracking.runner`: tracking many videos (``fsar track``).
"""

from fsar.tracking.filtering import filter_redundant, mask_before_query, sample_subset, video_rng
from fsar.tracking.metrics import DELTA_THRESHOLDS, TrackingAccuracy, evaluate_tracks
from fsar.tracking.queries import (
    MotionRule,
    Queries,
    build_motion_queries,
    build_queries,
    grid_points,
    query_frames,
)
from fsar.tracking.reference_pickle import read_reference_pickle
from fsar.tracking.registry import TRACKERS, PointTracker
from fsar.tracking.trackfile import SelectedTracks, TrackFile, normalize_tracks, uniform_rows

__all__ = [
    "DELTA_THRESHOLDS",
    "TRACKERS",
    "MotionRule",
    "PointTracker",
    "Queries",
    "SelectedTracks",
    "TrackFile",
    "TrackingAccuracy",
    "build_motion_queries",
    "build_queries",
    "evaluate_tracks",
    "filter_redundant",
    "grid_points",
    "mask_before_query",
    "normalize_tracks",
    "query_frames",
    "read_reference_pickle",
    "sample_subset",
    "uniform_rows",
    "video_rng",
]
