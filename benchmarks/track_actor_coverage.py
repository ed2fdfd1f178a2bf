"""How often TATs' point tracks sample the actor, with the synthetic benchmark's exact ground truth.

For a subset of a synthetic benchmark (every ``--every``-th video of ``SynthConfig.preset(--preset)``, or of the
config in ``DIR/meta.json`` when ``DIR`` is a full ``fsar synth`` folder), each video is decoded on the tracker
timeline and tracked exactly as ``fsar track`` does (:func:`fsar.tracking.runner.track_frames`), once per
setting (``--row``). The video's scene is re-rendered in memory (:func:`fsar.data.synthetic.render.render_clip`,
a pure function of the config), which gives the actor's visible-pixel mask per frame and the pose of every body.

Measures over the fixed point subset of each track file, on the *existing* point-frames (timeline rows at or
after each point's query frame, the ones TATs' query mask lets through):

* ``visible``: the fraction marked visible by the tracker;
* ``vis on actor``: of the visible ones, the fraction whose position lies in the rendered actor mask (the pixel
  ``(round(y), round(x))``); ``vis near gt``: the same with the findings' proxy (within 4 px of a visible
  ground-truth actor point);
* ``all on actor``: visible and in the actor mask, over all existing point-frames;
* ``pos on actor``: position in the actor mask whatever the visibility, over all existing point-frames (what
  TATs samples: without ``mask_occluded`` it reads features at lost points' held positions too);
  ``every row``: the same over all point-frames, rows before the query frame included (the tracker's backward
  positions: TATs' frame descriptors average every point's token, masked ones included);
* ``frames >=1``: timeline rows with at least one visible point in the actor mask;
* ``model rows``: ``pos on actor`` on the 8 rows TATs reads (:func:`fsar.data.trackfile.uniform_rows`);
* tracking error: every query point's true trajectory follows the body on top at its query pixel (background,
  actor or a distractor; the rigid pose of that body), visible where no body above it covers it; TAP-Vid metrics
  (:mod:`fsar.tracking.metrics`) over the sampled points (mean error, average delta, occlusion accuracy) and over
  the sampled points queried on the actor;
* ``track time``: tracking seconds per video (queries, tracker, filter; not decoding) as a ratio to the first row.

Usage::

    python benchmarks/track_actor_coverage.py --synthetic /tmp/cov --render --every 15 \\
        --row "grid:grid_size=8,points=64" --row "motion:grid_size=8,points=64,query_points=motion"

``--render`` writes the selected videos that are missing (videos + trajectories, like ``fsar synth``) into DIR.
A row is ``NAME:KEY=VALUE,...`` with keys of :class:`fsar.tracking.runner.TrackingSettings`, ``lk.KEY`` for a
tracker option and ``motion.KEY`` for a :class:`fsar.tracking.queries.MotionRule` field (values are JSON if they
parse). Writes ``OUT/track_actor_coverage.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from fsar.data.synthetic import SynthConfig
from fsar.data.synthetic.classes import ClassDef, build_classes
from fsar.data.synthetic.generate import is_complete, video_path, write_video_files
from fsar.data.synthetic.render import RenderedVideo, render_clip
from fsar.data.synthetic.shapes import inside_shape
from fsar.data.trackfile import uniform_rows
from fsar.data.video import open_video
from fsar.tracking.metrics import DELTA_THRESHOLDS, TrackingAccuracy, evaluate_tracks
from fsar.tracking.queries import MotionRule
from fsar.tracking.runner import TrackingSettings, track_frames, tracker_timeline

NEAR_GT_PX = 4.0
MODEL_ROWS = 8


# ---------------------------------------------------------------------------------------------- videos
def load_config(synthetic_dir: Path, preset: str) -> SynthConfig:
    """The config in ``meta.json`` (a full ``fsar synth`` folder), else ``SynthConfig.preset(preset)``."""
    meta = synthetic_dir / "meta.json"
    if meta.is_file():
        return SynthConfig.from_dict(json.loads(meta.read_text(encoding="utf-8"))["config"])
    return SynthConfig.preset(preset)


def select_videos(config: SynthConfig, every: int) -> list[tuple[ClassDef, int]]:
    """Every ``every``-th video in (class, video index) order."""
    if every < 1:
        raise ValueError(f"--every must be >= 1, got {every}")
    pairs = [(c, i) for c in build_classes(config) for i in range(config.videos_per_class)]
    return pairs[::every]


# ---------------------------------------------------------------------------------------------- ground truth
@dataclasses.dataclass(frozen=True)
class Body:
    """A rigid body of the scene on the tracker timeline: shape, centres [T, 2], angles [T], radii [T]."""

    shape: str
    centres: np.ndarray
    angles: np.ndarray
    radii: np.ndarray

    def local(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local coordinates [T, K] of image points xy [T, K, 2] (the renderer's inverse pose)."""
        cos, sin = np.cos(self.angles)[:, None], np.sin(self.angles)[:, None]
        dx = xy[..., 0] - self.centres[:, 0:1]
        dy = xy[..., 1] - self.centres[:, 1:2]
        r = self.radii[:, None]
        return (cos * dx + sin * dy) / r, (-sin * dx + cos * dy) / r

    def covers(self, xy: np.ndarray) -> np.ndarray:
        u, v = self.local(xy)
        return inside_shape(self.shape, u, v)

    def forward(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Image positions [T, K, 2] of local points u, v [K]."""
        cos, sin = np.cos(self.angles)[:, None], np.sin(self.angles)[:, None]
        r = self.radii[:, None]
        x = self.centres[:, 0:1] + r * (cos * u[None] - sin * v[None])
        y = self.centres[:, 1:2] + r * (sin * u[None] + cos * v[None])
        return np.stack([x, y], axis=-1)


def scene_bodies(clip: RenderedVideo, frames: np.ndarray) -> list[Body]:
    """Actor first, then the distractors in drawing order (later ones on top), at video ``frames``."""
    scene = clip.scene
    camera = scene.camera[frames].astype(np.float64)
    pose = scene.pose[frames].astype(np.float64)
    bodies = [Body(scene.actor_shape, pose[:, :2] + camera, pose[:, 2], scene.actor_radius * pose[:, 3])]
    for d in scene.distractors:
        bodies.append(
            Body(d.shape, d.centres[frames] + camera, d.angles[frames], np.full(len(frames), float(d.radius)))
        )
    return bodies


def true_tracks(
    clip: RenderedVideo, frames: np.ndarray, query_row: np.ndarray, query_xy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positions [T, K, 2], visibility [T, K] and layer [K] (-1 background, 0 actor, 1+ distractors) of
    points queried at timeline rows ``query_row`` [K] at ``query_xy`` [K, 2]; ``frames`` are the video frames
    of the timeline rows."""
    bodies = scene_bodies(clip, frames)
    T, K = len(frames), len(query_row)
    H, W = clip.frames.shape[1:3]
    layer = np.full(K, -1, dtype=np.int64)
    local = []
    for b, body in enumerate(bodies):
        sel = Body(body.shape, body.centres[query_row], body.angles[query_row], body.radii[query_row])
        u, v = sel.local(query_xy[:, None, :].astype(np.float64))  # [K, 1]
        u, v = u[:, 0], v[:, 0]
        local.append((u, v))
        layer[inside_shape(body.shape, u[:, None], v[:, None])[:, 0]] = b
    camera = clip.scene.camera[frames].astype(np.float64)
    gt = np.repeat(query_xy[None].astype(np.float64), T, axis=0) + (camera[:, None] - camera[query_row][None])
    for b, body in enumerate(bodies):
        on = layer == b
        if on.any():
            gt[:, on] = body.forward(local[b][0][on], local[b][1][on])
    visible = (gt[..., 0] >= -0.5) & (gt[..., 0] < W - 0.5) & (gt[..., 1] >= -0.5) & (gt[..., 1] < H - 0.5)
    for b, body in enumerate(bodies):
        above = layer < b  # bodies drawn later cover the points of earlier layers
        if above.any():
            visible[:, above] &= ~body.covers(gt[:, above])
    return gt.astype(np.float32), visible, layer


def in_mask(mask: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """mask [T, H, W] at the pixel (round(y), round(x)) of xy [T, K, 2]; False outside the frame."""
    T, H, W = mask.shape
    col, row = np.rint(xy[..., 0]).astype(np.int64), np.rint(xy[..., 1]).astype(np.int64)
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H)
    out = np.zeros(xy.shape[:2], dtype=bool)
    t = np.broadcast_to(np.arange(T)[:, None], xy.shape[:2])
    out[inside] = mask[t[inside], row[inside], col[inside]]
    return out


def near_visible_gt(points: np.ndarray, visible: np.ndarray, xy: np.ndarray, radius: float) -> np.ndarray:
    """[T, K]: xy [T, K, 2] within ``radius`` px of a visible ground-truth actor point (points [T, P, 2])."""
    dist = np.sqrt(((xy[:, :, None, :] - points[:, None, :, :]) ** 2).sum(-1))
    dist = np.where(visible[:, None, :], dist, np.inf)
    return dist.min(axis=2) < radius


# ---------------------------------------------------------------------------------------------- one row
@dataclasses.dataclass
class Coverage:
    """Sums over videos of one setting."""

    existing: int = 0
    visible: int = 0
    vis_on_actor: int = 0
    vis_near_gt: int = 0
    pos_on_actor: int = 0
    point_frames: int = 0
    pos_on_actor_every_row: int = 0
    rows: int = 0
    rows_with_actor: int = 0
    model_existing: int = 0
    model_pos_on_actor: int = 0
    points: int = 0
    points_on_actor: int = 0
    track_seconds: float = 0.0
    videos: int = 0
    accuracy: TrackingAccuracy = dataclasses.field(default_factory=TrackingAccuracy)
    actor_accuracy: TrackingAccuracy = dataclasses.field(default_factory=TrackingAccuracy)

    def as_dict(self) -> dict[str, Any]:
        def ratio(a: float, b: float) -> float:
            return a / b if b else float("nan")

        return {
            "videos": self.videos,
            "visible": ratio(self.visible, self.existing),
            "vis_on_actor": ratio(self.vis_on_actor, self.visible),
            "vis_near_gt": ratio(self.vis_near_gt, self.visible),
            "all_on_actor": ratio(self.vis_on_actor, self.existing),
            "pos_on_actor": ratio(self.pos_on_actor, self.existing),
            "pos_on_actor_every_row": ratio(self.pos_on_actor_every_row, self.point_frames),
            "rows_with_actor": ratio(self.rows_with_actor, self.rows),
            "model_rows_pos_on_actor": ratio(self.model_pos_on_actor, self.model_existing),
            "points_queried_on_actor": ratio(self.points_on_actor, self.points),
            "track_s_per_video": ratio(self.track_seconds, self.videos),
            "accuracy": self.accuracy.as_dict(),
            "actor_accuracy": self.actor_accuracy.as_dict(),
        }


def measure_video(
    coverage: Coverage,
    settings: TrackingSettings,
    tracker: Any,
    frames: np.ndarray,
    timeline: np.ndarray,
    clip: RenderedVideo,
    video_id: str,
) -> None:
    start = time.perf_counter()
    track_file = track_frames(frames, tracker, settings, video_id=video_id, timeline=timeline)
    coverage.track_seconds += time.perf_counter() - start
    T = track_file.num_frames
    sel = track_file.select(np.arange(T))
    xy, vis, exist = sel.tracks, sel.visibility & sel.query_mask, sel.query_mask
    mask = clip.actor_mask[timeline]
    on = in_mask(mask, xy)
    near = near_visible_gt(clip.points[timeline], clip.visible[timeline], xy, NEAR_GT_PX)
    coverage.existing += int(exist.sum())
    coverage.visible += int(vis.sum())
    coverage.vis_on_actor += int((vis & on).sum())
    coverage.vis_near_gt += int((vis & near).sum())
    coverage.pos_on_actor += int((exist & on).sum())
    coverage.point_frames += int(on.size)
    coverage.pos_on_actor_every_row += int(on.sum())
    coverage.rows += T
    coverage.rows_with_actor += int((vis & on).any(axis=1).sum())
    rows = uniform_rows(T, MODEL_ROWS)
    coverage.model_existing += int(exist[rows].sum())
    coverage.model_pos_on_actor += int((exist & on)[rows].sum())

    ids = track_file.sampled_indices
    query_row = track_file.query_frame[ids].astype(np.int64)
    query_xy = track_file.tracks[query_row, ids]
    gt, gt_vis, layer = true_tracks(clip, timeline, query_row, query_xy)
    coverage.points += len(ids)
    coverage.points_on_actor += int((layer == 0).sum())
    coverage.accuracy = coverage.accuracy + evaluate_tracks(xy, sel.visibility, gt, gt_vis, query_row)
    actor = layer == 0
    if actor.any():
        coverage.actor_accuracy = coverage.actor_accuracy + evaluate_tracks(
            xy[:, actor], sel.visibility[:, actor], gt[:, actor], gt_vis[:, actor], query_row[actor]
        )
    coverage.videos += 1


# ---------------------------------------------------------------------------------------------- rows
def parse_row(text: str) -> tuple[str, TrackingSettings]:
    """``"name:grid_size=8,lk.fb_threshold=4,motion.spacing=3"`` -> (name, settings)."""
    name, _, rest = text.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"expected NAME:KEY=VALUE,..., got {text!r}")
    fields: dict[str, Any] = {}
    tracker_options: dict[str, Any] = {}
    motion: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE in {text!r}, got {item!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        if key.startswith("lk."):
            tracker_options[key[3:]] = parsed
        elif key.startswith("motion."):
            motion[key[7:]] = parsed
        else:
            fields[key] = parsed
    try:
        settings = TrackingSettings(**fields, tracker_options=tracker_options, motion=MotionRule(**motion))
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"row {text!r}: {exc}") from None
    return name, settings


