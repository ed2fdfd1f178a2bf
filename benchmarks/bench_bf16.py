"""bf16 autocast against fp32 for evaluation episodes: speed ratio and how far the logits and predictions move.

Two parts, each forward only (eval mode, no grad), at the real size of the published recipes by default:

- ``ta2n``: the TA2N module, fast path (Li et al., "TA2N: Two-Stage Action Alignment Network for Few-shot Action
  Recognition", AAAI 2022; ``fsar.models.ta2n``): ResNet-50 layer-4 maps C = 2048, T = 8, 7x7, 5-way 1-shot with
  25 queries; logits = -time-wise cosine distance, as ``TA2NClassifier``.
- ``tats``: the TATs network and its Bi-MHM head (Kumar et al., "Trajectory-aligned Space-time Tokens for Few-shot
  Action Recognition", ECCV 2024; ``fsar.models.tats``): DINOv2 ViT-B patch grids 16x16x768, T = 8, N = 256
  points, 8 heads, depth 1, 5-way 1-shot with 6 queries per class (35 videos, the size of
  ``bench_tats_block.py``).

Each episode draws new random inputs with class structure (a video's features are ``signal * class pattern +
noise``, with ``signal`` set per part so that fp32 is right on most but not all queries; ReLU'd for TA2N like
ResNet maps; random point tracks for TATs) and random weights with non-trivial TTM warps and ACM offsets. The same
model and inputs run in three variants, in an order that rotates between episodes:

- ``fp32``: the reference;
- ``bf16``: everything under ``torch.autocast(dtype=bfloat16)``, as ``train.precision=bf16`` runs the models;
- ``bf16_fp32_head``: the network under bf16 autocast, the final distance (TA2N's time-wise cosine, TATs' frame
  descriptors, prototypes and Bi-MHM) in fp32 on fp32 copies of its inputs, the way OTAM computes its costs.

Reported per part and variant: median time and the median per-episode time ratio to fp32; over all episodes, the
largest and the mean relative error of the logits (``|x - fp32| / |fp32|``), the largest absolute error, the
fraction of queries whose predicted class equals fp32's, and the accuracy against the true classes (how hard the
episodes were; chance is 20%). One untimed warm-up pass per variant comes first. On CUDA, TF32 is switched off for
the fp32 reference.

    python benchmarks/bench_bf16.py --out bf16.json                          # real size, CPU (minutes)
    python benchmarks/bench_bf16.py --quick                                  # small sizes, seconds
    python benchmarks/bench_bf16.py --device cuda --episodes 10 --out bf16_cuda.json

On a CPU shared with other jobs keep ``--threads 1`` (default) and compare ratios, not absolute times.
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

# ``signal``: class-pattern strength, chosen so that fp32 is right on roughly 40-80% of the queries (measured on one
# episode of each size): the decisions are neither trivial nor chance, so changed predictions would show.
REAL = {
    "ta2n": dict(channels=2048, frames=8, size=7, way=5, shot=1, queries=25, signal=0.4),
    "tats": dict(dim=768, frames=8, points=256, grid=16, heads=8, way=5, shot=1, queries=30, signal=0.5),
}
QUICK = {
    "ta2n": dict(channels=64, frames=8, size=7, way=5, shot=1, queries=10, signal=1.5),
    "tats": dict(dim=64, frames=8, points=32, grid=4, heads=4, way=5, shot=1, queries=10, signal=0.8),
}


def _labels(way: int, count: int) -> torch.Tensor:
    return torch.arange(count) % way


def ta2n_part(size: dict, device: torch.device, seed: int):
    """``(run, labels)``: ``run()`` returns the logits [Q, way] of one random TA2N episode."""
    from fsar.models.ta2n import TA2N, timewise_cos

    c, t, s, way, shot, q = (size[k] for k in ("channels", "frames", "size", "way", "shot", "queries"))
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    module = TA2N(T=t, shot=shot, dim=(c, c), impl="fast")
    with torch.no_grad():  # the last layers start at zero: give TTM warps and ACM offsets something to do
        for layer in (module.ttm.fc2, module.acm.offset_net.fc2):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * 0.5)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen) * 0.3)
    module = module.to(device).eval()
    patterns = torch.randn(way, c, t, s, s, generator=gen)
    labels = _labels(way, q)
    support = torch.relu(
        size["signal"] * patterns.repeat_interleave(shot, 0)
        + torch.randn(way * shot, c, t, s, s, generator=gen)
    )
    query = torch.relu(size["signal"] * patterns[labels] + torch.randn(q, c, t, s, s, generator=gen))
    support, query = support.to(device), query.to(device)

    def run(fp32_head: bool = False) -> torch.Tensor:
        pairs = module(support, query)[0]
        with torch.autocast(device.type, enabled=not fp32_head and torch.is_autocast_enabled(device.type)):
            pairs = pairs.float() if fp32_head else pairs
            return -timewise_cos(pairs[:, :, :c], pairs[:, :, c:]).transpose(0, 1)

    return run, labels


def tats_part(size: dict, device: torch.device, seed: int):
    """``(run, labels)``: ``run()`` returns the Bi-MHM logits [Q, way] of one random TATs episode."""
    from fsar.models.tats import TATs
    from fsar.models.tats.head import class_prototypes, few_shot_logits, frame_descriptors

    d, t, n, g, heads, way, shot, q = (
        size[k] for k in ("dim", "frames", "points", "grid", "heads", "way", "shot", "queries")
    )
    gen = torch.Generator().manual_seed(seed)
    model = TATs(
        feat_dim=d,
        num_frames=t,
        num_points=n,
        num_classes=64,
        depth=1,
        num_heads=heads,
        grid_size=g,
        init_seed=seed,
        device=device,
    ).eval()
    labels = _labels(way, q)
    videos = torch.cat([torch.arange(way).repeat_interleave(shot), labels])
    b = len(videos)
    patterns = torch.randn(way, t, g, g, d, generator=gen)
    features = size["signal"] * patterns[videos] + torch.randn(b, t, g, g, d, generator=gen)
    tracks = torch.rand(b, t, n, 2, generator=gen) * 2.2 - 1.1
    query_frame = torch.randint(0, max(t - 1, 1), (b, n), generator=gen)
    query_mask = torch.arange(t).view(1, t, 1) >= query_frame.view(b, 1, n)
    features, tracks, query_mask = features.to(device), tracks.to(device), query_mask.to(device)
    ns = way * shot

    def run(fp32_head: bool = False) -> torch.Tensor:
        tokens = model(features, tracks, query_mask).tokens
        with torch.autocast(device.type, enabled=not fp32_head and torch.is_autocast_enabled(device.type)):
            tokens = tokens.float() if fp32_head else tokens
            protos, _ = class_prototypes(tokens[:ns], way, shot)
            return few_shot_logits(frame_descriptors(tokens[ns:]), frame_descriptors(protos))

    return run, labels


PARTS = {"ta2n": ta2n_part, "tats": tats_part}
VARIANTS = ("fp32", "bf16", "bf16_fp32_head")


def measure(part: str, size: dict, device: torch.device, episodes: int, seed: int) -> dict:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def timed(run, variant: str) -> tuple[torch.Tensor, float]:
        sync()
        start = time.perf_counter()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant != "fp32"):
            logits = run(fp32_head=variant == "bf16_fp32_head")
        sync()
        return logits.float().cpu(), time.perf_counter() - start

    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    logits: dict[str, list[torch.Tensor]] = {v: [] for v in VARIANTS}
    labels_all = []
    for e in range(episodes):
        run, labels = PARTS[part](size, device, seed + e)
        if e == 0:  # warm-up (kernel selection, oneDNN JIT), not timed
            for variant in VARIANTS:
                timed(run, variant)
        k = e % len(VARIANTS)
        for variant in VARIANTS[k:] + VARIANTS[:k]:  # the order rotates from episode to episode
            out, seconds = timed(run, variant)
            times[variant].append(seconds)
            logits[variant].append(out)
        labels_all.append(labels)
        shown = ", ".join(f"{v} {times[v][-1]:.3f} s" for v in VARIANTS)
        print(f"[bf16] {part} episode {e}: {shown}", file=sys.stderr, flush=True)
    labels = torch.cat(labels_all)
    ref = torch.cat(logits["fp32"])
    out = {
        "size": size,
        "episodes": episodes,
        "queries_compared": int(len(labels)),
        "fp32_median_s": statistics.median(times["fp32"]),
        "fp32_accuracy": float((ref.argmax(1) == labels).float().mean()),
        "fp32_logit_abs_mean": float(ref.abs().mean()),
        "times_s": times,
    }
    for variant in VARIANTS[1:]:
        low = torch.cat(logits[variant])
        diff = (low - ref).abs()
        rel = diff / ref.abs().clamp_min(1e-12)
        out[variant] = {
            "median_s": statistics.median(times[variant]),
            "time_over_fp32_median": statistics.median(a / b for a, b in zip(times[variant], times["fp32"])),
            "logit_max_abs_error": float(diff.max()),
            "logit_max_rel_error": float(rel.max()),
            "logit_mean_rel_error": float(rel.mean()),
            "prediction_agreement": float((low.argmax(1) == ref.argmax(1)).float().mean()),
            "accuracy": float((low.argmax(1) == labels).float().mean()),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    ap.add_argument("--parts", default="ta2n,tats", help="comma-separated: ta2n, tats (default both)")
    ap.add_argument(
        "--episodes", type=int, default=None, help="random episodes per part (default 5 TA2N, 3 TATs)"
    )
    ap.add_argument(
        "--signal", type=float, default=None, help="class-pattern strength (default: per part, see REAL)"
    )
    ap.add_argument(
        "--quick", action="store_true", help="small sizes and 2 episodes: checks the script in seconds"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        ap.error(f"--parts takes ta2n and/or tats, got {args.parts!r}")
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = (
            False  # a true fp32 reference
        )
    torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else REAL
    results = {}
    for part in parts:
        episodes = args.episodes or (2 if args.quick else {"ta2n": 5, "tats": 3}[part])
        size = dict(sizes[part]) if args.signal is None else {**sizes[part], "signal": args.signal}
        results[part] = measure(part, size, device, episodes, args.seed)
    print(
        "| part | variant | episodes (queries) | median s | time / fp32 | logit max rel err | mean rel err "
        "| same prediction as fp32 | accuracy |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for part, r in results.items():
        n = f"{r['episodes']} ({r['queries_compared']})"
        print(
            f"| {part} | fp32 | {n} | {r['fp32_median_s']:.3f} | 1 | - | - | - | {100 * r['fp32_accuracy']:.1f}% |"
        )
        for variant in VARIANTS[1:]:
            v = r[variant]
            print(
                f"| {part} | {variant} | {n} | {v['median_s']:.3f} | {v['time_over_fp32_median']:.2f} | "
                f"{v['logit_max_rel_error']:.2e} | {v['logit_mean_rel_error']:.2e} | "
                f"{100 * v['prediction_agreement']:.1f}% | {100 * v['accuracy']:.1f}% |"
            )
    report = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "cpu_bf16_amx": _cpu_flags(),
        "torch": torch.__version__,
        "threads": args.threads,
        "date": time.strftime("%Y-%m-%d"),
        "quick": args.quick,
        "signal_override": args.signal,
        "results": results,
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"[bf16] wrote {args.out}", file=sys.stderr)
    return 0


def _cpu_flags() -> dict:
    """Whether the CPU has native bf16 instructions (AVX512-BF16, AMX-BF16), from /proc/cpuinfo on Linux."""
    try:
        flags = next(
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
        ).split()
    except (OSError, StopIteration):
        return {}
    return {f: f in flags for f in ("avx512_bf16", "amx_bf16", "amx_tile")}


if __name__ == "__main__":
    sys.exit(main())
