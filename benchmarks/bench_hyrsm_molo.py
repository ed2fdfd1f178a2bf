"""Benchmark the vectorised HyRSM and MoLo heads against their loop forms, side by side.

Wang et al., "Hybrid Relation Guided Set Matching for Few-shot Action Recognition", CVPR 2022; Wang et al., "MoLo:
Motion-augmented Long-short Contrastive Learning for Few-shot Action Recognition", CVPR 2023.

The loop forms (:mod:`fsar.models.hyrsm.loop`, :mod:`fsar.models.molo.loop`) write the equations out: attention head
by head and video by video, the set relation and the fusion ``Conv1d`` on ``[frames; relation]`` per (query,
element) pair, prototypes and Bi-MHM class by class and query by query, the contrastive sums token by token. The
vectorised heads (:class:`fsar.models.hyrsm.HyRSM`, :class:`fsar.models.molo.MoLo`) compute all pairs at once.

Parts (``--parts``):
- ``hyrsm``: the whole HyRSM head from per-frame vectors ``[V, T, D]`` (PE, self-attention, set relation, fusion,
  Bi-MHM, class logits);
- ``molo_episode``: MoLo's episode part from the token sequences (prototypes, the two Bi-MHMs, the four
  contrastive logits), where the vectorisation lives;
- ``molo_full``: the whole MoLo head from layer-4 maps ``[V, T, D, 7, 7]`` (its convolutions and its decoder to
  224 px dominate and are the same work in both forms; minutes and several GB on a CPU, whatever D: use a GPU, or
  ``--map-size 2`` for a quick check).

Default size: D = 2048, T = 8, 5-way 5-shot with 5 queries per class (the training episode), fp32. Modes:
``forward`` (no grad) and ``backward`` (forward + backward of the few-shot cross-entropy with respect to the inputs
and every parameter). Dropout is off in both forms (the loop forms have none), so both modes run in eval mode.
Every (part, mode, impl) runs in a **fresh subprocess** (memory: extra resident memory on CPU, extra allocated memory
on CUDA; see ``_timing.py``); one more subprocess per part checks that both forms give the same logits.

Examples:
    python benchmarks/bench_hyrsm_molo.py --threads 1 --out benchmarks/results/DATE/hyrsm_molo.json
    python benchmarks/bench_hyrsm_molo.py --dim 64 --map-size 2 --repeats 1 --parts hyrsm molo_episode molo_full  # check
"""

from __future__ import annotations

import argparse
import json
import sys

from _timing import add_timing_arguments, comparison_cells, run_in_subprocess, time_passes, write_report

IMPLS = ("vectorised", "loop")
PARTS = ("hyrsm", "molo_episode", "molo_full")


def _setup(cfg: dict):
    import torch

    from fsar.models.hyrsm import HyRSM
    from fsar.models.molo import MoLo

    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    device, dtype = torch.device(cfg["device"]), getattr(torch, cfg["dtype"])
    torch.manual_seed(cfg["seed"])
    d, t, way, shot, queries = cfg["dim"], cfg["frames"], cfg["way"], cfg["shot"], cfg["queries"]
    num_classes = 64
    g = torch.Generator().manual_seed(cfg["seed"] + 1)
    labels = torch.arange(way).repeat_interleave(shot)
    labels = labels[torch.randperm(len(labels), generator=g)]  # any order, as the original's loader gives
    query_labels = torch.arange(way).repeat_interleave(queries).to(device)
    part = cfg["part"]
    if part == "hyrsm":
        head = HyRSM(d, t, num_classes)
        shapes = [(way * shot, t, d), (way * queries, t, d)]
    elif part == "molo_full":
        head = MoLo(d, t, num_classes)
        hw = cfg["map_size"]
        shapes = [(way * shot, t, d, hw, hw), (way * queries, t, d, hw, hw)]
    else:
        head = MoLo(d, t, num_classes)
        shapes = [
            (way * shot, t + 1, d),
            (way * shot, t, d),
            (way * queries, t + 1, d),
            (way * queries, t, d),
        ]
    head = head.to(device, dtype).eval()
    inputs = [torch.randn(*s, generator=g).to(device, dtype) for s in shapes]
    return torch, head, inputs, labels.to(device), query_labels


