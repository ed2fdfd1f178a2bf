"""Tracker accuracy and speed on the synthetic benchmark (ground-truth trajectories from ``fsar synth``).

Layout read (written by ``fsar synth --out DIR``)::

    DIR/videos/<class>/<video>.mp4
    DIR/trajectories/<class>/<video>.npz   points float32 [T, P, 2] pixel (x, y), pixel-centre convention
                                           visible bool [T, P], frame_size [H, W]

Each ground-truth point is queried at its first visible frame (frame 0 if it is never visible) at its true
position, tracked through every decoded frame, and scored with TAP-Vid's metrics
(:mod:`fsar.tracking.metrics`: mean error and the fraction within 1, 2, 4, 8, 16 px over visible frames after the
query frame, occlusion accuracy). A query lying outside the frame by rounding is clamped into it (counted in
``num_queries_clamped``). Speed: videos per second including decoding, and tracking seconds per video.

Usage::

    python benchmarks/bench_trackers.py --synthetic DIR [--tracker lk] [--tracker lk:fb_threshold=2.0,win_size=21]
        [--limit N] [--out DIR]

Each ``--tracker NAME[:KEY=VALUE,...]`` is one row (values are JSON if they parse, else strings).

writes ``OUT/bench_trackers.json`` and ``OUT/bench_trackers.md``.

**Protocol speed** (``--protocol``): the full TATs recipe of ``fsar track`` (grid queries on 7 frames, LK, the
redundancy filter, the seeded subset; decoding included) on the same videos, today's code side by side with the
code of an earlier revision (``--reference-rev``, loaded with ``git show``: its ``tracking/lk.py`` and
``tracking/filtering.py``, and its runner's decode-then-track steps), alternating per video. Each side runs as an
``fsar track`` worker does: the reference with OpenCV's default threads, today's code with one OpenCV thread (what
``run_tracking`` sets in its workers). Reported: CPU seconds per video (``time.process_time``, all threads), the
rate on two cores with two workers derived from it (2 / CPU s), wall seconds, and how many track files are
identical::

    python benchmarks/bench_trackers.py --synthetic DIR --protocol [--reference-rev REV] [--every 10] \
        [--limit N] [--grid 16] [--points 256] [--skip-radius R] [--tracker lk:...] [--reference-tracker lk:...]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fsar.data.video import open_video
from fsar.tracking.metrics import DELTA_THRESHOLDS, TrackingAccuracy, evaluate_tracks
from fsar.tracking.queries import Queries
from fsar.tracking.registry import TRACKERS
from fsar.tracking.runner import TrackingSettings, track_video, tracker_timeline


def find_pairs(synthetic_dir: Path) -> list[tuple[Path, Path, str]]:
    """(video, trajectory file, video id) for every trajectory file, sorted; a missing video is an error."""
    traj_root, video_root = synthetic_dir / "trajectories", synthetic_dir / "videos"
    if not traj_root.is_dir():
        raise FileNotFoundError(
            f"{traj_root} does not exist; point --synthetic at a `fsar synth --out` folder"
        )
    pairs = []
    for traj in sorted(traj_root.rglob("*.npz")):
        relative = traj.relative_to(traj_root).with_suffix("")
        candidates = sorted(video_root.glob(f"{relative.as_posix()}.*"))
        if not candidates:
            raise FileNotFoundError(f"{traj}: no video {video_root / relative}.* for these trajectories")
        pairs.append((candidates[0], traj, relative.as_posix()))
    return pairs


def load_ground_truth(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("points", "visible", "frame_size") if k not in data.files]
        if missing:
            raise KeyError(
                f"{path}: missing key(s) {', '.join(missing)} (expected points, visible, frame_size)"
            )
        points, visible, size = data["points"], data["visible"], data["frame_size"]
    if points.ndim != 3 or points.shape[2] != 2 or visible.shape != points.shape[:2] or size.shape != (2,):
        raise ValueError(
            f"{path}: expected points [T, P, 2], visible [T, P], frame_size [2], got "
            f"{points.shape}, {visible.shape}, {size.shape}"
        )
    return points.astype(np.float32), visible.astype(bool), (int(size[0]), int(size[1]))


def ground_truth_queries(
    points: np.ndarray, visible: np.ndarray, frame_size: tuple[int, int]
) -> tuple[Queries, int]:
    """Query each point at its first visible frame (0 if never visible); clamp into the frame, count clamps."""
    H, W = frame_size
    first = np.where(visible.any(axis=0), visible.argmax(axis=0), 0).astype(np.int32)
    xy = points[first, np.arange(points.shape[1])]
    clamped = np.stack([np.clip(xy[:, 0], 0, W - 1), np.clip(xy[:, 1], 0, H - 1)], axis=1).astype(np.float32)
    num_clamped = int(np.any(clamped != xy, axis=1).sum())
    return Queries(first, clamped), num_clamped


def bench_tracker(name: str, options: dict[str, Any], pairs: list[tuple[Path, Path, str]]) -> dict[str, Any]:
    tracker = TRACKERS.create(name, **options)
    total = TrackingAccuracy(thresholds=DELTA_THRESHOLDS)
    track_seconds = decode_seconds = 0.0
    num_clamped = 0
    for video_path, traj_path, _video_id in pairs:
        points, visible, frame_size = load_ground_truth(traj_path)
        start = time.perf_counter()
        video = open_video(video_path)
        frames = video.frames(np.arange(video.num_frames))
        decode_seconds += time.perf_counter() - start
        if frames.shape[0] != points.shape[0] or tuple(frames.shape[1:3]) != frame_size:
            raise ValueError(
                f"{video_path}: {frames.shape[0]} frames of {frames.shape[1:3]} but {traj_path} describes "
                f"{points.shape[0]} frames of {frame_size}"
            )
        queries, clamped = ground_truth_queries(points, visible, frame_size)
        num_clamped += clamped
        start = time.perf_counter()
        tracks, vis = tracker.track(frames, queries)
        track_seconds += time.perf_counter() - start
        total = total + evaluate_tracks(tracks, vis, points, visible, queries.query_frame)
    n = len(pairs)
    result = {"tracker": name, "params": tracker.params(), **total.as_dict()}
    result.update(
        num_queries_clamped=num_clamped,
        videos_per_s=n / (track_seconds + decode_seconds) if n else float("nan"),
        track_s_per_video=track_seconds / n if n else float("nan"),
        decode_s_per_video=decode_seconds / n if n else float("nan"),
    )
    return result


# ---------------------------------------------------------------------------------------------- protocol speed
def load_reference(rev: str) -> types.SimpleNamespace:
    """``lk`` and ``filtering`` modules of fsar.tracking at git revision ``rev`` (read with ``git show``)."""
    repo = Path(__file__).resolve().parents[1]
    modules = {}
    for name in ("lk", "filtering"):
        try:
            source = subprocess.run(
                ["git", "-C", str(repo), "show", f"{rev}:src/fsar/tracking/{name}.py"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            raise SystemExit(f"cannot read src/fsar/tracking/{name}.py at revision {rev!r}: {exc}") from None
        module = types.ModuleType(f"fsar_reference_{rev}_{name}")
        sys.modules[module.__name__] = module  # dataclasses look their module up there
        exec(compile(source, f"{rev}:src/fsar/tracking/{name}.py", "exec"), module.__dict__)
        modules[name] = module
    return types.SimpleNamespace(**modules)


def reference_track(path: Path, ref: types.SimpleNamespace, settings: TrackingSettings, video_id: str):
    """The reference revision's recipe: count the frames (one decode), decode the timeline (another), track
    every point forward and backward, mask, filter, subset. Returns (tracks, visibility, sampled ids)."""
    video = open_video(path)
    timeline = tracker_timeline(int(video.num_frames), video.fps, settings.max_fps, path.suffix)
    frames = np.asarray(video.frames(timeline))
    queries = settings.make_queries(frames, video_id)
    tracks, vis = ref.lk.LKTracker(**settings.tracker_options).track(frames, queries)
    vis = ref.filtering.mask_before_query(vis, queries.query_frame)
    keep = ref.filtering.filter_redundant(tracks, vis, queries.query_frame, settings.max_dist)
    sampled = ref.filtering.sample_subset(keep.size, settings.points, ref.filtering.video_rng(0, video_id))
    return tracks[:, keep], vis[:, keep], sampled


def bench_protocol(
    videos: list[Path],
    settings: TrackingSettings,
    rev: str,
    reference_settings: TrackingSettings | None = None,
) -> dict[str, Any]:
    """Both recipes on every video, alternating; CPU and wall seconds per video and identical outputs."""
    ref = load_reference(rev)
    reference_settings = reference_settings or settings
    tracker = settings.create_tracker()
    threads = cv2.getNumThreads()
    cpu = {"reference": 0.0, "new": 0.0}
    wall = {"reference": 0.0, "new": 0.0}
    identical = 0
    kept = {"reference": 0, "new": 0}
    try:
        for path in videos:
            video_id = path.stem
            cv2.setNumThreads(threads)
            c, w = time.process_time(), time.perf_counter()
            old_tracks, old_vis, old_sampled = reference_track(path, ref, reference_settings, video_id)
            cpu["reference"] += time.process_time() - c
            wall["reference"] += time.perf_counter() - w
            cv2.setNumThreads(1)
            c, w = time.process_time(), time.perf_counter()
            new = track_video(path, tracker, settings, video_id=video_id)
            cpu["new"] += time.process_time() - c
            wall["new"] += time.perf_counter() - w
            kept["reference"] += old_tracks.shape[1]
            kept["new"] += new.tracks.shape[1]
            identical += bool(
                old_tracks.shape == new.tracks.shape
                and np.array_equal(old_tracks, new.tracks)
                and np.array_equal(old_vis, new.visibility)
                and np.array_equal(old_sampled, new.sampled_indices)
            )
    finally:
        cv2.setNumThreads(threads)
    n = len(videos)
    sides = {}
    for side in ("reference", "new"):
        sides[side] = {
            "cpu_s_per_video": cpu[side] / n,
            "videos_per_s_two_cores": 2 * n / cpu[side],
            "wall_s_per_video": wall[side] / n,
            "kept_points_per_video": kept[side] / n,
        }
    return {
        "reference_rev": rev,
        "num_videos": n,
        "frame_size": list(np.asarray(open_video(videos[0]).frames([0])).shape[1:3]),
        "settings": {k: v for k, v in settings.file_params(tracker.params()).items()},
        "reference": sides["reference"],
        "new": sides["new"],
        "speedup_cpu": cpu["reference"] / cpu["new"],
        "identical_files": identical,
    }


def protocol_table(result: dict[str, Any]) -> str:
    lines = [
        "| code | CPU s/video | videos/s on 2 cores (2 / CPU s) | wall s/video | kept points/video |",
        "|---|---|---|---|---|",
    ]
    for side in ("reference", "new"):
        r = result[side]
        name = f"revision {result['reference_rev']}" if side == "reference" else "this checkout"
        lines.append(
            f"| {name} | {r['cpu_s_per_video']:.4f} | {r['videos_per_s_two_cores']:.1f} | "
            f"{r['wall_s_per_video']:.4f} | {r['kept_points_per_video']:.1f} |"
        )
    lines.append(
        f"\n{result['num_videos']} videos of {result['frame_size'][0]}x{result['frame_size'][1]}; CPU speed-up "
        f"{result['speedup_cpu']:.2f}x; identical track files {result['identical_files']}/{result['num_videos']}."
    )
    return "\n".join(lines) + "\n"


def markdown_table(results: list[dict[str, Any]]) -> str:
    deltas = [f"delta_{d:g}" for d in DELTA_THRESHOLDS]
    header = ["tracker", "params", "videos", "mean err (px)", *[f"<{d:g}px" for d in DELTA_THRESHOLDS]]
    header += ["avg delta", "occl. acc", "videos/s", "track s/video"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        params = ", ".join(f"{k}={v}" for k, v in sorted(r["params"].items()))
        row = [r["tracker"], params, str(r["num_videos"]), f"{r['mean_error']:.3f}"]
        row += [f"{r[k]:.3f}" for k in deltas]
        row += [f"{r['average_delta']:.3f}", f"{r['occlusion_accuracy']:.3f}"]
        row += [f"{r['videos_per_s']:.2f}", f"{r['track_s_per_video']:.4f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def parse_tracker_spec(text: str) -> tuple[str, dict[str, Any]]:
    """``"lk:fb_threshold=2.0,win_size=21"`` -> ``("lk", {"fb_threshold": 2.0, "win_size": 21})``."""
    name, _, rest = text.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected NAME[:KEY=VALUE,...], got {text!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    if not name:
        raise argparse.ArgumentTypeError(f"expected NAME[:KEY=VALUE,...], got {text!r}")
    return name, options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic", required=True, type=Path, help="a `fsar synth --out` folder")
    parser.add_argument(
        "--tracker",
        action="append",
        default=None,
        type=parse_tracker_spec,
        help="NAME[:KEY=VALUE,...], repeatable, one table row each (default: lk)",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N videos (sorted by path)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_trackers"), help="output folder")
    parser.add_argument("--protocol", action="store_true", help="time the full fsar track recipe instead")
    parser.add_argument(
        "--reference-rev", default="44f8a1e", help="git revision to compare with (--protocol)"
    )
    parser.add_argument(
        "--reference-tracker",
        default=("lk", {}),
        type=parse_tracker_spec,
        help="--protocol: the reference's tracker NAME[:KEY=VALUE,...] (default: lk with its defaults there)",
    )
    parser.add_argument("--every", type=int, default=1, help="take every N-th video (sorted by path)")
    parser.add_argument("--grid", type=int, default=16, help="--protocol: grid side (16, TATs)")
    parser.add_argument("--points", type=int, default=256, help="--protocol: subset size (256, TATs)")
    parser.add_argument("--max-fps", type=float, default=10.0, help="--protocol: tracker timeline fps (10)")
    parser.add_argument(
        "--skip-radius", type=float, default=None, help="--protocol: skip_radius (default: TrackingSettings')"
    )
    args = parser.parse_args(argv)

    pairs = find_pairs(args.synthetic)[:: max(1, args.every)]
    if args.limit is not None:
        pairs = pairs[: args.limit]
    if args.protocol:
        return main_protocol(args, [video for video, _, _ in pairs])
    if not pairs:
        print(f"no trajectories found under {args.synthetic / 'trajectories'}", file=sys.stderr)
        return 1
    results = []
    for name, options in args.tracker or [("lk", {})]:
        results.append(bench_tracker(name, options, pairs))
    report = {
        "synthetic": str(args.synthetic),
        "num_videos": len(pairs),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": sys.version.split()[0],
        },
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_trackers.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = markdown_table(results)
    (args.out / "bench_trackers.md").write_text(
        f"# Tracker accuracy on {args.synthetic} ({len(pairs)} videos)\n\n{table}", encoding="utf-8"
    )
    print(table, end="")
    return 0


def main_protocol(args: argparse.Namespace, videos: list[Path]) -> int:
    name, options = (args.tracker or [("lk", {})])[0]
    extra = {} if args.skip_radius is None else {"skip_radius": args.skip_radius}
    settings = TrackingSettings(
        tracker=name,
        tracker_options=options,
        grid_size=args.grid,
        points=args.points,
        max_fps=args.max_fps,
        **extra,
    )
    ref_name, ref_options = args.reference_tracker
    reference = TrackingSettings(
        tracker=ref_name,
        tracker_options=ref_options,
        grid_size=args.grid,
        points=args.points,
        max_fps=args.max_fps,
    )
    result = bench_protocol(videos, settings, args.reference_rev, reference)
    result["machine"] = {"platform": platform.platform(), "python": sys.version.split()[0]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_tracking_protocol.json").write_text(
        json.dumps(result, indent=2) + "\n", encoding="utf-8"
    )
    table = protocol_table(result)
    (args.out / "bench_tracking_protocol.md").write_text(table, encoding="utf-8")
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
