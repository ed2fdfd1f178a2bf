"""Tracker accuracy against ground-truth trajectories, in the style of TAP-Vid (Doersch et al., "TAP-Vid: A
Benchmark for Tracking Any Point in a Video", NeurIPS 2022 Datasets and Benchmarks).

Evaluated entries are the (frame, point) pairs where the ground truth is visible, restricted (when query frames
are given) to frames strictly after each point's query frame, as in TAP-Vid's "query first" mode (the query
frame itself is trivially exact). On them:

* ``mean_error``: mean Euclidean pixel distance between predicted and true positions;
* ``delta_<d>``: fraction of entries with distance **strictly below** d pixels, d in (1, 2, 4, 8, 16);
  ``average_delta`` is their mean (TAP-Vid's < delta^x_avg >).

``occlusion_accuracy`` is computed over all frames after the query frame (visible or not): the fraction where
the predicted visibility equals the true one.

:class:`TrackingAccuracy` holds sums, so results of several videos add up exactly (``a + b``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DELTA_THRESHOLDS = (1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass
class TrackingAccuracy:
    thresholds: tuple[float, ...] = DELTA_THRESHOLDS
    num_evaluated: int = 0
    sum_error: float = 0.0
    num_within: list[int] = field(default_factory=lambda: [0] * len(DELTA_THRESHOLDS))
    num_occlusion_correct: int = 0
    num_occlusion_evaluated: int = 0
    num_videos: int = 0

    def __add__(self, other: TrackingAccuracy) -> TrackingAccuracy:
        if tuple(self.thresholds) != tuple(other.thresholds):
            raise ValueError(
                f"cannot add accuracies with thresholds {self.thresholds} and {other.thresholds}"
            )
        return TrackingAccuracy(
            thresholds=tuple(self.thresholds),
            num_evaluated=self.num_evaluated + other.num_evaluated,
            sum_error=self.sum_error + other.sum_error,
            num_within=[a + b for a, b in zip(self.num_within, other.num_within)],
            num_occlusion_correct=self.num_occlusion_correct + other.num_occlusion_correct,
            num_occlusion_evaluated=self.num_occlusion_evaluated + other.num_occlusion_evaluated,
            num_videos=self.num_videos + other.num_videos,
        )

    @property
    def mean_error(self) -> float:
        return self.sum_error / self.num_evaluated if self.num_evaluated else float("nan")

    def delta(self, threshold: float) -> float:
        index = list(self.thresholds).index(threshold)
        return self.num_within[index] / self.num_evaluated if self.num_evaluated else float("nan")

    @property
    def average_delta(self) -> float:
        return (
            float(np.mean([self.delta(d) for d in self.thresholds])) if self.num_evaluated else float("nan")
        )

    @property
    def occlusion_accuracy(self) -> float:
        if not self.num_occlusion_evaluated:
            return float("nan")
        return self.num_occlusion_correct / self.num_occlusion_evaluated

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "num_videos": self.num_videos,
            "num_evaluated": self.num_evaluated,
            "mean_error": self.mean_error,
        }
        for d in self.thresholds:
            out[f"delta_{d:g}"] = self.delta(d)
        out["average_delta"] = self.average_delta
        out["occlusion_accuracy"] = self.occlusion_accuracy
        return out


def evaluate_tracks(
    pred_tracks: np.ndarray,
    pred_visibility: np.ndarray,
    gt_tracks: np.ndarray,
    gt_visibility: np.ndarray,
    query_frame: np.ndarray | None = None,
    thresholds: tuple[float, ...] = DELTA_THRESHOLDS,
) -> TrackingAccuracy:
    """Accuracy of one video. Tracks are [T, N, 2] pixel (x, y); visibilities [T, N] bool; query_frame [N]."""
    pred_tracks = np.asarray(pred_tracks, dtype=np.float64)
    gt_tracks = np.asarray(gt_tracks, dtype=np.float64)
    pred_visibility = np.asarray(pred_visibility, dtype=bool)
    gt_visibility = np.asarray(gt_visibility, dtype=bool)
    if pred_tracks.shape != gt_tracks.shape or pred_tracks.ndim != 3 or pred_tracks.shape[2] != 2:
        raise ValueError(f"tracks must both be [T, N, 2], got {pred_tracks.shape} and {gt_tracks.shape}")
    T, N = gt_tracks.shape[:2]
    if pred_visibility.shape != (T, N) or gt_visibility.shape != (T, N):
        raise ValueError(
            f"visibilities must be {(T, N)}, got {pred_visibility.shape} and {gt_visibility.shape}"
        )
    if query_frame is None:
        evaluated = np.ones((T, N), dtype=bool)
    else:
        query_frame = np.asarray(query_frame)
        if query_frame.shape != (N,):
            raise ValueError(f"query_frame must be [{N}], got {query_frame.shape}")
        evaluated = np.arange(T)[:, None] > query_frame[None, :]
    positions = evaluated & gt_visibility
    error = np.linalg.norm(pred_tracks - gt_tracks, axis=-1)[positions]
    if not np.isfinite(error).all():
        raise ValueError(
            "predicted tracks contain NaN or infinite positions where the ground truth is visible"
        )
    return TrackingAccuracy(
        thresholds=tuple(float(d) for d in thresholds),
        num_evaluated=int(error.size),
        sum_error=float(error.sum()),
        num_within=[int((error < d).sum()) for d in thresholds],
        num_occlusion_correct=int((pred_visibility == gt_visibility)[evaluated].sum()),
        num_occlusion_evaluated=int(evaluated.sum()),
        num_videos=1,
    )
