"""Video decoding cost of ``fsar.data.video`` against raw PyAV, and encoded files against JPEG frame folders.

Takes ``--videos`` synthetic videos (``fsar synth`` output), writes each also as a JPEG frame folder (once, into
``--work``), then reads ``--frames`` uniformly spaced frames per video with each method below. Every repeat visits
every video and runs all methods on it back to back, in an order that rotates from video to video, so the methods
see the same machine load; the report gives per-repeat mean milliseconds per video, their medians over
``--repeats``, and the ratios to raw PyAV (median over repeats of the per-repeat ratio).

- ``raw_pyav``: the least work that reads those frames: ``av.open``, decode in order up to the last wanted frame,
  ``to_ndarray("rgb24")`` for the wanted ones (the frame count is given, as if known).
- ``fsar_first_read``: ``open_video(path).sample(choose)``, the first read of a video by ``ClipLoader``: the exact
  frame count is found during the decode that reads the frames.
- ``fsar_known_count``: ``open_video(path, num_frames=n).frames(indices)``, every later read (the loader remembers
  the count).
- ``fsar_count_then_read``: ``v.num_frames`` then ``v.frames(indices)``, two decodes (what a first read cost before
  ``sample``; kept for comparison).
- ``frame_folder``: the same frames from the JPEG folder (OpenCV).

    python benchmarks/bench_decoding.py --synthetic runs/demo/synthetic_default --work /tmp/frames --out b.json

On a machine shared with other jobs, keep ``--threads 1`` (default) and several repeats; the ratios are the
numbers to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

METHODS = ("raw_pyav", "fsar_first_read", "fsar_known_count", "fsar_count_then_read", "frame_folder")


def raw_pyav(path: Path, indices: list[int]) -> np.ndarray:
    import av

    wanted, last, got = set(indices), max(indices), {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    return np.stack([got[i] for i in indices])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synthetic", required=True, help="an `fsar synth --out` folder")
    ap.add_argument("--work", required=True, help="folder for the frame-folder copies")
    ap.add_argument("--videos", type=int, default=150)
    ap.add_argument("--frames", type=int, default=8, help="frames read per video (uniformly spaced)")
    ap.add_argument("--repeats", type=int, default=5, help="passes over all videos (default 5)")
    ap.add_argument("--threads", type=int, default=1, help="OpenCV / torch threads (default 1)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    import cv2

    from fsar.data.video import open_video

    cv2.setNumThreads(args.threads)
    paths = sorted(Path(args.synthetic, "videos").rglob("*.mp4"))[: args.videos]
    if not paths:
        ap.error(f"no .mp4 videos under {args.synthetic}/videos; run `fsar synth --out DIR` first")
    counts = {p: open_video(p).num_frames for p in paths}
    folders = {}
    for p in paths:
        folder = Path(args.work) / p.parent.name / p.stem
        if not folder.is_dir():
            folder.mkdir(parents=True)
            for i, f in enumerate(open_video(p).frames(list(range(counts[p])))):
                cv2.imwrite(
                    str(folder / f"img_{i + 1:05d}.jpg"), f[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95]
                )
        folders[p] = folder

    def uniform(n: int) -> np.ndarray:
        return np.linspace(0, n - 1, args.frames).astype(np.int64)

    def run(method: str, p: Path) -> np.ndarray:
        idx = uniform(counts[p])
        if method == "raw_pyav":
            return raw_pyav(p, idx.tolist())
        if method == "fsar_first_read":
            return open_video(p).sample(uniform)[1]
        if method == "fsar_known_count":
            return open_video(p, num_frames=counts[p]).frames(idx)
        if method == "fsar_count_then_read":
            v = open_video(p)
            return v.frames(uniform(v.num_frames))
        return open_video(folders[p]).frames(idx)

    for p in paths[:3]:  # warm-up, and every method reads the same frames
        ref = run("raw_pyav", p)
        for m in METHODS[1:4]:
            if not np.array_equal(run(m, p), ref):
                raise SystemExit(f"{p}: {m} returned other pixels than raw PyAV")

    per_repeat = {m: [] for m in METHODS}
    for _ in range(args.repeats):
        totals = dict.fromkeys(METHODS, 0.0)
        for k, p in enumerate(paths):
            order = METHODS[k % len(METHODS) :] + METHODS[: k % len(METHODS)]
            for m in order:
                t0 = time.perf_counter()
                run(m, p)
                totals[m] += time.perf_counter() - t0
        for m in METHODS:
            per_repeat[m].append(1e3 * totals[m] / len(paths))
    ms = {m: statistics.median(v) for m, v in per_repeat.items()}
    ratios = {
        m: statistics.median(a / b for a, b in zip(per_repeat[m], per_repeat["raw_pyav"])) for m in METHODS
    }
    result = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "videos": len(paths),
        "frames_per_video": sorted(set(counts.values())),
        "frames_per_read": args.frames,
        "repeats": args.repeats,
        "ms_per_video_median": ms,
        "ms_per_video_per_repeat": per_repeat,
        "ratio_to_raw_pyav_median": ratios,
        "videos_per_s": {m: 1e3 / v for m, v in ms.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print("| method | ms per video (median of repeats) | videos/s | time / raw PyAV |")
    print("|---|---|---|---|")
    for m in METHODS:
        print(f"| {m} | {ms[m]:.2f} | {1e3 / ms[m]:.0f} | {ratios[m]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
