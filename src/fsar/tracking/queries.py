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

Where the points go on each query frame (``query_points``):

* ``grid`` (default, TATs): the grid above on every query frame.
* ``semantic`` (Trokens, ICCV 2025; :mod:`fsar.tracking.semantic`): clusters of a backbone's patch features, per
  cluster a peak frame and k-means query points; each point carries its cluster id.
* ``motion`` (fsar's own, not in TATs; :class:`MotionRule`, :func:`build_motion_queries`): the same number of
  points per query frame (``grid_size**2``), placed on what moves. For query row q the *motion map* is the
  per-pixel absolute difference ``max over RGB channels |I_q - R|`` (grey levels) to a reference R:

  - ``median`` (default): the per-pixel temporal median of the whole timeline, i.e. the background of a static
    shot (background subtraction). It marks the moving object itself, also on frames where it pauses, as long
    as it rests at one place for less than half of the video;
  - ``neighbours``: the mean of the differences to rows q - gap and q + gap (frame differencing). It marks the
    object's leading *and* trailing edges, so about half of its points land on the background just uncovered.

  The map is smoothed with a Gaussian of ``sigma`` pixels, then eroded (grey-level minimum over a disk of
  ``erode`` pixels) so that points stay off the edges of moving regions. Points are picked greedily at the pixel
  centres of largest motion (ties: the first in row-major order) with at least ``spacing`` pixels between any
  two (non-maximum suppression), among pixels whose motion is at least ``threshold``. If fewer than
  ``grid_size**2`` pixels qualify (nothing moves, a small object), the rest comes from the grid: grid points at
  least ``spacing`` from every picked point first, then the others, each group in a seeded random order. The
  runner's point subset then takes picked points before grid top-ups (``TrackingSettings.prefer_picked``).
  Measured on the synthetic benchmark in BENCHMARKS.md (`benchmarks/track_actor_coverage.py`); the defaults
  are the best setting found there (64x64 videos). Camera motion makes every pixel "move": use ``grid`` there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

COTRACKER_WORK_SIZE = (384, 512)  # (H, W) of CoTracker's internal resolution
GRID_STYLES = ("cotracker", "pixel")
QUERY_POINTS = ("grid", "motion", "semantic")  # semantic: fsar.tracking.semantic (Trokens)


@dataclass(frozen=True)
class Queries:
    """Points to track: ``query_frame`` int32 [N] (timeline rows) and ``xy`` float32 [N, 2] pixel (x, y).

    ``picked`` (bool [N], optional): which points the ``motion`` rule picked (False: grid top-ups); the runner's
    subset prefers them. Trackers ignore it. ``cluster`` (int32 [N], optional): the semantic cluster of each point
    (:mod:`fsar.tracking.semantic`), stored in the track file; trackers ignore it too.
    """

    query_frame: np.ndarray
    xy: np.ndarray
    picked: np.ndarray | None = None
    cluster: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.query_frame.ndim != 1 or self.xy.shape != (self.query_frame.shape[0], 2):
            raise ValueError(
                f"queries need query_frame [N] and xy [N, 2], got {self.query_frame.shape} and {self.xy.shape}"
            )
        if self.picked is not None and (
            self.picked.dtype != np.bool_ or self.picked.shape != self.query_frame.shape
        ):
            raise ValueError(
                f"queries: picked must be bool [N] like query_frame, got {self.picked.dtype} {self.picked.shape}"
            )

        if self.cluster is not None and (
            self.cluster.dtype != np.int32 or self.cluster.shape != self.query_frame.shape
        ):
            raise ValueError(
                f"queries: cluster must be int32 [N] like query_frame, got {self.cluster.dtype} {self.cluster.shape}"
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


# ---------------------------------------------------------------------------------------------- motion rule
REFERENCES = ("neighbours", "median")


@dataclass(frozen=True)
class MotionRule:
    """Settings of the ``motion`` query points (module docstring).

    ``reference``: what frame q is compared with: ``neighbours`` (rows q - gap and q + gap) or ``median`` (the
    per-pixel temporal median of the timeline: the static background). ``gap``: rows to the neighbours.
    ``sigma``: Gaussian smoothing of the motion map (pixels; 0 = none). ``erode``: grey-level erosion of the map
    by a disk of this radius (pixels; 0 = none), so that a pixel scores the least change around it (keeps points
    off the edges of moving regions). ``spacing``: minimum distance between picked points (pixels; 0 = none).
    ``threshold``: least motion of a picked pixel (grey levels, > 0).
    """

    reference: str = "median"
    gap: int = 1
    sigma: float = 1.0
    erode: int = 1
    spacing: float = 2.0
    threshold: float = 20.0

    def __post_init__(self) -> None:
        if self.reference not in REFERENCES:
            raise ValueError(
                f"motion queries: unknown reference {self.reference!r}; use one of {', '.join(REFERENCES)}"
            )
        for name in ("gap", "erode"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (1 if name == "gap" else 0):
                raise ValueError(
                    f"motion queries: {name} must be an integer >= {int(name == 'gap')}, got {value!r}"
                )
        for name in ("sigma", "spacing"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"motion queries: {name} must be a finite number >= 0 pixels, got {value!r}")
        if not (
            isinstance(self.threshold, (int, float)) and math.isfinite(self.threshold) and self.threshold > 0
        ):
            raise ValueError(f"motion queries: threshold must be > 0 grey levels, got {self.threshold!r}")

    def params(self) -> dict[str, float | int | str]:
        return {
            "reference": self.reference,
            "gap": int(self.gap),
            "sigma": float(self.sigma),
            "erode": int(self.erode),
            "spacing": float(self.spacing),
            "threshold": float(self.threshold),
        }


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[0] < 1:
        raise ValueError(
            f"frames must be uint8 [T, H, W, 3] RGB with T >= 1, got {frames.dtype} {frames.shape}"
        )
    return frames


def temporal_median(frames: np.ndarray) -> np.ndarray:
    """float32 [H, W, 3]: the per-pixel median over time (the background of a static shot)."""
    return np.median(_check_frames(frames), axis=0).astype(np.float32)


def motion_map(
    frames: np.ndarray, row: int, rule: MotionRule | None = None, background: np.ndarray | None = None
) -> np.ndarray:
    """float32 [H, W]: how much row ``row`` changes (module docstring and :class:`MotionRule`). ``background``
    (the :func:`temporal_median`, for ``reference="median"``) is computed when not given. A one-frame video has
    no neighbours: its ``neighbours`` map is all zeros."""
    import cv2  # only the motion rule needs OpenCV; grid queries stay light to import

    frames = _check_frames(frames)
    rule = rule or MotionRule()
    T = frames.shape[0]
    if not 0 <= row < T:
        raise ValueError(f"row {row} is outside the video's {T} frames")
    here = frames[row].astype(np.float32)
    if rule.reference == "median":
        background = temporal_median(frames) if background is None else background
        score = np.abs(here - background).max(axis=2)
    else:
        neighbours = [n for n in (row - rule.gap, row + rule.gap) if 0 <= n < T]
        score = np.zeros(frames.shape[1:3], dtype=np.float32)
        for n in neighbours:
            score += np.abs(here - frames[n].astype(np.float32)).max(axis=2)
        if neighbours:
            score /= len(neighbours)
    score = score.astype(np.float32)
    if rule.sigma > 0:
        score = cv2.GaussianBlur(score, (0, 0), float(rule.sigma), borderType=cv2.BORDER_REFLECT)
    if rule.erode > 0:
        size = 2 * rule.erode + 1
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        score = cv2.erode(score, disk, borderType=cv2.BORDER_REFLECT)
    return score


def pick_peaks(score: np.ndarray, count: int, spacing: float, threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression on ``score`` [H, W]: up to ``count`` pixel centres (x, y) float32 [n, 2],
    in order of decreasing score (ties: row-major order), each with ``score >= threshold`` and at least
    ``spacing`` pixels (Euclidean) from every earlier pick."""
    score = np.asarray(score, dtype=np.float32)
    if score.ndim != 2:
        raise ValueError(f"score must be [H, W], got shape {score.shape}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    H, W = score.shape
    flat = score.ravel()
    candidates = np.flatnonzero(flat >= threshold)
    order = candidates[np.argsort(-flat[candidates], kind="stable")]
    radius = int(math.ceil(spacing)) - 1  # integer offsets with distance < spacing are within this box
    disk = None
    if spacing > 0 and radius >= 0:
        dy, dx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
        disk = dx.astype(np.float64) ** 2 + dy.astype(np.float64) ** 2 < float(spacing) ** 2
    blocked = np.zeros((H, W), dtype=bool)
    picked: list[int] = []
    for index in order:
        if len(picked) >= count:
            break
        y, x = divmod(int(index), W)
        if blocked[y, x]:
            continue
        picked.append(int(index))
        if disk is not None:
            y0, y1, x0, x1 = y - radius, y + radius + 1, x - radius, x + radius + 1
            sub = disk[
                max(0, -y0) : disk.shape[0] - max(0, y1 - H), max(0, -x0) : disk.shape[1] - max(0, x1 - W)
            ]
            blocked[max(0, y0) : min(H, y1), max(0, x0) : min(W, x1)] |= sub
    ys, xs = np.divmod(np.asarray(picked, dtype=np.int64), W)
    return np.stack([xs, ys], axis=1).astype(np.float32).reshape(-1, 2)


def top_up_from_grid(
    picked: np.ndarray, grid: np.ndarray, count: int, spacing: float, rng: np.random.Generator
) -> np.ndarray:
    """``picked`` [n, 2] completed to ``count`` points with grid points: those at least ``spacing`` from every
    picked point first, then the others, each group in a random order drawn from ``rng``. Never more points than
    ``n + len(grid)``."""
    picked = np.asarray(picked, dtype=np.float32).reshape(-1, 2)
    missing = count - len(picked)
    if missing <= 0:
        return picked[:count]
    grid = np.asarray(grid, dtype=np.float32).reshape(-1, 2)
    if len(picked):
        dist = np.sqrt(((grid[:, None, :] - picked[None, :, :]) ** 2).sum(axis=-1)).min(axis=1)
        far = dist >= spacing
    else:
        far = np.ones(len(grid), dtype=bool)
    first, second = np.flatnonzero(far), np.flatnonzero(~far)
    order = np.concatenate([rng.permutation(first), rng.permutation(second)])[:missing]
    return np.concatenate([picked, grid[order]], axis=0)


def build_motion_queries(
    frames: np.ndarray,
    grid_size: int = 16,
    query: str = "uniform_8",
    grid: str = "cotracker",
    rule: MotionRule | None = None,
    rng: np.random.Generator | None = None,
) -> Queries:
    """``grid_size**2`` points per query frame placed by the ``motion`` rule (module docstring), grouped by query
    frame in increasing order; within a frame, motion picks by decreasing motion, then grid top-ups.

    ``rng`` (required; e.g. :func:`fsar.tracking.filtering.video_rng`) orders the grid top-ups.
    """
    frames = _check_frames(frames)
    if rng is None:
        raise ValueError("build_motion_queries needs rng (a seeded numpy Generator) for the grid top-up")
    rule = rule or MotionRule()
    T, H, W = frames.shape[:3]
    count = int(grid_size) ** 2
    grid_xy = grid_points((H, W), grid_size, grid)
    background = temporal_median(frames) if rule.reference == "median" else None
    all_frames, all_xy, all_picked = [], [], []
    for q in query_frames(T, query):
        score = motion_map(frames, int(q), rule, background)
        picked = pick_peaks(score, count, rule.spacing, rule.threshold)
        xy = top_up_from_grid(picked, grid_xy, count, rule.spacing, rng)
        all_frames.append(np.full(len(xy), q, dtype=np.int32))
        all_xy.append(xy)
        all_picked.append(np.arange(len(xy)) < len(picked))
    return Queries(
        query_frame=np.concatenate(all_frames),
        xy=np.concatenate(all_xy).astype(np.float32),
        picked=np.concatenate(all_picked),
    )
