"""Adapter for CoTracker2/3 (Karaev et al., "CoTracker: It is Better to Track Together", ECCV 2024, and
"CoTracker3: Simpler and Better Point Tracking by Pseudo-Labelling Real Videos", 2024), the tracker TATs used.

fsar never downloads anything: the ``cotracker`` package must be importable (it is not on PyPI; install it from
a local clone of https://github.com/facebookresearch/co-tracker with ``pip install -e <clone>``) and the
checkpoint must be a local file (e.g. ``scaled_offline.pth`` for CoTracker3 offline, ``cotracker2.pth``).

Interface followed (``cotracker.predictor.CoTrackerPredictor``): a torch module called as
``predictor(video, queries=queries, backward_tracking=...)`` with ``video`` float [1, T, 3, H, W] in 0..255 and
``queries`` float [1, N, 3] rows (t, x, y) in pixels, returning ``(tracks [1, T, N, 2], visibility [1, T, N])``
(visibility may also come as [1, T, N, 1] or as probabilities, which are thresholded at
``visibility_threshold``).

Like TATs' script, each query frame gets its own full-video call (CoTracker tracks the points of one call
jointly, so the grouping matters). One difference: TATs asked CoTracker for its grid (``grid_size``,
``grid_query_frame``), while this adapter passes explicit query points, for which CoTracker's predictor adds its
6x6 support grid; the two can differ slightly.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from fsar.tracking.base import check_track_inputs
from fsar.tracking.queries import Queries

INSTALL_HINT = (
    "install it from a local clone of https://github.com/facebookresearch/co-tracker "
    "(`pip install -e /path/to/co-tracker`); fsar never downloads code or weights"
)


class CoTrackerTracker:
    """CoTracker through its predictor. The model is built on the first :meth:`track` call.

    checkpoint:           local path of the CoTracker weights (required unless ``predictor`` is given).
    device:               torch device string for the model and the video (default "cpu").
    backward_tracking:    also track backwards from each query frame (positions before it); TATs masks them.
    predictor_kwargs:     extra keyword arguments of ``CoTrackerPredictor`` (e.g. ``{"offline": True,
                          "window_len": 60}`` for CoTracker3 offline, ``{"window_len": 8}`` for CoTracker2).
    visibility_threshold: threshold applied when the predictor returns probabilities instead of booleans.
    predictor:            an already-built module with the predictor interface (then nothing is imported).
    """

    name = "cotracker"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        *,
        device: str = "cpu",
        backward_tracking: bool = False,
        predictor_kwargs: dict[str, Any] | None = None,
        visibility_threshold: float = 0.5,
        predictor: Any = None,
    ) -> None:
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.device = device
        self.backward_tracking = bool(backward_tracking)
        self.predictor_kwargs = dict(predictor_kwargs or {})
        self.visibility_threshold = float(visibility_threshold)
        self._predictor = predictor
        if predictor is None:
            self._predictor_class()  # fail early (package missing) before any video is decoded
            if self.checkpoint is None:
                raise ValueError(
                    "cotracker: a local checkpoint path is required (tracker option checkpoint=PATH, "
                    "or `fsar track --checkpoint PATH`)"
                )
            if not self.checkpoint.is_file():
                raise FileNotFoundError(
                    f"cotracker: checkpoint {self.checkpoint} does not exist; download the CoTracker weights "
                    "yourself and pass their local path (fsar never downloads weights)"
                )

    def params(self) -> dict[str, Any]:
        return {
            "checkpoint": None if self.checkpoint is None else self.checkpoint.name,
            "backward_tracking": self.backward_tracking,
            "predictor_kwargs": self.predictor_kwargs,
            "visibility_threshold": self.visibility_threshold,
        }

    @staticmethod
    def _predictor_class() -> Any:
        try:
            module = importlib.import_module("cotracker.predictor")
        except ModuleNotFoundError as exc:
            if exc.name not in ("cotracker", "cotracker.predictor"):
                raise  # a dependency of cotracker itself is missing: show the real error
            raise ModuleNotFoundError(
                f"cotracker: the Python package 'cotracker' is not importable; {INSTALL_HINT}",
                name="cotracker",
            ) from None
        try:
            return module.CoTrackerPredictor
        except AttributeError:
            raise ImportError(
                f"cotracker: {module.__name__} has no CoTrackerPredictor; use CoTracker 2 or 3 ({INSTALL_HINT})"
            ) from None

    def _get_predictor(self) -> Any:
        if self._predictor is None:
            predictor_class = self._predictor_class()
            self._predictor = predictor_class(checkpoint=str(self.checkpoint), **self.predictor_kwargs)
            self._predictor = self._predictor.to(self.device).eval()
        return self._predictor

    def track(
        self, frames: np.ndarray, queries: Queries | tuple[np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        frames, queries = check_track_inputs(frames, queries)
        T, N = frames.shape[0], len(queries)
        tracks = np.zeros((T, N, 2), dtype=np.float32)
        vis = np.zeros((T, N), dtype=bool)
        if N == 0:
            return tracks, vis
        predictor = self._get_predictor()
        video = (
            torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)[None].float().to(self.device)
        )
        for q in np.unique(queries.query_frame):
            ids = np.flatnonzero(queries.query_frame == q)
            rows = np.concatenate(
                [np.full((ids.size, 1), float(q)), queries.xy[ids].astype(np.float64)], axis=1
            )
            query_tensor = torch.from_numpy(rows).float()[None].to(self.device)
            with torch.no_grad():
                out_tracks, out_vis = predictor(
                    video, queries=query_tensor, backward_tracking=self.backward_tracking
                )
            out_tracks = out_tracks.detach().float().cpu().numpy()
            out_vis = out_vis.detach().cpu()
            if out_vis.ndim == 4 and out_vis.shape[-1] == 1:
                out_vis = out_vis[..., 0]
            if out_tracks.shape != (1, T, ids.size, 2) or tuple(out_vis.shape) != (1, T, ids.size):
                raise RuntimeError(
                    f"cotracker: the predictor returned tracks {tuple(out_tracks.shape)} and visibility "
                    f"{tuple(out_vis.shape)}, expected (1, {T}, {ids.size}, 2) and (1, {T}, {ids.size})"
                )
            if out_vis.dtype != torch.bool:
                out_vis = out_vis.float() > self.visibility_threshold
            tracks[:, ids] = out_tracks[0]
            vis[:, ids] = out_vis[0].numpy()
        if not np.isfinite(tracks).all():
            raise RuntimeError("cotracker: the predictor returned NaN or infinite positions")
        return tracks, vis