TABLE_COLUMNS = (
    ("visible", "visible"),
    ("vis on actor", "vis_on_actor"),
    ("all on actor", "all_on_actor"),
    ("pos on actor", "pos_on_actor"),
    ("every row", "pos_on_actor_every_row"),
    ("frames ≥1", "rows_with_actor"),
    ("queried on actor", "points_queried_on_actor"),
)


def markdown_table(names: list[str], results: list[dict[str, Any]]) -> str:
    header = [name for name, _ in TABLE_COLUMNS]
    header = [
        "setting",
        *header,
        "err (px)",
        "avg δ",
        "occl. acc",
        "actor err (px)",
        "actor avg δ",
        "track time",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    base = results[0]["track_s_per_video"]
    for name, r in zip(names, results):
        a, b = r["accuracy"], r["actor_accuracy"]
        row = [name, *[f"{100 * r[key]:.1f}%" for _, key in TABLE_COLUMNS]]
        row += [f"{a['mean_error']:.2f}", f"{a['average_delta']:.3f}", f"{a['occlusion_accuracy']:.3f}"]
        row += [f"{b['mean_error']:.2f}", f"{b['average_delta']:.3f}"]
        row.append(f"{r['track_s_per_video'] / base:.2f}x")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic", required=True, type=Path, help="synthetic benchmark folder")
    parser.add_argument("--preset", default="default", help="config when DIR has no meta.json (default)")
    parser.add_argument("--every", type=int, default=15, help="every N-th video (15: 200 of 3000)")
    parser.add_argument("--render", action="store_true", help="render the selected videos that are missing")
    parser.add_argument(
        "--row", action="append", type=parse_row, default=None, help="NAME:KEY=VALUE,... (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/track_actor_coverage"), help="output folder")
    args = parser.parse_args(argv)

    config = load_config(args.synthetic, args.preset)
    selection = select_videos(config, args.every)
    missing = [(c, i) for c, i in selection if not is_complete(args.synthetic, c, i)]
    if missing and not args.render:
        print(
            f"{len(missing)} selected videos are missing under {args.synthetic}; pass --render",
            file=sys.stderr,
        )
        return 1
    for c, i in missing:
        write_video_files(args.synthetic, config, c, i)
    rows = args.row or [parse_row("grid:grid_size=8,points=64")]
    names = [name for name, _ in rows]
    coverages = [Coverage() for _ in rows]
    trackers = [settings.create_tracker() for _, settings in rows]
    for c, i in selection:
        clip = render_clip(config, c, i)
        video = open_video(video_path(args.synthetic, c, i))
        decoded: dict[bytes, np.ndarray] = {}
        for (_, settings), tracker, coverage in zip(rows, trackers, coverages):
            timeline = tracker_timeline(int(video.num_frames), video.fps, settings.max_fps, ".mp4")
            if timeline.tobytes() not in decoded:
                decoded[timeline.tobytes()] = np.asarray(video.frames(timeline))
            frames = decoded[timeline.tobytes()]
            measure_video(coverage, settings, tracker, frames, timeline, clip, c.video_id(i))
    results = [
        {"name": name, "settings": settings.file_params(tracker.params()), **cov.as_dict()}
        for (name, settings), tracker, cov in zip(rows, trackers, coverages)
    ]
    report = {
        "synthetic": str(args.synthetic),
        "config": config.to_dict(),
        "every": args.every,
        "num_videos": len(selection),
        "delta_thresholds": list(DELTA_THRESHOLDS),
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0]},
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "track_actor_coverage.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = markdown_table(names, results)
    (args.out / "track_actor_coverage.md").write_text(
        f"# Points on the actor: {len(selection)} videos of {args.synthetic}\n\n{table}", encoding="utf-8"
    )
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
