"""Video decoding throughput: the same clips as encoded files (PyAV) and as frame folders (JPEG, OpenCV).

Takes ``--videos`` synthetic videos, writes each also as a JPEG frame folder (once, into ``--work``), then times
reading ``--frames`` uniformly spaced frames per video through ``fsar.data.video.open_video`` for both, alternating
within one run. Reports videos/s (frame count included: a fresh ``Video`` per read).

    python benchmarks/bench_decoding.py --synthetic runs/demo/synthetic_default --work /tmp/frames --out b.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synthetic", required=True)
    ap.add_argument("--work", required=True, help="folder for the frame-folder copies")
    ap.add_argument("--videos", type=int, default=100)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import cv2

    from fsar.data.video import open_video

    paths = sorted(Path(args.synthetic, "videos").rglob("*.mp4"))[: args.videos]
    folders = []
    for p in paths:
        folder = Path(args.work) / p.parent.name / p.stem
        if not folder.is_dir():
            folder.mkdir(parents=True)
            frames = open_video(p).frames(list(range(open_video(p).num_frames)))
            for i, f in enumerate(frames):
                cv2.imwrite(
                    str(folder / f"img_{i + 1:05d}.jpg"), f[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95]
                )
        folders.append(folder)

    def read(path: Path, known: int | None) -> None:
        video = open_video(path, num_frames=known)
        idx = np.linspace(0, video.num_frames - 1, args.frames).astype(int)
        video.frames(idx)

    timings = {"pyav_first_read": 0.0, "pyav_known_count": 0.0, "frame_folder": 0.0}
    counts = {p: open_video(p).num_frames for p in paths}
    for p, f in zip(paths, folders):
        t0 = time.perf_counter()
        read(p, None)
        timings["pyav_first_read"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        read(p, counts[p])
        timings["pyav_known_count"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        read(f, None)
        timings["frame_folder"] += time.perf_counter() - t0
    result = {
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
        "videos": len(paths),
        "frames_per_read": args.frames,
        "videos_per_s": {k: len(paths) / v for k, v in timings.items()},
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    for k, v in result["videos_per_s"].items():
        print(f"| {k} | {v:.0f} |")


if __name__ == "__main__":
    main()
