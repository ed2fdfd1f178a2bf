"""CPU cost of STRM relative to TRX on the demo's shapes, side by side in one process (CPU seconds).

Both classifiers are built from their demo presets (``demo_trx``: pairs and triples; ``demo_strm``: pairs only, with
patch attention, frame mixer and the patch-level classifier) on the same random small CNN, and timed alternately:

- a training episode: encode 5 support + 25 query clips, logits, loss, backward (5-way 1-shot, 5 queries per class);
- encoding 10 clips in eval mode (what the caching evaluator does once per test video);
- the head of one cached test episode (5-way 1-shot, 1 query per class).

Usage: ``python benchmarks/bench_strm_vs_trx.py [--repeats 5] [--threads 1]``. Under load the ratios still hold
roughly (the two models alternate); absolute numbers do not.
"""

from __future__ import annotations

import argparse
import time

import torch

from fsar.data.batch import ClipBatch
from fsar.engine.build import build_model
from fsar.engine.config import load_config


def clips(labels: list[int], seed: int, frames: int = 8, size: int = 32) -> ClipBatch:
    g = torch.Generator().manual_seed(seed)
    y = torch.as_tensor(labels)
    pixels = torch.rand(len(labels), frames, 6, size, size, generator=g)  # the demo's RGB + frame difference
    return ClipBatch(frames=pixels, labels=y, global_labels=y, video_ids=[str(i) for i in range(len(labels))])


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = {}
    for method in ("trx", "strm"):
        torch.manual_seed(0)
        models[method] = build_model(load_config(f"demo_{method}", ["model.require_weights=false"]), 64)
    support, train_query, test_query = (
        clips(list(range(5)), 1),
        clips([c for c in range(5) for _ in range(5)], 2),
        clips(list(range(5)), 3),
    )
    parts = ("train episode", "encode 10 clips", "cached test episode")
    cpu = {p: {m: 0.0 for m in models} for p in parts}
    for rep in range(args.repeats + 1):  # the first round warms up
        for method, model in models.items():
            model.train()
            t0 = time.process_time()
            s, q = model.encode(support), model.encode(train_query)
            model.loss(model.episode_logits(s, support.labels, q), train_query.labels).backward()
            t1 = time.process_time()
            model.eval()
            with torch.no_grad():
                s, q = model.encode(support), model.encode(test_query)
                t2 = time.process_time()
                for _ in range(10):
                    model.episode_logits(s, support.labels, q)
                t3 = time.process_time()
            if rep:
                cpu["train episode"][method] += t1 - t0
                cpu["encode 10 clips"][method] += t2 - t1
                cpu["cached test episode"][method] += (t3 - t2) / 10
    for part, per in cpu.items():
        trx, strm = per["trx"] / args.repeats, per["strm"] / args.repeats
        print(f"{part}: trx {1000 * trx:.1f} ms, strm {1000 * strm:.1f} ms CPU, strm/trx {strm / trx:.2f}")
    return cpu


if __name__ == "__main__":
    main()