def _logits_fn(part: str, impl: str, head):
    if part == "hyrsm":
        from fsar.models.hyrsm.loop import hyrsm_loop_logits

        if impl == "vectorised":
            return lambda s, labels, q: head(s, labels, q).logits
        return lambda s, labels, q: hyrsm_loop_logits(head, s, labels, q)[0]
    if part == "molo_full":
        from fsar.models.molo.loop import molo_loop_output

        if impl == "vectorised":
            return lambda s, labels, q: head(s, labels, q).logits
        return lambda s, labels, q: molo_loop_output(head, s, labels, q)["logits"]
    from fsar.models.molo.loop import molo_loop_logits

    if impl == "vectorised":
        return lambda sa, sm, labels, qa, qm: head.episode_logits(sa, sm, labels, qa, qm)["logits"]
    return lambda sa, sm, labels, qa, qm: molo_loop_logits(
        head, list(zip(sa, sm, strict=True)), labels, list(zip(qa, qm, strict=True))
    )["logits"]


def _call(fn, part: str, inputs, labels):
    if part == "molo_episode":
        return fn(inputs[0], inputs[1], labels, inputs[2], inputs[3])
    return fn(inputs[0], labels, inputs[1])


def _worker(cfg: dict) -> dict:
    torch, head, inputs, labels, query_labels = _setup(cfg)
    import torch.nn.functional as F

    part = cfg["part"]
    device = inputs[0].device
    if cfg["mode"] == "check":
        with torch.no_grad():
            fast = _call(_logits_fn(part, "vectorised", head), part, inputs, labels)
            loop = _call(_logits_fn(part, "loop", head), part, inputs, labels)
        return {
            "max_abs_diff": (fast - loop).abs().max().item(),
            "max_abs_logit": loop.abs().max().item(),
            "same_argmax": bool((fast.argmax(-1) == loop.argmax(-1)).all()),
        }
    fn = _logits_fn(part, cfg["impl"], head)
    backward = cfg["mode"] == "backward"
    for x in inputs:
        x.requires_grad_(backward)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def one_pass() -> None:
        if backward:
            head.zero_grad(set_to_none=True)
            for x in inputs:
                x.grad = None
            F.cross_entropy(_call(fn, part, inputs, labels), query_labels).backward()
        else:
            with torch.no_grad():
                _call(fn, part, inputs, labels)
        sync()

    sync()
    return time_passes(one_pass, device, cfg["warmup"], cfg["repeats"])


def markdown_table(results: list[dict]) -> str:
    rows = [
        "| part | mode | vectorised ms | loop ms | time vectorised/loop | vectorised extra MB | loop extra MB "
        "| memory vectorised/loop |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keyed = {(r["part"], r["mode"], r["impl"]): r for r in results}
    for part, mode in dict.fromkeys((r["part"], r["mode"]) for r in results):
        fast, loop = keyed.get((part, mode, "vectorised"), {}), keyed.get((part, mode, "loop"), {})
        rows.append(f"| {part} | {mode} | {comparison_cells(fast, loop)} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_arguments(parser)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=["hyrsm", "molo_episode"])
    parser.add_argument("--dim", type=int, default=2048, help="D, feature size (default 2048)")
    parser.add_argument("--frames", type=int, default=8, help="T (default 8)")
    parser.add_argument(
        "--map-size", type=int, default=7, help="h = w of molo_full's maps (default 7: 224 px out)"
    )
    parser.add_argument("--way", type=int, default=5)
    parser.add_argument("--shot", type=int, default=5)
    parser.add_argument("--queries", type=int, default=5, help="queries per class (default 5, training)")
    parser.add_argument(
        "--modes", nargs="+", choices=["forward", "backward"], default=["forward", "backward"]
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
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
        "frames": args.frames,
        "map_size": args.map_size,
        "way": args.way,
        "shot": args.shot,
        "queries": args.queries,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "threads": args.threads,
        "seed": args.seed,
    }
    results, checks = [], {}
    for part in args.parts:
        for mode in args.modes:
            for impl in IMPLS:
                cfg = {**common, "part": part, "mode": mode, "impl": impl}
                print(f"[bench] {part} {mode} {impl} ...", file=sys.stderr, flush=True)
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
        checks[part] = run_in_subprocess(
            __file__, {**common, "part": part, "mode": "check", "impl": "both"}, args.timeout
        )
        print(f"[bench] {part} agreement (logits): {checks[part]}", file=sys.stderr, flush=True)
    table = markdown_table(results)
    print(table)
    write_report(args, results, table, agreement=checks)
    ok = all("error" not in r for r in results) and all("error" not in c for c in checks.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
