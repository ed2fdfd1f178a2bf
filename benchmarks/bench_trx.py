"""Benchmark the vectorised TRX head against its loop form, side by side (``impl`` = ``vectorised`` / ``loop``).

Perrett et al., "Temporal-Relational CrossTransformers for Few-Shot Action Recognition", CVPR 2021. The loop form
(:func:`fsar.models.trx.trx_loop_logits`) follows the original's structure: tuples built by concatenating frame
features and projected one by one, a loop over the classes and, inside it, over the queries. The vectorised head
(:class:`fsar.models.trx.TRX`) computes all (query, class) pairs at once and projects each frame once per tuple
position. Default size: D = 2048 (ResNet-50), out 1152, T = 8, pairs and triples, 5-way 5-shot with 5 queries
per class (the training episode). Modes: ``forward`` (eval mode, no grad) and ``train`` (train mode, forward +
backward of the summed cross-entropy, with the frame features requiring grad as when the backbone is trained).

Every (impl, mode) runs in a **fresh subprocess**, so peak-memory readings do not mix:
- CUDA: ``torch.cuda.max_memory_allocated()`` over the passes minus the memory allocated before them: ``extra_mb``.
- CPU: the process's resident-set high-water mark (``ru_maxrss``) after the passes minus before them: ``extra_mb``
  (all allocations of the process, allocator caching included).
Times are wall-clock per pass (``time.perf_counter``; CUDA synchronised): median and min over ``--repeats`` after
``--warmup`` untimed passes. One more subprocess checks that both forms give the same logits (eval mode) and
reports the largest difference. On a CPU shared with other jobs use ``--threads 1`` and read the ratios.

Examples:
    python benchmarks/bench_trx.py --threads 1 --out benchmarks/results/DATE/trx.json
    python benchmarks/bench_trx.py --dim 256 --out-dim 128 --repeats 1     # quick check
"""

from __future__ import annotations

import argparse
import json
import sys

from _timing import add_timing_arguments, comparison_cells, run_in_subprocess, time_passes, write_report

IMPLS = ("vectorised", "loop")


def _setup(cfg: dict):
    import torch

    from fsar.models.trx import TRX

    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    device, dtype = torch.device(cfg["device"]), getattr(torch, cfg["dtype"])
    torch.manual_seed(cfg["seed"])
    head = TRX(cfg["dim"], cfg["frames"], cfg["cardinalities"], out_dim=cfg["out_dim"]).to(device, dtype)
    g = torch.Generator().manual_seed(cfg["seed"] + 1)
    way, shot, queries = cfg["way"], cfg["shot"], cfg["queries"]
    labels = torch.arange(way).repeat_interleave(shot)
    labels = labels[torch.randperm(len(labels), generator=g)].to(device)  # any order, as in the original
    support = torch.randn(way * shot, cfg["frames"], cfg["dim"], generator=g).to(device, dtype)
    query = torch.randn(way * queries, cfg["frames"], cfg["dim"], generator=g).to(device, dtype)
    query_labels = torch.arange(way).repeat_interleave(queries).to(device)
    return torch, head, support, labels, query, query_labels


def _logits_fn(impl: str, head):
    from fsar.models.trx import trx_loop_logits

    if impl == "vectorised":
        return head
    return lambda s, labels, q: trx_loop_logits(head, s, labels, q)


def _worker(cfg: dict) -> dict:

    torch, head, support, labels, query, query_labels = _setup(cfg)
    import torch.nn.functional as F

    device = support.device
    if cfg["mode"] == "check":
        head.eval()
        with torch.no_grad():
            fast = head(support, labels, query)
            loop = _logits_fn("loop", head)(support, labels, query)
        return {
            "max_abs_diff": (fast - loop).abs().max().item(),
            "max_abs_logit": loop.abs().max().item(),
            "same_argmax": bool((fast.argmax(-1) == loop.argmax(-1)).all()),
        }
    fn = _logits_fn(cfg["impl"], head)
    train = cfg["mode"] == "train"
    head.train(train)
    support.requires_grad_(train)
    query.requires_grad_(train)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def one_pass() -> None:
        if train:
            head.zero_grad(set_to_none=True)
            support.grad = query.grad = None
            F.cross_entropy(fn(support, labels, query), query_labels, reduction="sum").backward()
        else:
            with torch.no_grad():
                fn(support, labels, query)
        sync()

    sync()
    return time_passes(one_pass, device, cfg["warmup"], cfg["repeats"])


def markdown_table(results: list[dict]) -> str:
    rows = [
        "| mode | vectorised ms | loop ms | time vectorised/loop | vectorised extra MB | loop extra MB "
        "| memory vectorised/loop |",
        "|---|---|---|---|---|---|---|",
    ]
    keyed = {(r["mode"], r["impl"]): r for r in results}
    for mode in dict.fromkeys(r["mode"] for r in results):
        fast, loop = keyed.get((mode, "vectorised"), {}), keyed.get((mode, "loop"), {})
        rows.append(f"| {mode} | {comparison_cells(fast, loop)} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_arguments(parser)
    parser.add_argument("--dim", type=int, default=2048, help="D, per-frame feature size (default 2048)")
    parser.add_argument("--out-dim", type=int, default=1152, help="key/value size (default 1152)")
    parser.add_argument("--frames", type=int, default=8, help="T (default 8)")
    parser.add_argument("--cardinalities", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--way", type=int, default=5)
    parser.add_argument("--shot", type=int, default=5)
    parser.add_argument("--queries", type=int, default=5, help="queries per class (default 5, training)")
    parser.add_argument("--modes", nargs="+", choices=["forward", "train"], default=["forward", "train"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16"])
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per configuration")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")

    common = {
        "device": args.device,
        "dtype": args.dtype,
        "dim": args.dim,
        "out_dim": args.out_dim,
        "frames": args.frames,
        "cardinalities": args.cardinalities,
        "way": args.way,
        "shot": args.shot,
        "queries": args.queries,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "threads": args.threads,
        "seed": args.seed,
    }
    results = []
    for mode in args.modes:
        for impl in IMPLS:
            cfg = {**common, "mode": mode, "impl": impl}
            print(f"[bench] {mode} {impl} ...", file=sys.stderr, flush=True)
            result = {**cfg, **run_in_subprocess(__file__, cfg, args.timeout)}
            if "error" in result:
                print(f"[bench]   error: {result['error']}", file=sys.stderr, flush=True)
            else:
                print(
                    f"[bench]   {result['time_median_s'] * 1e3:.1f} ms, +{result['extra_mb']:.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )
            results.append(result)
    check = run_in_subprocess(__file__, {**common, "mode": "check", "impl": "both"}, args.timeout)
    print(f"[bench] agreement (eval-mode logits): {check}", file=sys.stderr, flush=True)
    table = markdown_table(results)
    print(table)
    write_report(args, results, table, agreement=check)
    return 0 if all("error" not in r for r in results) and "error" not in check else 1


if __name__ == "__main__":
    sys.exit(main())
