"""Training throughput of each method on the synthetic benchmark (the demo presets), side by side in one run.

For each method: load ``--episodes`` training episodes once (from the clip store when ``--clip-store`` is given,
else by decoding; timed separately, single process), then time forward + backward + optimiser step over them after
one warm-up episode, for each variant: ``fp32``, ``bf16`` (``torch.autocast``; distances stay fp32) and, with
``--compile``, ``fp32+compile`` (``torch.compile`` of the backbone). Variants alternate over ``--rounds`` rounds so
that a change of machine load hits all of them alike; the median per variant is reported. Writes JSON, prints a
markdown table.

    python benchmarks/bench_training.py --synthetic runs/demo/synthetic_default \\
        --clip-store runs/demo/synthetic_default/clip_store --compile --out b.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

METHODS = ("protonet", "otam", "ta2n", "tats", "trx")


def _variants(with_compile: bool) -> list[str]:
    return ["fp32", "bf16"] + (["fp32+compile"] if with_compile else [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synthetic", required=True, help="an `fsar synth --preset default` output folder")
    ap.add_argument("--tracks", default=None, help="LK tracks for TATs (default <synthetic>/tracks_lk)")
    ap.add_argument(
        "--clip-store", default=None, help="a clip store of the demo settings (fsar data prepare)"
    )
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--episodes", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the backbone")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from fsar.data.episodes import EpisodeSampler
    from fsar.engine.build import build_model, build_optimizer
    from fsar.engine.config import load_config
    from fsar.engine.data_setup import build_inputs
    from fsar.engine.episode_data import EpisodeDataset
    from fsar.engine.trainer import EpisodeStep

    tracks = args.tracks or str(Path(args.synthetic) / "tracks_lk")
    rows = []
    print("| method | variant | step episodes/s | step s | data s/episode |")
    print("|---|---|---|---|---|")
    for method in args.methods.split(","):
        extra = [f"data.root={args.synthetic}"] + ([f"data.tracks={tracks}"] if method == "tats" else [])
        if args.clip_store:
            extra.append(f"data.clip_store={args.clip_store}")
        cfg = load_config(f"demo_{method}", extra)
        clips, _ = build_inputs(cfg, ("train",))
        train = clips["train"]
        sampler = EpisodeSampler(train.labels, 5, 1, cfg.episodes.train_queries, seed=0)
        dataset = EpisodeDataset(train, sampler.episode, args.episodes + 1, True, 0)
        t0 = time.perf_counter()
        items = [dataset[i] for i in range(args.episodes + 1)]
        t_data = (time.perf_counter() - t0) / len(items)
        models = {}
        for variant in _variants(args.compile):
            torch.manual_seed(0)
            model = build_model(cfg, num_train_classes=train.num_classes)
            if variant.endswith("compile"):
                model.backbone = torch.compile(model.backbone)
            models[variant] = (model, EpisodeStep(model).train(), build_optimizer(model, cfg.optim))
        times: dict[str, list[float]] = {v: [] for v in models}
        for _ in range(args.rounds):
            for variant, (_model, step, opt) in models.items():
                autocast = (
                    torch.autocast("cpu", dtype=torch.bfloat16)
                    if variant == "bf16"
                    else contextlib.nullcontext()
                )
                per_episode = []
                for i, (_, support, query) in enumerate(items):
                    t0 = time.perf_counter()
                    with autocast:
                        loss, _ = step(support, query)
                    loss.backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    if i:  # the first episode of a round is a warm-up (and compiles)
                        per_episode.append(time.perf_counter() - t0)
                times[variant].append(statistics.mean(per_episode))
        for variant, ts in times.items():
            t_step = statistics.median(ts)
            rows.append(
                {
                    "method": method,
                    "variant": variant,
                    "step_seconds": t_step,
                    "step_episodes_per_s": 1 / t_step,
                    "round_seconds": ts,
                    "data_seconds_per_episode": t_data,
                    "data_source": "clip store" if args.clip_store else "videos",
                    "videos_per_episode": 5 * (1 + cfg.episodes.train_queries),
                    "params": sum(p.numel() for p in models[variant][0].parameters()),
                }
            )
            print(f"| {method} | {variant} | {1 / t_step:.2f} | {t_step:.3f} | {t_data:.3f} |", flush=True)
    result = {
        "machine": f"{platform.machine()} {platform.processor()} {torch.get_num_threads()} threads",
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "rows": rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
