"""Writing the synthetic benchmark to disk: videos, ground-truth trajectories, ARN split files and ``meta.json``.

Layout of ``out_dir``::

    videos/<class_name>/<video_id>.mp4        yuv420p mp4 (libx264 or mpeg4)
    trajectories/<class_name>/<video_id>.npz  points float32 [T, P, 2] (x, y) pixels, visible bool [T, P],
                                              frame_size int [2] (H, W); also actor_pose float32 [T, 4]
                                              (x, y, angle, scale) and action_window float32 [2] (frames)
    splits/trainlist01.txt, vallist01.txt, testlist01.txt   one "class_name/video_id" per line
    meta.json                                  generator version, parameters, classes, splits, counts

Crash safety and resuming: each file is written under ``.tmp/`` and moved into place with ``os.replace``
(trajectory first, video last), so a video exists only when both files are complete. While a run is in progress
``.fsar_synth_in_progress.json`` records the config; split files and ``meta.json`` are written only at the end.
Running again with the same config resumes (complete videos are kept); a different config, or a non-empty folder
that is not a synthetic benchmark, is refused unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fsar.data.synthetic.classes import ClassDef, build_classes
from fsar.data.synthetic.config import SPLIT_NAMES, SynthConfig
from fsar.data.synthetic.encode import write_mp4
from fsar.data.synthetic.primitives import PRIMITIVES
from fsar.data.synthetic.render import render_clip
from fsar.errors import OutputDirError
from fsar.procs import die_with_parent, is_lock_file

GENERATOR = "fsar.data.synthetic"
GENERATOR_VERSION = 1
SPLIT_FILES: dict[str, str] = {"train": "trainlist01.txt", "val": "vallist01.txt", "test": "testlist01.txt"}
IN_PROGRESS_MARKER = ".fsar_synth_in_progress.json"
TMP_DIR = ".tmp"
OUTPUT_NAMES: tuple[str, ...] = ("videos", "trajectories", "splits", "meta.json", IN_PROGRESS_MARKER, TMP_DIR)


@dataclass(frozen=True)
class SynthSummary:
    out_dir: Path
    classes_per_split: dict[str, int]
    videos_per_split: dict[str, int]
    num_videos: int
    generated: int  # videos rendered by this call
    reused: int  # complete videos found from an earlier run with the same config
    seconds: float
    twin_classes_per_split: dict[str, int] = field(default_factory=dict)

    def format(self) -> str:
        lines = [f"synthetic benchmark in {self.out_dir}"]
        for split in SPLIT_NAMES:
            lines.append(
                f"  {split:<5} {self.classes_per_split[split]:>4} classes "
                f"({self.twin_classes_per_split.get(split, 0)} in reversed-order twin pairs), "
                f"{self.videos_per_split[split]:>5} videos"
            )
        lines.append(
            f"  {self.num_videos} videos: {self.generated} rendered, {self.reused} already complete; "
            f"{self.seconds:.1f} s"
        )
        return "\n".join(lines)


# --------------------------------------------------------------------------- paths and metadata
def video_path(out_dir: Path, class_def: ClassDef, video_idx: int) -> Path:
    return out_dir / "videos" / class_def.name / f"{class_def.video_id(video_idx)}.mp4"


def trajectory_path(out_dir: Path, class_def: ClassDef, video_idx: int) -> Path:
    return out_dir / "trajectories" / class_def.name / f"{class_def.video_id(video_idx)}.npz"


def is_complete(out_dir: Path, class_def: ClassDef, video_idx: int) -> bool:
    return (
        video_path(out_dir, class_def, video_idx).is_file()
        and trajectory_path(out_dir, class_def, video_idx).is_file()
    )


def config_identity(config: SynthConfig) -> dict[str, Any]:
    """What makes two generated folders the same: the generator version and every parameter."""
    return {"generator": GENERATOR, "generator_version": GENERATOR_VERSION, "config": config.to_dict()}


def split_lines(config: SynthConfig, classes: Sequence[ClassDef], split: str) -> list[str]:
    return [
        f"{c.name}/{c.video_id(i)}"
        for c in classes
        if c.split == split
        for i in range(config.videos_per_class)
    ]


def build_meta(config: SynthConfig, classes: Sequence[ClassDef]) -> dict[str, Any]:
    splits = {s: [c.name for c in classes if c.split == s] for s in SPLIT_NAMES}
    twins = {c.name: c.twin for c in classes if c.twin is not None}
    return {
        **config_identity(config),
        "frame_size": [config.height, config.width],
        "num_frames": config.num_frames,
        "fps": config.fps,
        "primitives": {name: p.description for name, p in PRIMITIVES.items() if name in config.primitives},
        "classes": {c.name: list(c.primitives) for c in classes},
        "twins": twins,
        "splits": splits,
        "split_files": {s: f"splits/{SPLIT_FILES[s]}" for s in SPLIT_NAMES},
        "counts": {
            "classes": {s: len(v) for s, v in splits.items()},
            "videos": {s: len(v) * config.videos_per_class for s, v in splits.items()},
            "twin_classes": {s: sum(1 for n in v if n in twins) for s, v in splits.items()},
            "total_classes": len(classes),
            "total_videos": len(classes) * config.videos_per_class,
            "points_per_video": config.num_points,
        },
        "layout": {
            "videos": "videos/<class_name>/<video_id>.mp4",
            "trajectories": "trajectories/<class_name>/<video_id>.npz",
            "points": "float32 [T, P, 2] pixel (x, y); the centre of pixel (0, 0) is (0.0, 0.0)",
            "visible": "bool [T, P]; False when a distractor covers the point or it is outside the frame",
        },
    }


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


def _json_text(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------- one video
def write_video_files(out_dir: Path, config: SynthConfig, class_def: ClassDef, video_idx: int) -> None:
    """Render video ``video_idx`` of ``class_def`` and move its trajectory, then its video, into place."""
    clip = render_clip(config, class_def, video_idx)
    tmp_dir = out_dir / TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{class_def.video_id(video_idx)}.{os.getpid()}"
    tmp_video, tmp_traj = tmp_dir / f"{stem}.mp4.part", tmp_dir / f"{stem}.npz.part"
    write_mp4(tmp_video, clip.frames, config.fps, config.codec, config.crf)
    pose = clip.scene.pose.copy()
    pose[:, :2] += clip.scene.camera  # image coordinates, like the points
    with open(tmp_traj, "wb") as f:
        np.savez(
            f,
            points=clip.points.astype(np.float32),
            visible=clip.visible.astype(bool),
            frame_size=np.array([config.height, config.width], dtype=np.int32),
            actor_pose=pose.astype(np.float32),
            action_window=np.array(clip.scene.action_window, dtype=np.float32),
        )
    final_video = video_path(out_dir, class_def, video_idx)
    final_traj = trajectory_path(out_dir, class_def, video_idx)
    final_video.parent.mkdir(parents=True, exist_ok=True)
    final_traj.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_traj, final_traj)
    os.replace(tmp_video, final_video)


def _render_class(task: tuple[str, SynthConfig, ClassDef, list[int]]) -> int:
    out, config, class_def, indices = task
    for i in indices:
        write_video_files(Path(out), config, class_def, i)
    return len(indices)


# --------------------------------------------------------------------------- the output folder
def _recorded_identity(out_dir: Path) -> dict[str, Any] | None:
    """The identity recorded by an earlier run (in-progress marker first, then meta.json), or None."""
    for name in (IN_PROGRESS_MARKER, "meta.json"):
        path = out_dir / name
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            if isinstance(data, dict) and data.get("generator") == GENERATOR:
                return {k: data.get(k) for k in ("generator", "generator_version", "config")}
            return None
    return None


def _describe_difference(recorded: dict[str, Any], wanted: dict[str, Any]) -> str:
    if recorded.get("generator_version") != wanted["generator_version"]:
        return f"generator version {recorded.get('generator_version')} -> {wanted['generator_version']}"
    old, new = recorded.get("config") or {}, wanted["config"]
    diffs = [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in new if old.get(k) != new[k]]
    diffs += [f"{k}: {old[k]!r} -> (absent)" for k in old if k not in new]
    return ", ".join(diffs) or "unknown difference"


def prepare_out_dir(out_dir: Path, config: SynthConfig, overwrite: bool) -> str:
    """Check ``out_dir`` and return ``"fresh"`` or ``"resume"``; with ``overwrite`` an earlier synthetic
    benchmark there is deleted (only the paths this generator writes)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputDirError(f"{out_dir}: exists and is not a folder; choose another output folder")
    entries = (
        sorted(p.name for p in out_dir.iterdir() if not is_lock_file(p.name)) if out_dir.exists() else []
    )
    if not entries:
        return "fresh"
    wanted = json.loads(json.dumps(config_identity(config)))
    recorded = _recorded_identity(out_dir)
    if recorded == wanted:
        return "resume"
    if recorded is not None:
        if not overwrite:
            raise OutputDirError(
                f"{out_dir}: holds a synthetic benchmark made with other settings "
                f"({_describe_difference(recorded, wanted)}); choose another output folder, or pass "
                "overwrite=True (`fsar synth --overwrite`) to replace it"
            )
        for name in OUTPUT_NAMES:
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        return "fresh"
    if not overwrite:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise OutputDirError(
            f"{out_dir}: is not empty ({shown}) and is not a synthetic benchmark; choose an empty or new output "
            "folder, or pass overwrite=True (`fsar synth --overwrite`) to write into it anyway"
        )
    clashes = [name for name in OUTPUT_NAMES if (out_dir / name).exists()]
    if clashes:
        raise OutputDirError(
            f"{out_dir}: is not a synthetic benchmark but already holds {clashes}, which the generator would "
            "write; these are not deleted automatically: move them away or choose another output folder"
        )
    return "fresh"


