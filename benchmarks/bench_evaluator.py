"""Evaluation that does each piece of work once vs the naive per-episode evaluation (issue: 10,000 episodes).

Both evaluators run side by side in one process on the same fixed episode file over the synthetic benchmark's
test split: the cached evaluator on all ``--episodes`` episodes (decode + encode each test video once, then only the
pairwise part per episode), the naive one on the first ``--naive-episodes`` of them (decode + encode every video
of every episode, as the original code bases do). Their per-episode predictions are compared on the common
episodes, and the naive time for all episodes is its measured per-episode time times the episode count (the
naive cost is the same for every episode). Writes JSON and prints a markdown row.

    python benchmarks/bench_evaluator.py --synthetic runs/demo/synthetic_default --method protonet --out b.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synthetic", required=True, help="an `fsar synth` output folder")
    ap.add_argument("--method", default="protonet", help="demo preset method (protonet, otam, ta2n)")
    ap.add_argument("--episodes", type=int, default=10_000)
    ap.add_argument("--naive-episodes", type=int, default=200)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from fsar.data.episodes import EpisodeSampler
    from fsar.engine.build import build_model
    from fsar.engine.cached_eval import evaluate_cached
    from fsar.engine.config import load_config
    from fsar.engine.data_setup import build_inputs
    from fsar.engine.episode_data import EpisodeDataset, episode_loader
    from fsar.engine.evaluate import evaluate_naive
    from fsar.engine.protocol import summarize_accuracies

    cfg = load_config(f"demo_{args.method}", [f"data.root={args.synthetic}", "data.cache_clips=0"])
    clips, _ = build_inputs(cfg, ("test",))
    test = clips["test"]
    torch.manual_seed(0)
    model = build_model(cfg, num_train_classes=64).eval()
    episodes = EpisodeSampler(test.labels, 5, 1, 1, seed=1234).take(args.episodes)
    device = torch.device("cpu")

    t0 = time.perf_counter()
    cached = evaluate_cached(model, test, episodes, device, batch_videos=32, progress=False)
    t_cached = time.perf_counter() - t0

    subset = episodes[: args.naive_episodes]
    t0 = time.perf_counter()
    loader = episode_loader(EpisodeDataset(test, lambda i: subset[i], len(subset), False, cfg.eval.seed), 0)
    naive = evaluate_naive(model, loader, device)
    t_naive_subset = time.perf_counter() - t0
    t_naive = t_naive_subset / len(subset) * len(episodes)
    same = all(a.predictions == b.predictions for a, b in zip(naive, cached[: len(subset)]))
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} threads".strip(),
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "method": args.method,
        "test_videos": len(test.records),
        "episodes": len(episodes),
        "cached_seconds": t_cached,
        "naive_seconds_measured": t_naive_subset,
        "naive_episodes_measured": len(subset),
        "naive_seconds_for_all_episodes": t_naive,
        "speedup": t_naive / t_cached,
        "identical_predictions_on_common_episodes": same,
        "cached_accuracy": summarize_accuracies([r.accuracy for r in cached]).to_dict(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(
        f"| {args.method} | {len(episodes)} | {t_cached:.1f} s | {t_naive:.0f} s (from {len(subset)} episodes) | "
        f"{t_naive / t_cached:.0f}x | {'yes' if same else 'NO'} |"
    )


if __name__ == "__main__":
    main()
