"""Clip-store sizes of the five real benchmarks at the TA2N and TATs presets, from the split files alone.

Per video the store keeps ``frames x H x W x 3`` bytes (``fsar.data.clip_store``). The videos are not here, so:

- frames: the most the preset's sampler can pick, ``max_n |sampler_support(n, T)|`` (TA2N's jittered sampler at
  T = 8: 48, reached by every video of at least 48 frames; shorter videos store all their frames, so less), plus,
  for TATs, the T frames its track files select (at most 2T in all, T = 8, 16 for Kinetics; fewer when they
  coincide);
- H x W: the preset's stored resolution of a typical source frame: UCF101 / HMDB51 320x240 (4:3), SSv2 and
  Kinetics 16:9 (e.g. 427x240, 640x360): short side 256 for TA2N (256x341 or 256x455), 224x224 for TATs.

    python benchmarks/store_sizes.py --splits /work/shared/splits/ta2n
"""

from __future__ import annotations

import argparse
from pathlib import Path

BENCHMARKS = {  # name: (preset name part, split folder, assumed source (H, W))
    "ssv2_full": ("ssv2full", "ssv2_OTAM", (240, 427)),
    "ssv2_small": ("ssv2small", "ssv2_CMN", (240, 427)),
    "kinetics100": ("kinetics100", "kinetics_CMN", (360, 640)),
    "ucf101": ("ucf101", "ucf_ARN", (240, 320)),
    "hmdb51": ("hmdb51", "hmdb_ARN", (240, 320)),
}


def frames_bound(d, method: str) -> int:
    from fsar.data.sampling import build_frame_sampler, sampler_support

    sampler = build_frame_sampler(d.frame_sampler)
    n = max(len(sampler_support(sampler, k, d.num_frames)) for k in range(1, 400))
    return n + (d.num_frames if method == "tats" else 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--splits", required=True, help="folder holding ssv2_OTAM/, ucf_ARN/, ... split folders")
    args = ap.parse_args()

    from fsar.data.clip_store import stored_size
    from fsar.data.splits import find_split_files, read_split_list
    from fsar.engine.config import load_config

    print(
        "| benchmark | videos train / val / test | preset | stored frames x H x W | MB per video | total GB |"
    )
    print("|---|---|---|---|---|---|")
    for name, (preset, folder, src) in BENCHMARKS.items():
        files = find_split_files(Path(args.splits) / folder)
        counts = {s: len({(e.class_name, e.video) for e in read_split_list(p)}) for s, p in files.items()}
        total_videos = sum(counts.values())
        for method in ("ta2n", "tats"):
            d = load_config(f"{method}_{preset}_1shot", ["model.require_weights=false"]).data
            h, w = stored_size(src, d.resize_short, d.resize_to)
            k = frames_bound(d, method)
            per_video = k * h * w * 3
            print(
                f"| {name} | {counts.get('train', 0):,} / {counts.get('val', 0):,} / {counts.get('test', 0):,} | "
                f"{method} | {k} x {h} x {w} | {per_video / 1e6:.1f} | {per_video * total_videos / 1e9:,.0f} |"
            )


if __name__ == "__main__":
    main()
