"""Time one TATs forward and forward+backward (Kumar et al., ECCV 2024) at the size of a training episode.

Default size = a 5-way 1-shot training episode of the reference recipe: B=35 videos, T=8 frames, N=256 points,
D=768 (DINOv2 ViT-B/14), 16x16 patch grid, 8 heads, depth 1, 64 classes. The backbone is not included: the
input is a random patch grid. Example:

    python benchmarks/bench_tats_block.py --device cuda --dtype bfloat16 --peak-tflops 989 --out tats_block.json
    python benchmarks/bench_tats_block.py --device cpu --batch 2 --points 64 --dim 128   # quick check

Prints a markdown table and writes the numbers as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from fsar.models.tats import TATs

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    p.add_argument("--batch", type=int, default=35, help="videos per episode (B)")
    p.add_argument("--frames", type=int, default=8, help="frames per video (T)")
    p.add_argument("--points", type=int, default=256, help="points per video (N)")
    p.add_argument("--dim", type=int, default=768, help="feature width (D)")
    p.add_argument("--grid", type=int, default=16, help="patch grid side (G)")
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--depth", type=int, default=1)
    p.add_argument("--classes", type=int, default=64)
    p.add_argument(
        "--dtype", choices=sorted(DTYPES), default="float32", help="autocast dtype (float32 = none)"
    )
    p.add_argument("--sampling", choices=["nearest_reference", "bilinear"], default="nearest_reference")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations")
    p.add_argument("--repeats", type=int, default=5, help="timed iterations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--mask",
        choices=["query", "all"],
        default="query",
        help="query: points start at random query frames (masked before); all: the all-True mask of the "
        "released data (lets PyTorch use its fused flash attention)",
    )
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the device's dense peak for --dtype in TFLOP/s (H100/H200 SXM bf16: 989); reports the share reached",
    )
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    return p.parse_args(argv)


def synchronize(device: torch.device) -> None:
    if device.type != "cpu":
        getattr(torch, device.type).synchronize(device)


def make_inputs(args: argparse.Namespace, device: torch.device):
    gen = torch.Generator().manual_seed(args.seed)
    b, t, n, g, d = args.batch, args.frames, args.points, args.grid, args.dim
    features = torch.randn(b, t, g, g, d, generator=gen)
    tracks = torch.rand(b, t, n, 2, generator=gen) * 2.2 - 1.1
    query_frame = torch.randint(0, max(t - 1, 1), (b, n), generator=gen)
    query_mask = torch.arange(t).view(1, t, 1) >= query_frame.view(b, 1, n)
    if args.mask == "all":
        query_mask = torch.ones_like(query_mask)
    return features.to(device), tracks.to(device), query_mask.to(device)


def time_it(fn, device: torch.device, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    model = TATs(
        feat_dim=args.dim,
        num_frames=args.frames,
        num_points=args.points,
        num_classes=args.classes,
        depth=args.depth,
        num_heads=args.heads,
        grid_size=args.grid,
        sampling=args.sampling,
        init_seed=args.seed,
        device=device,
    )
    features, tracks, query_mask = make_inputs(args, device)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def forward() -> None:
        model.eval()
        with torch.no_grad(), autocast:
            model(features, tracks, query_mask)

    def train_step() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        with autocast:
            out = model(features, tracks, query_mask)
            loss = out.cls_logits.float().logsumexp(-1).mean() + out.tokens.float().relu().mean()
        loss.backward()

    def forward_with_graph() -> None:  # the same FLOPs as forward(); PyTorch's counter needs autograd on
        model.eval()
        with autocast:
            model(features, tracks, query_mask)

    results = {}
    for name, fn in (("forward", forward), ("forward+backward", train_step)):
        with FlopCounterMode(display=False) as counter:  # matmuls and attention, counted by PyTorch
            (forward_with_graph if fn is forward else fn)()
        flops = counter.get_total_flops()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = time_it(fn, device, args.warmup, args.repeats)
        entry = {
            "median_ms": 1000 * statistics.median(times),
            "min_ms": 1000 * min(times),
            "max_ms": 1000 * max(times),
            "repeats": len(times),
            "gflop": flops / 1e9,
            "tflop_per_s": flops / statistics.median(times) / 1e12,
        }
        if args.peak_tflops:
            entry["fraction_of_peak"] = entry["tflop_per_s"] / args.peak_tflops
        if device.type == "cuda":
            entry["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        results[name] = entry
    device_name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    )
    return {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "device": device_name,
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokens_per_video": args.frames * args.points + 1,
        "results": results,
    }


def markdown(report: dict) -> str:
    c = report["config"]
    lines = [
        f"TATs block, B={c['batch']} T={c['frames']} N={c['points']} D={c['dim']} G={c['grid']} "
        f"heads={c['heads']} depth={c['depth']} dtype={c['dtype']} on {report['device']} (torch {report['torch']})",
        "",
        "| pass | median ms | min ms | max ms | peak MiB | GFLOP | TFLOP/s | share of peak |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["results"].items():
        peak = f"{r['peak_memory_mib']:.0f}" if "peak_memory_mib" in r else "-"
        share = f"{100 * r['fraction_of_peak']:.1f}%" if "fraction_of_peak" in r else "-"
        lines.append(
            f"| {name} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['max_ms']:.1f} | {peak} "
            f"| {r['gflop']:.1f} | {r['tflop_per_s']:.2f} | {share} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print(markdown(report))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
