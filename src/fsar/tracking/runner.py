"""Offline tracking of many videos into track files (what ``fsar track`` runs), following TATs' recipe
(Kumar et al., ECCV 2024, `point_tracking/`; tats.md §1): grid queries on several frames, the tracker, the
"before query frame" mask, the redundancy filter and a fixed, seeded subset of points per video. Instead of the
grid, ``query_points="motion"`` places the query points where the frame changes
(:func:`fsar.tracking.queries.build_motion_queries`; fsar's own, for small actors such as the synthetic
benchmark's).

**Timeline** (:func:`tracker_timeline`). Like the original, ``.webm`` videos (SSv2) are tracked on every frame;
other videos are resampled to at most ``max_fps`` frames per second: ``n = int(num_frames / fps * max_fps)``
frame indices ``int(linspace(0, num_frames - 1, n))``. Videos whose frame rate is already <= ``max_fps`` or
unknown, and every video when ``max_fps <= 0``, are tracked on every frame (the original would repeat frames of
a slow video; fsar does not). The chosen frame numbers are stored in the file's ``timeline``.

**Outputs.** One ``.npz`` per video (:class:`fsar.tracking.trackfile.TrackFile`), written atomically. A video
whose output already exists, is valid and was made with the same tracker and parameters is skipped. A video
that fails is recorded with its error message and the run goes on (:class:`TrackingReport`).

**Order of work.** With a tracker that tracks forward and backward separately (``lk``), every point is tracked
forward from its query frame, the redundancy filter runs on those rows (the only ones it reads), and only the
kept points are tracked backward: the same files as tracking every point both ways, for about half the work.
``skip_radius`` (default 2 px for ``lk``; fsar's own) also leaves untracked the points queried within that
distance of a visible first-frame trajectory, which the filter would drop (:func:`fsar.tracking.filtering.
first_frame_admit`); 0 gives TATs' filter exactly. Each video is decoded once (``Video.sample``).

**Parallelism.** ``workers > 1`` uses a process pool ("spawn" start method, so no state leaks from the parent);
each worker builds its tracker once and runs OpenCV on one thread. Results do not depend on the number of workers
or the order: the random subset of each video comes from ``(seed, video id)`` only
(:func:`fsar.tracking.filtering.video_rng`).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from fsar.errors import TrackFileError
from fsar.procs import die_with_parent
from fsar.tracking.filtering import (
    filter_redundant,
    first_frame_admit,
    mask_before_query,
    sample_subset,
    video_rng,
)
from fsar.tracking.queries import QUERY_POINTS, MotionRule, Queries, build_motion_queries, build_queries
from fsar.tracking.registry import TRACKERS, PointTracker
from fsar.tracking.semantic import PatchEncoder, SemanticRule
from fsar.tracking.trackfile import TrackFile, canonical_json

# What fsar.data.video reads (kept here as literals so that importing the runner stays light).
VIDEO_SUFFIXES = frozenset({".mp4", ".webm", ".mkv", ".avi", ".mov"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
ALL_FRAMES_SUFFIXES = frozenset({".webm"})  # tracked at native frame rate, as TATs does for SSv2
ERRORS_FILE = "errors.txt"
# Changed no track file on 30 videos of the default synthetic benchmark (grid 16 and grid 8; BENCHMARKS.md).
DEFAULT_SKIP_RADIUS = 2.0

VideoOpener = Callable[[Path], Any]


def open_video_with_fsar_data(path: Path) -> Any:
    """The default video reader: :func:`fsar.data.video.open_video`."""
    from fsar.data.video import open_video

    return open_video(path)


# ---------------------------------------------------------------------------------------------- settings
@dataclass
class TrackingSettings:
    """Everything that determines a track file besides the video (all of it is stored in ``params``)."""

    tracker: str = "lk"
    tracker_options: dict[str, Any] = field(default_factory=dict)
    grid_size: int = 16
    grid: str = "cotracker"
    query: str = "uniform_8"
    points: int = 256
    seed: int = 0
    max_dist: float = 16.0
    max_fps: float = 10.0
    query_points: str = "grid"  # grid (TATs) | motion (fsar.tracking.queries.MotionRule)
    motion: MotionRule = field(default_factory=MotionRule)
    prefer_picked: bool = True  # motion: the subset takes motion picks before grid top-ups
    # > 0: first_frame_admit's shortcut of the redundancy filter (fsar's own); 0: TATs' filter exactly.
    # None: DEFAULT_SKIP_RADIUS for lk (a tracker that tracks forward first), 0 for the others.
    skip_radius: float | None = None
    semantic: SemanticRule = field(default_factory=SemanticRule)  # semantic (Trokens) query points

    def __post_init__(self) -> None:
        if self.query_points not in QUERY_POINTS:
            raise ValueError(
                f"unknown query points {self.query_points!r}; use one of {', '.join(QUERY_POINTS)}"
            )
        if not isinstance(self.motion, MotionRule):
            raise TypeError(f"motion must be a MotionRule, got {type(self.motion).__name__}")
        if self.skip_radius is None:
            lk = self.tracker == "lk" and self.max_dist > DEFAULT_SKIP_RADIUS
            self.skip_radius = DEFAULT_SKIP_RADIUS if lk else 0.0
        if self.skip_radius > 0 and self.tracker != "lk":
            raise ValueError(
                f"skip_radius needs a tracker that tracks forward first (lk); {self.tracker} does not: use 0"
            )
        if not (math.isfinite(self.skip_radius) and 0 <= self.skip_radius < self.max_dist):
            raise ValueError(
                f"skip_radius must be >= 0 and below max_dist ({self.max_dist} px), got {self.skip_radius}"
            )
        if not isinstance(self.semantic, SemanticRule):
            raise TypeError(f"semantic must be a SemanticRule, got {type(self.semantic).__name__}")

    def create_query_encoder(self) -> PatchEncoder | None:
        """The patch-feature encoder of ``semantic`` query points (None for the other kinds)."""
        if self.query_points != "semantic":
            return None
        from fsar.tracking.semantic import load_patch_encoder

        return load_patch_encoder(self.semantic)

    def create_tracker(self) -> PointTracker:
        return TRACKERS.create(self.tracker, **self.tracker_options)

    def make_queries(self, frames: np.ndarray, video_id: str, encoder: PatchEncoder | None = None) -> Queries:
        """The query points of one video's frames (uint8 [T, H, W, 3] on the tracker timeline). ``semantic``
        needs ``encoder`` (:meth:`create_query_encoder`)."""
        if self.query_points == "semantic":
            from fsar.tracking.semantic import build_semantic_queries

            if encoder is None:
                raise ValueError(
                    "semantic query points need the patch encoder (settings.create_query_encoder())"
                )
            return build_semantic_queries(
                frames, encoder, self.semantic, video_rng(self.seed, video_id, stream=2)
            )
        if self.query_points == "motion":
            rng = video_rng(self.seed, video_id, stream=1)
            return build_motion_queries(frames, self.grid_size, self.query, self.grid, self.motion, rng)
        T, H, W = frames.shape[:3]
        return build_queries(T, (H, W), self.grid_size, self.query, self.grid)

    def file_params(self, tracker_params: dict[str, Any]) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.query_points == "semantic":
            extra = {"query_points": "semantic", "semantic": self.semantic.params()}
        elif self.query_points != "grid":  # grid files keep the parameters they always had
            extra = {
                "query_points": self.query_points,
                "motion": self.motion.params(),
                "prefer_picked": bool(self.prefer_picked),
            }
        if self.skip_radius > 0:  # files made without the shortcut keep their parameters
            extra["skip_radius"] = float(self.skip_radius)
        return {
            **extra,
            "tracker": tracker_params,
            "grid_size": int(self.grid_size),
            "grid": self.grid,
            "query": self.query,
            "points": int(self.points),
            "seed": int(self.seed),
            "filter": "corrected",
            "max_dist": float(self.max_dist),
            "max_fps": float(self.max_fps),
            **({"filter": "none"} if self.query_points == "semantic" else {}),
        }


@dataclass(frozen=True)
class TrackJob:
    """One video to track: ``source`` (file or frame folder), ``output`` (.npz) and the ``video_id`` (seed)."""

    source: Path
    output: Path
    video_id: str


@dataclass
class TrackingReport:
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        return (
            f"{len(self.done)} tracked, {len(self.skipped)} already complete, {len(self.failed)} failed "
            f"in {self.seconds:.1f} s"
        )


# ---------------------------------------------------------------------------------------------- discovery
def _is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() for p in path.iterdir())


def find_videos(root: str | os.PathLike[str]) -> list[Path]:
    """Every video file and frame folder (a folder with image files) below ``root``, sorted.

    A frame folder is not searched further. Hidden files and folders (starting with '.') are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"video folder {root} does not exist or is not a folder")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        keep_dirs = []
        for d in dirnames:
            if _is_frame_folder(here / d):
                found.append(here / d)
            else:
                keep_dirs.append(d)
        dirnames[:] = keep_dirs
        found.extend(
            here / f for f in filenames if not f.startswith(".") and Path(f).suffix.lower() in VIDEO_SUFFIXES
        )
    return sorted(found)


