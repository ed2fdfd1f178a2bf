"""Data-loader throughput: training episodes/s from encoded videos, JPEG frame folders and the clip store.

Makes a benchmark of synthetic videos at a realistic size in ``--work`` (default: a temporary folder): ``--classes``
class folders of ``--videos-per-class`` H.264 videos (``--size`` 320x240, ``--frames`` 64, x264 ``crf`` 23 with
its default GOP and B-frames; a smooth texture drifting under a moving blob), plus random point-track files for
TATs (the real ones come from ``fsar track``; only their reading cost matters here). Then, for the TA2N and TATs
presets (``ta2n_hmdb51_1shot``: 8 frames, ta2n sampler, short side 256, random 224 crop + flip, 5-way 1-shot with
5 queries per class = 30 clips; ``tats_hmdb51_1shot``: 8 frames on the track timeline, 224x224, RandAugment on as in
the preset, 6 queries per class = 35 clips and their tracks), it times the training data pipeline
(``EpisodeDataset`` through ``episode_loader``, exactly what ``fsar train`` iterates) for each source:

- ``videos``: the mp4 files, decoded per clip (frame counts known: warmed once, as in a long run);
- ``frames``: JPEG frame folders written by ``fsar data prepare --format frames``;
- ``store``: the clip store written by ``fsar data prepare`` (``data.clip_store``);

with 0, 1 and 2 loader workers (``--workers``). Sources and worker counts alternate inside one run, so their
ratios are comparable even on a busy machine; absolute numbers need a quiet one.

``--augment-on loader,device`` also times each source with ``data.augment_on=device`` (reported as
``<source>@device``): the workers only read the clips and draw their random choices, and ship uint8 clips; the
timed rate is the loader's (the host's share, which cores per GPU divide into), and the augmentation itself (copy to
``--device``, RandAugment / resize / crop / flip / normalisation batched over the episode) is timed apart on the
same batches as ``device_augment_episodes_per_s`` (on a GPU it takes GPU time, not host cores). With ``--device
cpu`` that number is CPU time of the main process, for a toy check only.

Beside the measured rates it reports what one GPU would consume: the model's FLOPs per training episode, counted
with ``torch.utils.flop_counter`` (backbone: one frame on the meta device, times the episode's frames, times 3 for
a trainable backbone's forward + backward, 1 for a frozen one; head: the real episode on the CPU with the
backbone's output as input, forward + backward), divided into ``--peak-tflops`` (H100 SXM dense bf16: 989) times
``--mfu``, the fraction of the peak reached: an assumption, so two are reported, 0.1 (about what ResNet-50 training
reaches: MLPerf's ~3,500 images/s per H100) and 0.35 (a well-fed transformer). CPU cores per GPU = that rate / the
rate of one worker process.

Quick check (tiny sizes): ``python benchmarks/bench_loader.py --videos-per-class 7 --classes 5 --frames 24
--episodes 2 --workers 0 --no-flops --out /tmp/loader.json``. Full run: see BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

PRESETS = {"ta2n": "ta2n_hmdb51_1shot", "tats": "tats_hmdb51_1shot"}


# ---------------------------------------------------------------------------------------------- synthetic data
def make_video(path: Path, frames: int, size: tuple[int, int], seed: int) -> None:
    """A smooth random texture drifting under a moving blob, H.264 (x264 defaults, crf 23) at 25 fps."""
    import av
    import cv2

    w, h = size
    rng = np.random.default_rng(seed)
    tex = cv2.resize(rng.integers(0, 256, (h // 8 + 4, w // 8 + 4, 3), dtype=np.uint8), (w + 64, h + 64))
    yy, xx = np.mgrid[0:h, 0:w]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "23"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            dx, dy = int(32 + 24 * np.sin(t / 9 + seed)), int(32 + 24 * np.cos(t / 11 + seed))
            img = tex[dy : dy + h, dx : dx + w].astype(np.float32)
            cx, cy = w * (0.2 + 0.6 * t / frames), h * (0.5 + 0.3 * np.sin(t / 5))
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (0.1 * h) ** 2))[..., None]
            img = np.clip(img * (1 - blob) + 230 * blob, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_tracks(path: Path, frames: int, size: tuple[int, int], seed: int, points: int = 256) -> None:
    """A track file shaped like `fsar track`'s (timeline at 10 fps of a 25 fps video, 7 query frames)."""
    from fsar.data.trackfile import TrackFile

    w, h = size
    rng = np.random.default_rng(seed)
    timeline = np.unique(np.floor(np.arange(0, frames, 2.5)).astype(np.int64))
    n_all = points + 64
    TrackFile(
        tracks=(rng.random((len(timeline), n_all, 2)) * [w, h]).astype(np.float32),
        visibility=rng.random((len(timeline), n_all)) > 0.1,
        query_frame=rng.integers(0, len(timeline), n_all).astype(np.int32),
        frame_size=(h, w),
        timeline=timeline,
        fps=10.0,
        tracker="bench",
        sampled_indices=np.sort(rng.choice(n_all, points, replace=False)).astype(np.int64),
        num_points_total=n_all,
        video_id=path.stem,
    ).save(path)


