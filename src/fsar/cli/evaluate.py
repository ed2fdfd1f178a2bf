"""``fsar eval CHECKPOINT``: the evaluation protocol on a trained checkpoint."""

from __future__ import annotations

import argparse

from fsar.cli.overrides import add_overrides


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint on fixed seeded episodes (mean accuracy with 95%% intervals)",
        description="Evaluate a checkpoint with the field's protocol: N seeded (or file-given) episodes, mean "
        "accuracy with the 1.96*sigma/sqrt(N) and t intervals, per-episode CSV.",
    )
    p.add_argument("checkpoint", help="a best.pt / last.pt written by `fsar train`")
    add_overrides(p, "config overrides, e.g. data.root=DIR eval.batch_videos=64")
    p.add_argument(
        "--split", choices=("train", "val", "test"), default=None, help="split (default: eval.split)"
    )
    p.add_argument("--episodes", type=int, default=None, help="number of episodes (default: eval.episodes)")
    p.add_argument("--episode-file", default=None, help="fixed episode file (JSON); written if absent")
    p.add_argument("--shot", type=int, default=None, help="evaluate with another shot count")
    p.add_argument("--csv", default=None, help="per-episode CSV path (default next to the checkpoint)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: train.device of the checkpoint)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from fsar.engine.data_setup import build_inputs
    from fsar.engine.protocol import write_episode_csv
    from fsar.engine.trainer import (
        evaluate_split,
        format_order_sensitive,
        model_from_checkpoint,
        order_episodes,
        order_sensitive_report,
        test_episodes,
    )
    from fsar.errors import EpisodeError

    overrides = list(args.overrides)
    if args.split:
        overrides.append(f"eval.split={args.split}")
    if args.episodes:
        overrides.append(f"eval.episodes={args.episodes}")
    if args.episode_file:
        overrides.append(f"eval.episode_file={args.episode_file}")
    if args.shot:
        overrides.append(f"episodes.shot={args.shot}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    cfg, model, device = model_from_checkpoint(args.checkpoint, None, overrides)
    clips = build_inputs(cfg, (cfg.eval.split,))[0][cfg.eval.split]
    ep = cfg.episodes
    episodes = test_episodes(cfg, clips, ep.way, ep.shot, ep.test_queries)
    outcome = evaluate_split(model, clips, episodes, device, cfg, cfg.eval.seed, desc=clips.name)
    csv_path = (
        Path(args.csv) if args.csv else Path(args.checkpoint).with_name(f"eval_{clips.name}_episodes.csv")
    )
    write_episode_csv(csv_path, outcome.results, clips.twins)
    s = outcome.summary
    print(
        f"{cfg.model.name} on {cfg.data.benchmark} {clips.name}, {ep.way}-way {ep.shot}-shot: "
        f"{s.mean:.2f} ± {s.ci95:.2f} (t: ± {s.ci95_t:.2f}) over {s.episodes} episodes"
    )
    order = None
    if clips.twins and cfg.eval.order_episodes > 0:
        try:
            order_eps = order_episodes(cfg, clips, csv_path.with_name(csv_path.stem + "_order_episodes.json"))
        except EpisodeError as exc:
            print(f"order episodes skipped: {exc}")
        else:
            order = evaluate_split(model, clips, order_eps, device, cfg, cfg.eval.seed, desc="order")
            write_episode_csv(csv_path.with_name(csv_path.stem + "_order.csv"), order.results, clips.twins)
    report = {**s.to_dict(), **order_sensitive_report(outcome, order, clips.twins)}
    for line in format_order_sensitive({f"test_{k}": v for k, v in s.to_dict().items()} | report):
        print(line)
    print(json.dumps(report))
    print(f"per-episode results: {csv_path}")
    return 0
