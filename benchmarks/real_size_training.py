"""Real-size training of one method's published preset for a few dozen tasks: episodes/s, data wait, memory and
the projected wall time of the whole recipe.

What it runs (everything at the real size unless ``--toy``):

1. A synthetic benchmark in the HMDB51 class-folder layout (``--work``/bench, shared by every method): ``--classes``
   classes of ``--videos-per-class`` H.264 videos of ``--size`` (320x240) and ``--frames`` frames, made by
   ``bench_loader.make_video`` (texture under a moving blob), with random point-track files for TATs and
   ``{train,val,test}list01.txt`` splitting the classes 1/3 each.
2. Random weights in the formats users download, written at run time: ResNet-50 in torchvision's layout
   (``resnet50_torchvision.pth``) and DINOv2 ViT-B/14 in the official hub layout (``dinov2_vitb14_pretrain.pth``),
   so the real loading code runs (the keys are converted exactly as for the published files).
3. The preset's data prepared as ``fsar data prepare`` does: a clip store (``--source store``) or JPEG frame
   folders (``--source frames``).
4. ``Trainer.fit`` of the preset (``<method>_hmdb51_1shot``: the recipe is the same on every benchmark, only the
   split and the flip rule differ) for ``--tasks`` tasks with ``--workers`` loader workers (default: the host's
   cores minus one, at most 16), validation and test shrunk to a few episodes; ``--augment-on device`` sets
   ``data.augment_on=device`` (the workers ship uint8 clips; augmentation runs batched on the GPU).

Reported (one JSON, ``--out``): the steady episodes/s (between the first and the last logged row, so start-up is
excluded), the share of the steady time spent waiting for data, peak GPU memory, and the projected wall time of
the full published recipe (``train.tasks`` of the preset, training only: validation and the 10,000-episode test
come on top) on one GPU and on 8 with torchrun, the latter assuming linear scaling with 8x the loader cores (an
upper bound on speed, stated as such in the output).

    python benchmarks/real_size_training.py --method ta2n --device cuda --out /tmp/ta2n.json
    python benchmarks/real_size_training.py --method tats --toy --device cpu --out /tmp/t.json   # checks the flow
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the key layouts of the real files

import bench_loader  # noqa: E402

PRESETS = {"ta2n": "ta2n_hmdb51_1shot", "trx": "trx_hmdb51_1shot", "tats": "tats_hmdb51_1shot"}
FULL_RECIPES = ("ssv2full_1shot", "hmdb51_1shot")


def make_benchmark(root: Path, classes: int, per_class: int, frames: int, size: tuple[int, int]) -> None:
    """Videos, random tracks and train/val/test lists (classes split in thirds); reused when already there."""
    splits = root / "splits"
    if (splits / "testlist01.txt").is_file():
        return
    names = {"train": [], "val": [], "test": []}
    for c in range(classes):
        split = ("train", "val", "test")[c * 3 // classes]
        for v in range(per_class):
            stem, seed = f"v{v:03d}", c * 1000 + v
            bench_loader.make_video(root / "videos" / f"class{c:02d}" / f"{stem}.mp4", frames, size, seed)
            bench_loader.make_tracks(root / "tracks" / f"class{c:02d}" / f"{stem}.npz", frames, size, seed)
            names[split].append(f"class{c:02d}/{stem}\n")
    splits.mkdir(parents=True, exist_ok=True)
    for split, lines in names.items():
        (splits / f"{split}list01.txt").write_text("".join(lines))


def write_random_weights(folder: Path, method: str) -> Path:
    """Random weights of the preset's backbone in the published file layout; returns the file."""
    import torch

    from fsar.backbones import create_backbone

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if method == "tats":
        from tests.backbones.test_dinov2 import to_official_keys
        from transformers import Dinov2Config, Dinov2Model

        path = folder / "dinov2_vitb14_pretrain.pth"
        if not path.is_file():
            cfg = Dinov2Config(
                hidden_size=768, num_hidden_layers=12, num_attention_heads=12, image_size=518, patch_size=14
            )
            torch.save(to_official_keys(Dinov2Model(cfg).state_dict()), path)
        return path
    from tests.backbones.test_resnet import to_torchvision_keys

    path = folder / "resnet50_torchvision.pth"
    if not path.is_file():
        torch.save(to_torchvision_keys(create_backbone("resnet50").model.state_dict()), path)
    return path


def default_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, min(16, cores - 1))