def make_benchmark(work: Path, classes: int, per_class: int, frames: int, size: tuple[int, int]) -> None:
    videos, tracks, splits = work / "videos", work / "tracks", work / "splits"
    if (splits / "trainlist01.txt").is_file():
        return
    lines = []
    for c in range(classes):
        for v in range(per_class):
            name = f"v{v:03d}"
            make_video(videos / f"class{c:02d}" / f"{name}.mp4", frames, size, seed=c * 1000 + v)
            make_tracks(tracks / f"class{c:02d}" / f"{name}.npz", frames, size, seed=c * 1000 + v)
            lines.append(f"class{c:02d}/{name}\n")
    splits.mkdir(parents=True, exist_ok=True)
    (splits / "trainlist01.txt").write_text("".join(lines))


# ---------------------------------------------------------------------------------------------- timing
def preset_overrides(method: str, work: Path, root: Path, store: Path | None, workers: int) -> list[str]:
    over = [f"data.root={root}", f"data.splits={work / 'splits'}", f"data.workers={workers}"]
    over += ["model.require_weights=false"]
    if method == "tats":
        over.append(f"data.tracks={work / 'tracks'}")
    if store is not None:
        over.append(f"data.clip_store={store}")
    return over


def episodes_per_second(
    method: str, over: list[str], episodes: int, warmup: int, augment_on: str = "loader", device: str = "cpu"
) -> tuple[float, float | None]:
    """The loader's episodes/s and, for ``augment_on=device``, the episodes/s of the augmentation alone on
    ``device`` (copy + batched augmentation of the timed episodes' batches, synchronised)."""
    from fsar.data.episodes import EpisodeSampler
    from fsar.engine.config import load_config
    from fsar.engine.data_setup import build_split_clips
    from fsar.engine.episode_data import EpisodeDataset, episode_loader, to_device

    cfg = load_config(PRESETS[method], [*over, f"data.augment_on={augment_on}"])
    clips = build_split_clips(cfg.data, ("train",))["train"]
    loader = clips.load_video.__self__.loader
    if not cfg.data.clip_store:  # a long run knows every frame count: count once, outside the timing
        for r in clips.records:
            loader._frame_counts[Path(r.path)] = loader.open(r).num_frames
    ep = cfg.episodes
    sampler = EpisodeSampler(clips.labels, ep.way, ep.shot, ep.train_queries, seed=0)
    dataset = EpisodeDataset(clips, sampler.episode, warmup + episodes, True, 0, augment_on=augment_on)
    on_device = augment_on == "device"
    it = iter(episode_loader(dataset, cfg.data.workers, device if on_device else None))
    for _ in range(warmup):
        next(it)
    kept = []
    t0 = time.perf_counter()
    for _ in range(episodes):
        item = next(it)
        if on_device:
            kept.append(item[1:])
    rate = episodes / (time.perf_counter() - t0)
    del it
    if not on_device:
        return rate, None
    import torch

    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for support, query in kept[:1]:  # warm-up: kernels, allocator
        to_device(support, dev), to_device(query, dev)
    sync()
    t0 = time.perf_counter()
    for support, query in kept:
        to_device(support, dev), to_device(query, dev)
    sync()
    return rate, len(kept) / (time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------- model FLOPs
def episode_flops(method: str) -> dict[str, float]:
    """FLOPs of one training episode of the preset's model (see the module docstring)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fsar.data.batch import ClipBatch
    from fsar.engine.build import build_backbone, build_model
    from fsar.engine.config import load_config
    from fsar.engine.feature_cache import PrecomputedFeatures
    from fsar.engine.trainer import EpisodeStep

    cfg = load_config(PRESETS[method], ["model.require_weights=false"])
    ep, T = cfg.episodes, cfg.data.num_frames
    videos = ep.way * (ep.shot + ep.train_queries)
    with torch.device("meta"):
        backbone = build_backbone(cfg.model)
        with FlopCounterMode(display=False) as fc:
            maps = backbone(torch.zeros(1, 3, 224, 224))
    frozen = bool(getattr(backbone, "frozen", False))
    per_frame = fc.get_total_flops()
    c, h, w = maps.shape[1:]
    torch.manual_seed(0)
    model = build_model(cfg, num_train_classes=64, backbone=PrecomputedFeatures(int(c)))
    step = EpisodeStep(model)
    n_points = cfg.data.num_points

    def batch(per_class: int) -> ClipBatch:
        n = ep.way * per_class
        return ClipBatch(
            frames=torch.randn(n, T, int(c), int(h), int(w)),
            labels=torch.arange(ep.way).repeat_interleave(per_class),
            global_labels=torch.arange(ep.way).repeat_interleave(per_class),
            tracks=torch.rand(n, T, n_points, 2) * 2 - 1,
            query_mask=torch.ones(n, T, n_points, dtype=torch.bool),
            visibility=torch.ones(n, T, n_points, dtype=torch.bool),
        )

    support, query = batch(ep.shot), batch(ep.train_queries)
    with FlopCounterMode(display=False) as fc:
        loss, _ = step(support, query)
        loss.backward()
    head = fc.get_total_flops()
    backbone_total = per_frame * videos * T * (1 if frozen else 3)
    return {
        "backbone_gflop_per_frame_forward": per_frame / 1e9,
        "backbone_trainable": not frozen,
        "clips_per_episode": videos,
        "backbone_tflop_per_episode": backbone_total / 1e12,
        "head_tflop_per_episode": head / 1e12,
        "tflop_per_episode": (backbone_total + head) / 1e12,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=None, help="folder for the synthetic videos and prepared data (kept)")
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--videos-per-class", type=int, default=8)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--size", default="320x240", help="WxH of the videos")
    ap.add_argument("--methods", default="ta2n,tats")
    ap.add_argument("--sources", default="videos,frames,store")
    ap.add_argument("--workers", default="0,1,2")
    ap.add_argument("--episodes", type=int, default=10, help="timed episodes per measurement")
    ap.add_argument("--warmup", type=int, default=2, help="episodes before timing (worker start-up)")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="GPU peak (H100 SXM dense bf16: 989)")
    ap.add_argument(
        "--mfu",
        default="0.1,0.35",
        help="assumed fractions of the peak reached (comma-separated; ResNet-50 training: ~0.1, ViTs: ~0.35)",
    )
    ap.add_argument(
        "--augment-on",
        default="loader",
        help="where augmentation runs, comma-separated: loader (in the workers), device (workers ship uint8 clips; "
        "reported as <source>@device)",
    )
    ap.add_argument(
        "--device", default="cpu", help="device of the augment-on=device step (cuda on a GPU host)"
    )
    ap.add_argument("--no-flops", action="store_true", help="skip counting the models' FLOPs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    ap.add_argument("--out", required=True, help="JSON results")
    args = ap.parse_args()

    import torch

    from fsar.data.benchmarks import load_benchmark
    from fsar.data.prepare import prepare_clip_store, prepare_frame_folders
    from fsar.engine.config import load_config

    torch.set_num_threads(args.threads)
    w, h = (int(s) for s in args.size.lower().split("x"))
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="fsar_bench_loader_"))
    methods = [m for m in args.methods.split(",") if m]
    sources = [s for s in args.sources.split(",") if s]
    worker_counts = [int(x) for x in args.workers.split(",") if x]
    places = [p for p in args.augment_on.split(",") if p]
    unknown = sorted(set(places) - {"loader", "device"})
    if unknown or not places:
        ap.error(f"--augment-on takes loader and/or device, got {args.augment_on!r}")
    paths = [(s, p) for s in sources for p in places]  # (source, augment_on)
    path_names = [s if p == "loader" else f"{s}@device" for s, p in paths]
    mfus = [float(x) for x in args.mfu.split(",") if x]
    t0 = time.perf_counter()
    make_benchmark(work, args.classes, args.videos_per_class, args.frames, (w, h))
    print(f"videos ready in {work} ({time.perf_counter() - t0:.0f} s)")
    bench = load_benchmark("hmdb51", root=work / "videos", splits_dir=work / "splits")
    prep_seconds = {}
    if "frames" in sources:
        report = prepare_frame_folders(bench, work / "frames", splits=["train"], progress=False)
        prep_seconds["frames"] = report.seconds
        print(f"frame folders: {report.summary()}")
    stores = {}
    for method in methods:
        if "store" not in sources:
            continue
        d = load_config(PRESETS[method], preset_overrides(method, work, work / "videos", None, 0)).data
        stores[method] = work / f"store_{method}"
        report = prepare_clip_store(
            bench,
            stores[method],
            splits=["train"],
            num_frames=d.num_frames,
            frame_sampler=d.frame_sampler,
            resize_short=d.resize_short,
            resize_to=d.resize_to,
            tracks=d.tracks,
            progress=False,
        )
        prep_seconds[f"store_{method}"] = report.seconds
        print(f"clip store {method}: {report.summary()}")

    rates: dict[str, dict[str, dict[int, float]]] = {m: {n: {} for n in path_names} for m in methods}
    augment_rates: dict[str, dict[str, dict[int, float]]] = {m: {} for m in methods}
    for workers in worker_counts:  # alternate sources inside each worker count
        for method in methods:
            for (source, place), name in zip(paths, path_names):
                root = work / ("frames" if source == "frames" else "videos")
                store = stores.get(method) if source == "store" else None
                over = preset_overrides(method, work, root, store, workers)
                rate, augment_rate = episodes_per_second(
                    method, over, args.episodes, args.warmup, place, args.device
                )
                rates[method][name][workers] = rate
                extra = ""
                if augment_rate is not None:
                    augment_rates[method].setdefault(name, {})[workers] = augment_rate
                    extra = f"; augmentation on {args.device}: {augment_rate:7.2f} episodes/s"
                print(f"{method:5s} {name:14s} workers={workers}: {rate:7.2f} episodes/s{extra}")

    result = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "torch_threads_main": args.threads,
        "videos": {"count": args.classes * args.videos_per_class, "frames": args.frames, "size": [w, h]},
        "episodes_timed": args.episodes,
        "prepare_seconds": prep_seconds,
        "prepare_seconds_per_1000_videos": {
            k: 1000 * v / (args.classes * args.videos_per_class) for k, v in prep_seconds.items()
        },
        "episodes_per_s": rates,
        "device_augment_episodes_per_s": {"device": args.device, **augment_rates},
        "assumptions": {"peak_tflops": args.peak_tflops, "mfu": mfus},
    }
    if not args.no_flops:
        result["gpu"] = {}
        for method in methods:
            flops = episode_flops(method)
            per_core = {n: rates[method][n].get(1) for n in path_names}  # one worker process = one core
            entry = {**flops, "gpu_episodes_per_s": {}, "cores_per_gpu": {}}
            for mfu in mfus:
                gpu_rate = args.peak_tflops * mfu / flops["tflop_per_episode"]
                entry["gpu_episodes_per_s"][str(mfu)] = gpu_rate
                entry["cores_per_gpu"][str(mfu)] = {
                    s: (gpu_rate / r if r else None) for s, r in per_core.items()
                }
                cores = ", ".join(
                    f"{s} {n:.1f}" for s, n in entry["cores_per_gpu"][str(mfu)].items() if n is not None
                )
                print(
                    f"{method}: {flops['tflop_per_episode']:.2f} TFLOP/episode; at {mfu:.0%} of "
                    f"{args.peak_tflops:.0f} TFLOP/s one GPU takes {gpu_rate:.1f} episodes/s; cores needed: {cores}"
                )
            result["gpu"][method] = entry
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
