"""Training throughput of each method on the synthetic benchmark (the demo presets), side by side in one run.

For each method: load ``--episodes`` training episodes once (decoding timed separately, single process), then time
forward + backward + optimiser step over them after one warm-up episode. Reports episodes/s of the model step and
of data loading, and the process's peak RSS. Writes JSON, prints a markdown table.

    python benchmarks/bench_training.py --synthetic runs/demo/synthetic_default --out b.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch

METHODS = ("protonet", "otam", "ta2n", "tats")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synthetic", required=True, help="an `fsar synth --preset default` output folder")
    ap.add_argument("--tracks", default=None, help="LK tracks for TATs (default <synthetic>/tracks_lk)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--episodes", type=int, default=6)
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
    for method in args.methods.split(","):
        extra = [f"data.root={args.synthetic}"] + ([f"data.tracks={tracks}"] if method == "tats" else [])
        cfg = load_config(f"demo_{method}", extra)
        clips, _ = build_inputs(cfg, ("train",))
        train = clips["train"]
        sampler = EpisodeSampler(train.labels, 5, 1, cfg.episodes.train_queries, seed=0)
        dataset = EpisodeDataset(train, sampler.episode, args.episodes + 1, True, 0)
        t0 = time.perf_counter()
        items = [dataset[i] for i in range(args.episodes + 1)]
        t_data = (time.perf_counter() - t0) / len(items)
        torch.manual_seed(0)
        model = build_model(cfg, num_train_classes=train.num_classes)
        step = EpisodeStep(model).train()
        opt = build_optimizer(model, cfg.optim)
        times = []
        for i, (_, support, query) in enumerate(items):
            t0 = time.perf_counter()
            loss, _ = step(support, query)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i:  # the first episode is a warm-up
                times.append(time.perf_counter() - t0)
        t_step = sum(times) / len(times)
        rows.append(
            {
                "method": method,
                "step_seconds": t_step,
                "step_episodes_per_s": 1 / t_step,
                "data_seconds_per_episode": t_data,
                "videos_per_episode": 5 * (1 + cfg.episodes.train_queries),
                "params": sum(p.numel() for p in model.parameters()),
            }
        )
        print(f"| {method} | {1 / t_step:.2f} | {t_step:.2f} s | {t_data:.2f} s |", flush=True)
    result = {
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads",
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "rows": rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