def steady_rates(rows: list[dict]) -> dict:
    """Episodes/s and data-wait share between the first and the last logged row (both logs are cumulative since
    the start, so the interval's time is ``tasks / rate`` at each end)."""
    first, last = rows[0], rows[-1]
    n0, n1 = float(first["tasks"]), float(last["tasks"])
    t0, t1 = n0 / float(first["episodes_per_s"]), n1 / float(last["episodes_per_s"])
    w0, w1 = t0 * float(first["data_wait_fraction"]), t1 * float(last["data_wait_fraction"])
    if len(rows) < 2 or t1 <= t0:  # one row: the whole run, start-up included
        return {"episodes_per_s": n1 / t1, "data_wait_fraction": w1 / t1, "steady": False}
    return {
        "episodes_per_s": (n1 - n0) / (t1 - t0),
        "data_wait_fraction": (w1 - w0) / (t1 - t0),
        "steady": True,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", required=True, choices=sorted(PRESETS))
    ap.add_argument(
        "--work", type=Path, required=True, help="folder for the benchmark, weights and runs (kept)"
    )
    ap.add_argument("--out", type=Path, required=True, help="JSON results")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--source", default="store", choices=("store", "frames"))
    ap.add_argument(
        "--augment-on",
        default="loader",
        choices=("loader", "device"),
        help="data.augment_on: augment in the loader workers, or ship uint8 clips and augment on --device",
    )
    ap.add_argument("--tasks", type=int, default=48, help="training tasks (a multiple of tasks_per_update)")
    ap.add_argument(
        "--workers", type=int, default=None, help="loader workers (default: cores - 1, at most 16)"
    )
    ap.add_argument("--classes", type=int, default=15)
    ap.add_argument("--videos-per-class", type=int, default=8)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="320x240", help="WxH of the videos")
    ap.add_argument(
        "--toy",
        action="store_true",
        help="tiny frames and one task per update (the real network): checks the flow on a CPU",
    )
    args = ap.parse_args(argv)

    from fsar.data.benchmarks import load_benchmark
    from fsar.data.prepare import prepare_clip_store, prepare_frame_folders
    from fsar.engine.config import load_config
    from fsar.engine.trainer import Trainer

    w, h = (int(s) for s in args.size.lower().split("x"))
    bench_root = args.work / "bench"
    t0 = time.perf_counter()
    make_benchmark(bench_root, args.classes, args.videos_per_class, args.frames, (w, h))
    seconds = {"benchmark": time.perf_counter() - t0}
    weights = write_random_weights(args.work / "weights", args.method)
    workers = default_workers() if args.workers is None else args.workers
    preset = PRESETS[args.method]
    recipe = load_config(preset, ["model.require_weights=false"])
    tpu = 1 if args.toy else recipe.train.tasks_per_update
    if args.tasks % tpu:
        ap.error(f"--tasks {args.tasks} must be a multiple of {preset}'s train.tasks_per_update ({tpu})")

    over = [
        f"data.splits={bench_root / 'splits'}",
        f"data.workers={workers}",
        f"model.backbone_weights={weights}",
        f"train.device={args.device}",
        f"train.tasks={args.tasks}",
        f"train.val_every={args.tasks}",
        f"train.log_every={tpu if args.tasks >= 2 * tpu else args.tasks}",
        "train.val_episodes=4",
        "eval.episodes=8",
        "eval.order_episodes=0",
        "train.tensorboard=false",
        f"data.augment_on={args.augment_on}",
    ]
    if args.method == "tats":
        over.append(f"data.tracks={bench_root / 'tracks'}")
    if args.toy:  # small frames and one task per update; the network keeps its real layout
        over.append("train.tasks_per_update=1")
        over += (
            ["data.resize_to=[56,56]", "model.kwargs.grid_size=4"]
            if args.method == "tats"
            else ["data.resize_short=136", "data.crop=128"]
        )
    cfg = load_config(preset, [f"data.root={bench_root / 'videos'}", *over])
    data = cfg.data
    bench = load_benchmark("hmdb51", root=bench_root / "videos", splits_dir=bench_root / "splits")
    t0 = time.perf_counter()
    if args.source == "store":
        store = args.work / f"store_{args.method}{'_toy' if args.toy else ''}"
        prepare_clip_store(
            bench,
            store,
            splits=("train", "val", "test"),
            num_frames=data.num_frames,
            frame_sampler=data.frame_sampler,
            resize_short=data.resize_short,
            resize_to=data.resize_to,
            tracks=data.tracks,
            workers=min(workers, 8),
            progress=False,
        )
        over.append(f"data.clip_store={store}")
        root = bench_root / "videos"
    else:
        root = args.work / "frames"
        prepare_frame_folders(bench, root, splits=("train", "val", "test"), progress=False)
    seconds[f"prepare_{args.source}"] = time.perf_counter() - t0
    cfg = load_config(preset, [f"data.root={root}", *over])

    import torch

    run = args.work / f"run_{args.method}_{args.source}_{args.augment_on}{'_toy' if args.toy else ''}"
    t0 = time.perf_counter()
    result = Trainer(cfg, run, resume=False).fit()
    seconds["fit"] = time.perf_counter() - t0
    rows = list(csv.DictReader((run / "train_log.csv").open()))
    rates = steady_rates(rows)
    peak = float(rows[-1]["peak_memory_mib"]) if "peak_memory_mib" in rows[-1] else None
    projected = {}
    for name in FULL_RECIPES:
        full = load_config(f"{args.method}_{name}", ["model.require_weights=false"]).train.tasks
        hours_1 = full / rates["episodes_per_s"] / 3600
        projected[f"{args.method}_{name}"] = {
            "tasks": full,
            "hours_1_gpu": round(hours_1, 2),
            "hours_8_gpus_linear": round(hours_1 / 8, 2),
            "loader_workers_8_gpus": 8 * workers,
        }
    summary = {
        "method": args.method,
        "preset": preset,
        "source": args.source,
        "augment_on": args.augment_on,
        "toy": args.toy,
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
        "host_cores": os.cpu_count(),
        "workers": workers,
        "tasks": args.tasks,
        "videos": {"count": args.classes * args.videos_per_class, "size": [w, h], "frames": args.frames},
        **rates,
        "peak_memory_mib": peak,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "test_mean": result.get("test_mean"),
        "projected_training_only": projected,
        "note": "projection: the preset's train.tasks / the steady rate; validation and test not included; the "
        "8-GPU figure assumes linear scaling (an upper bound on speed) with 8x the loader workers",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        json.dumps(
            {k: summary[k] for k in ("method", "episodes_per_s", "data_wait_fraction", "peak_memory_mib")}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
