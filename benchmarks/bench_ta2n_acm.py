"""Benchmark TA2N's exact fast path against the original's direct computation (``impl="fast"`` vs ``"reference"``).

Liu et al., "TA2N: Two-Stage Action Alignment Network for Few-shot Action Recognition", AAAI 2022; the fast
path is described in ``fsar.models.ta2n.acm_fast``. Scopes: ``acm`` (the ACM module alone, on n prototypes and
m queries) and ``ta2n`` (the whole module: TTM, multi-shot fusion, ACM). Modes: ``forward`` (eval mode, no
grad) and ``train`` (train mode, forward + backward of a scalar of both outputs, inputs requiring grad as when
the backbone is trained).

Every (episode, scope, impl, mode) runs in a **fresh subprocess**, so peak-memory readings do not mix:
- CUDA: ``torch.cuda.max_memory_allocated()`` over the warm-up and timed passes, minus the memory allocated
  before them (module + inputs): ``extra_mb``; ``peak_mb`` is the absolute value.
- CPU: the process's resident-set high-water mark (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) after the
  passes minus its value before them (module + inputs built): ``extra_mb``. This counts every allocation of the
  process (tracemalloc does not see torch's allocator), includes allocator caching and is in MB of RSS.
Times are wall-clock per pass (``time.perf_counter``; CUDA synchronised), median and min over ``--repeats``
after ``--warmup`` untimed passes. On a CPU shared with other jobs use ``--threads 1``: with several OpenMP
threads, one descheduled thread stalls every parallel region and timings swing by 2-5x between runs.

Examples:
    python benchmarks/bench_ta2n_acm.py --device cuda --repeats 5 --out bench_ta2n.json
    python benchmarks/bench_ta2n_acm.py --channels 512 --repeats 1 --scopes acm --out /tmp/b.json   # small CPU check
"""

from __future__ import annotations

import argparse
import json
import sys

from _timing import add_timing_arguments, comparison_cells, run_in_subprocess, time_passes, write_report

EPISODES = {"5w1s25q": (5, 1, 25), "5w5s5q": (5, 5, 5)}


def _parse_episode(text: str) -> tuple[str, tuple[int, int, int]]:
    if text in EPISODES:
        return text, EPISODES[text]
    try:
        way, shot, queries = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"episode {text!r}: use one of {sorted(EPISODES)} or way:shot:queries, e.g. 5:1:25"
        ) from None
    return f"{way}w{shot}s{queries}q", (way, shot, queries)


def _worker(cfg: dict) -> dict:

    import torch

    from fsar.models.ta2n import ACM, TA2N

    device = torch.device(cfg["device"])
    dtype = getattr(torch, cfg["dtype"])
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    way, shot, queries = cfg["way"], cfg["shot"], cfg["queries"]
    c, t, s = cfg["channels"], cfg["frames"], cfg["size"]
    torch.manual_seed(cfg["seed"])  # parameter init (fresh process; values do not matter for timing)
    if cfg["scope"] == "acm":
        module = ACM(T=t, shot=shot, dim=(c, c), impl=cfg["impl"])
        final = [module.offset_net.fc2]
        shapes = [(way, c, t, s, s), (queries, c, t, s, s)]
    else:
        module = TA2N(T=t, shot=shot, dim=(c, c), impl=cfg["impl"])
        final = [module.ttm.fc2, module.acm.offset_net.fc2]
        shapes = [(way * shot, c, t, s, s), (queries, c, t, s, s)]
    g = torch.Generator().manual_seed(cfg["seed"] + 1)
    with torch.no_grad():  # leave the zero init so that offsets and warps are not trivial
        for layer in final:
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * 0.5)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * 0.3)
    module = module.to(device=device, dtype=dtype)
    train = cfg["mode"] == "train"
    module.train(train)
    inputs = [
        torch.randn(shape, generator=g).to(device=device, dtype=dtype).requires_grad_(train)
        for shape in shapes
    ]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def one_pass() -> None:
        if train:
            module.zero_grad(set_to_none=True)
            for x in inputs:
                x.grad = None
            pairs, offsets = module(*inputs)[:2]
            (pairs.float().square().mean() + offsets.float().sum()).backward()
        else:
            with torch.no_grad():
                module(*inputs)
        sync()

    sync()
    return time_passes(one_pass, device, cfg["warmup"], cfg["repeats"])


def markdown_table(results: list[dict]) -> str:
    rows = [
        "| episode | scope | mode | fast ms | reference ms | time fast/ref | fast extra MB | reference extra MB "
        "| memory fast/ref |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    keyed = {(r["episode"], r["scope"], r["mode"], r["impl"]): r for r in results}
    for episode, scope, mode in dict.fromkeys((r["episode"], r["scope"], r["mode"]) for r in results):
        fast, ref = (
            keyed.get((episode, scope, mode, "fast"), {}),
            keyed.get((episode, scope, mode, "reference"), {}),
        )
        rows.append(f"| {episode} | {scope} | {mode} | {comparison_cells(fast, ref)} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_arguments(parser)
    parser.add_argument("--channels", type=int, default=2048, help="C (default 2048, ResNet-50)")
    parser.add_argument("--frames", type=int, default=8, help="T (default 8)")
    parser.add_argument("--size", type=int, default=7, help="H = W of the feature maps (default 7)")
    parser.add_argument(
        "--episodes",
        type=_parse_episode,
        nargs="+",
        default=[_parse_episode(k) for k in EPISODES],
        help="episodes as names (5w1s25q, 5w5s5q) or way:shot:queries (default: both named ones)",
    )
    parser.add_argument("--scopes", nargs="+", choices=["acm", "ta2n"], default=["acm", "ta2n"])
    parser.add_argument("--modes", nargs="+", choices=["forward", "train"], default=["forward", "train"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16", "float16"])
    parser.add_argument(
        "--threads", type=int, default=0, help="torch.set_num_threads (default: torch's choice)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per configuration")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")

    results = []
    for name, (way, shot, queries) in args.episodes:
        for scope in args.scopes:
            for mode in args.modes:
                for impl in ("fast", "reference"):
                    cfg = {
                        "episode": name,
                        "way": way,
                        "shot": shot,
                        "queries": queries,
                        "scope": scope,
                        "mode": mode,
                        "impl": impl,
                        "device": args.device,
                        "dtype": args.dtype,
                        "channels": args.channels,
                        "frames": args.frames,
                        "size": args.size,
                        "repeats": args.repeats,
                        "warmup": args.warmup,
                        "threads": args.threads,
                        "seed": args.seed,
                    }
                    print(f"[bench] {name} {scope} {mode} {impl} ...", file=sys.stderr, flush=True)
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
    table = markdown_table(results)
    print(table)
    write_report(args, results, table)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
