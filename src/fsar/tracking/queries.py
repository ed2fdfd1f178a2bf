"""Query points for offline tracking, as in TATs (Kumar et al., ECCV 2024, `point_tracking/`; tats.md §1).

A ``grid_size x grid_size`` grid of points is queried on each of several query frames:

* ``uniform_K`` (TATs: ``uniform_8``): query frames ``int(linspace(0, T-1, K))[:-1]``, i.e. K-1 frames; the last
  one is dropped. T = 45 gives 0, 6, 12, 18, 25, 31, 37. For short videos (T < K) the linspace repeats frames;
  repeated query frames are merged (a re-query of the same grid on the same frame would be removed by the
  redundancy filter anyway).
* ``beginning``: frame 0 only. ``middle``: frames 0 and T // 2.

Grids (pixel-centre convention, see :mod:`fsar.tracking.trackfile`):

* ``cotracker`` (default, what TATs used): CoTracker's own grid. It is built in CoTracker's 384x512 (H x W)
  working space with a margin of 512/64 = 8 px, ``x = linspace(8, 504, G)``, ``y = linspace(8, 376, G)``,
  row-major (y outer, x inner), and mapped to the image the way CoTracker maps its outputs back:
  ``x_img = x * (W - 1) / 511``, ``y_img = y * (H - 1) / 383``.
* ``pixel``: cell centres of a regular G x G partition of the image, ``x = (i + 0.5) * W / G - 0.5``, same order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

COTRACKER_WORK_SIZE = (384, 512)  # (H, W) of CoTracker's internal resolution
GRID_STYLES = ("cotracker", "pixel")


@dataclass(frozen=True)
class Queries:
    """Points to track: ``query_frame`` int32 [N] (timeline rows) and ``xy`` float32 [N, 2] pixel (x, y)."""

    query_frame: np.ndarray
    xy: np.ndarray

    def __post_init__(self) -> None:
        if self.query_frame.ndim != 1 or self.xy.shape != (self.query_frame.shape[0], 2):
            raise ValueError(
                f"queries need query_frame [N] and xy [N, 2], got {self.query_frame.shape} and {self.xy.shape}"
            )

    def __len__(self) -> int:
        return int(self.query_frame.shape[0])


def query_frames(num_frames: int, query: str = "uniform_8") -> np.ndarray:
    """Sorted, unique query frames (int64) for a timeline of ``num_frames`` rows. See the module docstring."""
    if num_frames < 1:
        raise ValueError(f"cannot choose query frames for a video with {num_frames} frames")
    match = re.fullmatch(r"uniform_(\d+)", query)
    if match:
        chunks = int(match.group(1))
        if chunks < 2:
            raise ValueError(f"query {query!r}: uniform_K needs K >= 2 (K-1 query frames are used)")
        frames = np.linspace(0, num_frames - 1, chunks).astype(np.int64)[:-1]
    elif query == "beginning":
        frames = np.zeros(1, dtype=np.int64)
    elif query == "middle":
        frames = np.array([0, num_frames // 2], dtype=np.int64)
    else:
        raise ValueError(
            f"unknown query type {query!r}; use 'uniform_K' (e.g. uniform_8), 'beginning' or 'middle'"
        )
    return np.unique(frames)


def grid_points(frame_size: tuple[int, int], grid_size: int = 16, style: str = "cotracker") -> np.ndarray:
    """A ``grid_size**2`` x 2 float32 array of pixel (x, y), row-major (y outer). See the module docstring."""
    H, W = int(frame_size[0]), int(frame_size[1])
    if H < 1 or W < 1:
        raise ValueError(f"frame_size must be a positive (H, W), got {frame_size}")
    if grid_size < 1:
        raise ValueError(f"grid_size must be >= 1, got {grid_size}")
    if style == "cotracker":
        work_h, work_w = COTRACKER_WORK_SIZE
        margin = work_w / 64
        if grid_size == 1:  # CoTracker's convention for a single point: the centre of the working space
            xs, ys = np.array([work_w / 2]), np.array([work_h / 2])
        else:
            xs = np.linspace(margin, work_w - margin, grid_size)
            ys = np.linspace(margin, work_h - margin, grid_size)
        xs = xs * (W - 1) / (work_w - 1)
        ys = ys * (H - 1) / (work_h - 1)
    elif style == "pixel":
        xs = (np.arange(grid_size) + 0.5) * W / grid_size - 0.5
        ys = (np.arange(grid_size) + 0.5) * H / grid_size - 0.5
    else:
        raise ValueError(f"unknown grid style {style!r}; use one of {', '.join(GRID_STYLES)}")
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)


def build_queries(
    num_frames: int,
    frame_size: tuple[int, int],
    grid_size: int = 16,
    query: str = "uniform_8",
    grid: str = "cotracker",
) -> Queries:
    """The full grid on every query frame, grouped by query frame in increasing order (TATs' point order)."""
    frames = query_frames(num_frames, query)
    points = grid_points(frame_size, grid_size, grid)
    return Queries(
        query_frame=np.repeat(frames, len(points)).astype(np.int32),
        xy=np.tile(points, (len(frames), 1)),
    )