def _output_for(relative: Path, out_dir: Path, is_dir: bool) -> Path:
    name = relative.name + ".npz" if is_dir else relative.with_suffix(".npz").name
    return out_dir / relative.parent / name


def _check_unique_outputs(jobs: Sequence[TrackJob]) -> None:
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.output in seen:
            raise ValueError(
                f"{seen[job.output]} and {job.source} would both be tracked into {job.output}; "
                "rename one of them or track them into different --out folders"
            )
        seen[job.output] = job.source


def folder_jobs(videos_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> list[TrackJob]:
    """Jobs for every video below ``videos_dir``: outputs mirror the relative paths (``a/b.mp4 -> a/b.npz``,
    frame folder ``a/c -> a/c.npz``); the video id is the relative path without suffix (``a/b``)."""
    videos_dir, out_dir = Path(videos_dir), Path(out_dir)
    jobs = []
    for source in find_videos(videos_dir):
        relative = source.relative_to(videos_dir)
        is_dir = source.is_dir()
        video_id = relative.as_posix() if is_dir else relative.with_suffix("").as_posix()
        jobs.append(TrackJob(source, _output_for(relative, out_dir, is_dir), video_id))
    _check_unique_outputs(jobs)
    return jobs


def record_jobs(
    records: Iterable[Any], root: str | os.PathLike[str], out_dir: str | os.PathLike[str]
) -> list[TrackJob]:
    """Jobs for benchmark records (``record.path``, ``record.video_id``), each video once.

    Outputs mirror ``record.path`` relative to ``root`` like folder mode (so a video has the same output path in
    both modes); a record outside ``root`` goes to ``<out>/<video_id>.npz``. The video id is ``record.video_id``.
    """
    root, out_dir = Path(root).resolve(), Path(out_dir)
    jobs: list[TrackJob] = []
    seen: set[Path] = set()
    for record in records:
        source = Path(record.path)
        key = source.resolve()
        if key in seen:
            continue
        seen.add(key)
        try:
            relative = key.relative_to(root)
        except ValueError:
            relative = Path(str(record.video_id) + (source.suffix if not source.is_dir() else ""))
        jobs.append(TrackJob(source, _output_for(relative, out_dir, source.is_dir()), str(record.video_id)))
    _check_unique_outputs(jobs)
    return jobs


# ---------------------------------------------------------------------------------------------- one video
def tracker_timeline(num_frames: int, fps: float | None, max_fps: float, suffix: str = "") -> np.ndarray:
    """Frame numbers (int64) to track; see the module docstring."""
    if num_frames < 1:
        raise ValueError(f"the video has {num_frames} frames")
    every = np.arange(num_frames, dtype=np.int64)
    if max_fps <= 0 or suffix.lower() in ALL_FRAMES_SUFFIXES or fps is None:
        return every
    fps = float(fps)
    if not math.isfinite(fps) or fps <= 0 or fps <= max_fps:
        return every
    count = max(1, int(num_frames / fps * max_fps))
    return np.unique(np.linspace(0, num_frames - 1, count).astype(np.int64))


@runtime_checkable
class SplitTracker(Protocol):
    """A tracker that can track forward from the query frames and backward separately
    (:class:`fsar.tracking.lk.LKTracker`). The runner then tracks backward only the points the filter keeps."""

    def track_forward(
        self, frames: np.ndarray, queries: Queries, admit: Any = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def track_backward(self, frames: np.ndarray, queries: Queries) -> tuple[np.ndarray, np.ndarray]: ...


def _track_kept_points(
    frames: np.ndarray, tracker: SplitTracker, settings: TrackingSettings, queries: Queries
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The recipe with a split tracker: forward tracks of every point, the redundancy filter (which reads rows
    at and after the query frames only), then backward tracks of the kept points alone. Gives the tracks,
    the visibility (masked before the query frames) and the kept ids; with ``skip_radius`` 0 they equal the
    plain recipe's (``tracker.track`` on every point, then the filter)."""
    qf = queries.query_frame
    admit = first_frame_admit(qf, settings.skip_radius) if settings.skip_radius > 0 else None
    forward, forward_vis, tracked = tracker.track_forward(frames, queries, admit)
    visibility = mask_before_query(forward_vis, qf)
    keep = filter_redundant(forward, visibility, qf, settings.max_dist, candidates=tracked)
    tracks = forward
    late = keep[qf[keep] > 0]  # points queried on frame 0 have no rows before it
    if late.size:
        kept = Queries(qf[late], queries.xy[late])
        backward, _ = tracker.track_backward(frames, kept)
        before = np.arange(frames.shape[0])[:, None] < qf[late][None, :]
        tracks[:, late] = np.where(before[..., None], backward, forward[:, late])
    return tracks, visibility, keep


def track_frames(
    frames: np.ndarray,
    tracker: PointTracker,
    settings: TrackingSettings,
    *,
    video_id: str,
    timeline: np.ndarray | None = None,
    fps: float | None = None,
    encoder: PatchEncoder | None = None,
) -> TrackFile:
    """Track decoded frames (uint8 [T, H, W, 3]) with the full recipe and return the track file.

    Semantic query points (``encoder`` needed) keep every track (no redundancy filter, as Trokens), store the
    cluster ids, and their fixed subset is a seeded :func:`fsar.data.trackfile.cluster_sample` (unique ids,
    topped up uniformly from the other points when clusters are small)."""
    T, H, W = frames.shape[:3]
    timeline = np.arange(T, dtype=np.int64) if timeline is None else np.asarray(timeline, dtype=np.int64)
    queries = settings.make_queries(frames, video_id, encoder)
    cluster_id = None
    if queries.cluster is not None:  # semantic: every track kept, both directions (no redundancy filter)
        tracks, visibility = tracker.track(frames, queries)
        visibility = mask_before_query(visibility, queries.query_frame)
        keep = np.arange(len(queries), dtype=np.int64)
        cluster_id = queries.cluster.astype(np.int32)
        sampled = semantic_subset(cluster_id, settings.points, video_rng(settings.seed, video_id))
    else:
        if isinstance(tracker, SplitTracker):
            tracks, visibility, keep = _track_kept_points(frames, tracker, settings, queries)
        else:
            if settings.skip_radius > 0:
                raise ValueError(
                    f"skip_radius needs a tracker that tracks forward first (lk); {tracker.name} does not"
                )
            tracks, visibility = tracker.track(frames, queries)
            visibility = mask_before_query(visibility, queries.query_frame)
            keep = filter_redundant(tracks, visibility, queries.query_frame, settings.max_dist)
        preferred = queries.picked[keep] if settings.prefer_picked and queries.picked is not None else None
        sampled = sample_subset(keep.size, settings.points, video_rng(settings.seed, video_id), preferred)
    return TrackFile(
        tracks=np.ascontiguousarray(tracks[:, keep], dtype=np.float32),
        visibility=np.ascontiguousarray(visibility[:, keep]),
        query_frame=queries.query_frame[keep].astype(np.int32),
        frame_size=(H, W),
        timeline=timeline,
        fps=math.nan if fps is None or not math.isfinite(float(fps)) or fps <= 0 else float(fps),
        tracker=tracker.name,
        params=settings.file_params(tracker.params()),
        sampled_indices=sampled,
        num_points_total=len(queries),
        video_id=video_id,
        cluster_id=cluster_id,
    )


def semantic_subset(cluster_id: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """The fixed subset of a semantic track file: the unique ids of a :func:`cluster_sample` draw, topped up with
    ids drawn uniformly from the others to ``count`` distinct ids; sorted (int64). Too few points is an error."""
    from fsar.data.trackfile import cluster_sample

    total = int(np.asarray(cluster_id).size)
    if total < count:
        raise ValueError(
            f"only {total} semantic query points but {count} were requested; use more clusters or points per "
            "cluster (--semantic-option clusters=..., points_per_cluster=...) or fewer points (--points)"
        )
    chosen = np.unique(cluster_sample(cluster_id, count, rng))
    rest = np.setdiff1d(np.arange(total), chosen)
    extra = rng.choice(rest, size=count - chosen.size, replace=False)
    return np.sort(np.concatenate([chosen, extra])).astype(np.int64)


def track_video(
    source: str | os.PathLike[str],
    tracker: PointTracker,
    settings: TrackingSettings,
    *,
    video_id: str,
    video_opener: VideoOpener | None = None,
    encoder: PatchEncoder | None = None,
) -> TrackFile:
    """Decode ``source`` on its tracker timeline and track it (``encoder``: semantic query points)."""
    source = Path(source)
    video = (video_opener or open_video_with_fsar_data)(source)
    suffix = "" if source.is_dir() else source.suffix
    fps = video.fps

    def choose(num_frames: int) -> np.ndarray:
        return tracker_timeline(int(num_frames), fps, settings.max_fps, suffix)

    if hasattr(video, "sample"):  # fsar's readers count the frames and decode them in one pass
        timeline, frames, _ = video.sample(choose)
        timeline = np.asarray(timeline, dtype=np.int64)
    else:
        timeline = choose(video.num_frames)
        frames = video.frames(timeline)
    frames = np.asarray(frames)
    if (
        frames.dtype != np.uint8
        or frames.ndim != 4
        or frames.shape[0] != timeline.size
        or frames.shape[3] != 3
    ):
        raise ValueError(
            f"{source}: the reader returned frames {frames.dtype} {frames.shape}, "
            f"expected uint8 [{timeline.size}, H, W, 3]"
        )
    return track_frames(
        frames, tracker, settings, video_id=video_id, timeline=timeline, fps=video.fps, encoder=encoder
    )


def is_complete(output: Path, tracker_name: str, params: dict[str, Any], video_id: str | None = None) -> bool:
    """True if ``output`` is a valid track file made by ``tracker_name`` with exactly ``params`` (and, if given,
    for ``video_id``, which seeds the subset)."""
    if not output.is_file():
        return False
    try:
        existing = TrackFile.load(output)
    except TrackFileError:
        return False
    if video_id is not None and existing.video_id != video_id:
        return False
    return existing.tracker == tracker_name and existing.params_json == canonical_json(params)


# ---------------------------------------------------------------------------------------------- many videos
_WORKER_STATE: dict[str, Any] = {}


def _init_worker(settings: TrackingSettings, video_opener: VideoOpener | None) -> None:
    die_with_parent()
    import cv2

    cv2.setNumThreads(1)  # the workers are the parallelism; OpenCV's own threads only add overhead here
    _WORKER_STATE["tracker"] = settings.create_tracker()
    _WORKER_STATE["encoder"] = settings.create_query_encoder()
    _WORKER_STATE["settings"] = settings
    _WORKER_STATE["opener"] = video_opener


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _run_job(job: TrackJob) -> tuple[TrackJob, str | None]:
    """Track one job in a worker; returns (job, error message or None)."""
    try:
        track_file = track_video(
            job.source,
            _WORKER_STATE["tracker"],
            _WORKER_STATE["settings"],
            video_id=job.video_id,
            video_opener=_WORKER_STATE["opener"],
            encoder=_WORKER_STATE.get("encoder"),
        )
        track_file.save(job.output)
    except Exception as exc:  # one bad video must not stop the others; the message is reported
        return job, _one_line(exc)
    return job, None


def benchmark_jobs(
    bench: Any,
    splits: Sequence[str],
    out_dir: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
) -> tuple[list[TrackJob], list]:
    """Jobs for every present video of ``bench``'s ``splits`` (a ``fsar.data.benchmarks.Benchmark``), and the
    records whose video is missing (reported by the caller, never skipped silently). Outputs mirror the videos'
    paths under ``root`` (default ``bench.root``)."""
    records, missing = [], []
    for name in splits:
        for record in bench.split(name).records:
            (missing if record.path is None else records).append(record)
    return record_jobs(records, bench.root if root is None else root, out_dir), missing


def run_tracking(
    jobs: Sequence[TrackJob],
    settings: TrackingSettings,
    *,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
    video_opener: VideoOpener | None = None,
) -> TrackingReport:
    """Track every job (skipping complete outputs unless ``overwrite``) and report what happened.

    ``video_opener`` (path -> object with ``num_frames``, ``fps``, ``frames(indices)``) defaults to
    :func:`fsar.data.video.open_video`; with ``workers > 1`` it must be picklable (a module-level function).
    """
    from fsar.progress import progress_bar

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    start = time.perf_counter()
    tracker = settings.create_tracker()  # fails early on bad options, and gives the params to compare
    params = settings.file_params(tracker.params())
    report = TrackingReport()
    todo = []
    for job in jobs:
        if not overwrite and is_complete(job.output, tracker.name, params, job.video_id):
            report.skipped.append(job.output)
        else:
            todo.append(job)
    with progress_bar(
        len(jobs), "track", "videos", initial=len(report.skipped), enabled=progress, stream=sys.stderr
    ) as bar:

        def record(job: TrackJob, error: str | None) -> None:
            if error is None:
                report.done.append(job.output)
            else:
                report.failed.append((job.source, error))
            bar.update(1)

        if workers == 1 or len(todo) <= 1:
            encoder = settings.create_query_encoder()
            _WORKER_STATE.update(tracker=tracker, settings=settings, opener=video_opener, encoder=encoder)
            try:
                for job in todo:
                    record(*_run_job(job))
            finally:
                _WORKER_STATE.clear()
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                max_workers=min(workers, len(todo)),
                mp_context=context,
                initializer=_init_worker,
                initargs=(settings, video_opener),
            ) as pool:
                futures = {pool.submit(_run_job, job): job for job in todo}
                for future in as_completed(futures):
                    try:
                        record(*future.result())
                    except Exception as exc:  # the worker process itself died
                        record(futures[future], f"worker failed: {_one_line(exc)}")
    report.seconds = time.perf_counter() - start
    report.failed.sort(key=lambda item: str(item[0]))
    return report


def write_error_report(report: TrackingReport, out_dir: str | os.PathLike[str]) -> Path | None:
    """Write ``<out>/errors.txt`` (one ``<video>: <error>`` line each) if anything failed; otherwise remove a
    stale one from an earlier run. Returns the path written, or None."""
    path = Path(out_dir) / ERRORS_FILE
    if not report.failed:
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{source}: {message}\n" for source, message in report.failed), encoding="utf-8")
    os.replace(tmp, path)
    return path