# --------------------------------------------------------------------------- the dataset
def generate_synthetic(
    out_dir: str | Path,
    config: SynthConfig | None = None,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> SynthSummary:
    """Write the synthetic benchmark described by ``config`` (default: ``SynthConfig.preset("default")``) to
    ``out_dir``, rendering videos in ``workers`` processes (default ``os.cpu_count()``; 1 renders in this
    process). Resumes an interrupted run with the same config; see the module docstring for the rules."""
    t0 = time.perf_counter()
    config = config if config is not None else SynthConfig.preset("default")
    out = Path(out_dir)
    mode = prepare_out_dir(out, config, overwrite)
    classes = build_classes(config)

    out.mkdir(parents=True, exist_ok=True)
    if mode == "resume":
        shutil.rmtree(out / TMP_DIR, ignore_errors=True)  # leftovers of an interrupted run
    _write_text_atomic(out / IN_PROGRESS_MARKER, _json_text(config_identity(config)))

    todo: list[tuple[ClassDef, list[int]]] = []
    reused = 0
    for c in classes:
        missing = [i for i in range(config.videos_per_class) if not is_complete(out, c, i)]
        reused += config.videos_per_class - len(missing)
        if missing:
            todo.append((c, missing))
    num_todo = sum(len(m) for _, m in todo)
    if num_todo:  # the split files and meta.json describe a complete folder only
        for name in ("meta.json", *(f"splits/{f}" for f in SPLIT_FILES.values())):
            (out / name).unlink(missing_ok=True)

    tasks = [(str(out), config, c, m) for c, m in todo]
    n_workers = max(1, min(workers if workers is not None else (os.cpu_count() or 1), len(tasks)))
    bar = None
    if progress and num_todo:
        from fsar.progress import progress_bar

        bar = progress_bar(num_todo, "synth", "videos")
    try:
        if n_workers == 1:
            for task in tasks:
                done = _render_class(task)
                if bar is not None:
                    bar.update(done)
        else:
            ctx = multiprocessing.get_context("spawn")  # safe even when the caller has threads (torch)
            with ProcessPoolExecutor(
                max_workers=n_workers, mp_context=ctx, initializer=die_with_parent
            ) as pool:
                futures = [pool.submit(_render_class, task) for task in tasks]
                for fut in as_completed(futures):
                    done = fut.result()
                    if bar is not None:
                        bar.update(done)
    finally:
        if bar is not None:
            bar.close()

    for split in SPLIT_NAMES:
        lines = split_lines(config, classes, split)
        _write_text_atomic(out / "splits" / SPLIT_FILES[split], "".join(line + "\n" for line in lines))
    meta = build_meta(config, classes)
    _write_text_atomic(out / "meta.json", _json_text(meta))
    shutil.rmtree(out / TMP_DIR, ignore_errors=True)
    (out / IN_PROGRESS_MARKER).unlink(missing_ok=True)

    counts = meta["counts"]
    return SynthSummary(
        out_dir=out,
        classes_per_split=dict(counts["classes"]),
        videos_per_split=dict(counts["videos"]),
        num_videos=counts["total_videos"],
        generated=num_todo,
        reused=reused,
        seconds=time.perf_counter() - t0,
        twin_classes_per_split=dict(counts["twin_classes"]),
    )
