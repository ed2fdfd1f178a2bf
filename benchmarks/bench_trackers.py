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
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from fsar.data.video import open_video
from fsar.tracking.metrics import DELTA_THRESHOLDS, TrackingAccuracy, evaluate_tracks
from fsar.tracking.queries import Queries
from fsar.tracking.registry import TRACKERS


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
    args = parser.parse_args(argv)

    pairs = find_pairs(args.synthetic)
    if args.limit is not None:
        pairs = pairs[: args.limit]
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


if __name__ == "__main__":
    raise SystemExit(main())
