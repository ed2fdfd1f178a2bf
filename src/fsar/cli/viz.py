"""``fsar viz``: pictures of what the methods do (point tracks over frames; TA2N's time warps and offsets)."""

from __future__ import annotations

import argparse

from fsar.cli.overrides import add_overrides


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "viz", help="draw point tracks over frames, or one episode's TA2N alignment, as PNG"
    )
    sub = p.add_subparsers(dest="viz_command", metavar="WHAT", required=True)
    t = sub.add_parser(
        "tracks",
        help="a video's point tracks over its frames",
        description="Draw a track file over its video.",
    )
    t.add_argument("--video", required=True, help="video file or frame folder")
    t.add_argument("--tracks", required=True, help="track file (.npz from `fsar track`)")
    t.add_argument("--frames", type=int, default=8, help="frames to show, uniform over the track timeline")
    t.add_argument(
        "--points", default="sampled", choices=("sampled", "all"), help="the fixed subset or every point"
    )
    t.add_argument("--out", required=True, help="output PNG")
    t.set_defaults(func=run_tracks)
    a = sub.add_parser(
        "ta2n",
        help="one episode's TTM time warps and ACM offsets",
        description="Evaluate one episode with a TA2N checkpoint and draw each video's TTM warp and the ACM offsets.",
    )
    a.add_argument("checkpoint")
    add_overrides(a, "config overrides, e.g. data.root=DIR")
    a.add_argument("--split", default="test", choices=("train", "val", "test"))
    a.add_argument("--episode", type=int, default=0, help="episode index of the seeded evaluation stream")
    a.add_argument("--out", required=True, help="output PNG")
    a.set_defaults(func=run_ta2n)


def run_tracks(args: argparse.Namespace) -> int:
    from fsar.data.video import open_video
    from fsar.tracking.trackfile import TrackFile, uniform_rows
    from fsar.tracking.viz import plot_tracks

    track_file = TrackFile.load(args.tracks)
    sel = track_file.select(uniform_rows(track_file.num_frames, args.frames), points=args.points)
    frames = open_video(args.video).frames(sel.video_frames)
    out = plot_tracks(
        frames,
        sel.tracks,
        sel.visibility & sel.query_mask,
        args.out,
        frame_numbers=[int(x) for x in sel.video_frames],
        title=f"{args.video} ({track_file.tracker})",
    )
    print(f"wrote {out}")
    return 0


def run_ta2n(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from fsar.data.episodes import EpisodeSampler
    from fsar.engine.data_setup import build_split_clips
    from fsar.engine.episode_data import video_rng
    from fsar.engine.trainer import model_from_checkpoint
    from fsar.errors import FsarError
    from fsar.models.ta2n.viz import plot_episode_alignment

    device = torch.device("cpu")
    cfg, model, device = model_from_checkpoint(args.checkpoint, device, list(args.overrides))
    if cfg.model.name != "ta2n":
        raise FsarError(
            f"{args.checkpoint}: `fsar viz ta2n` needs a TA2N checkpoint, this one is {cfg.model.name!r}"
        )
    clips = build_split_clips(cfg.data, (args.split,))[args.split]
    ep = cfg.episodes
    episode = EpisodeSampler(clips.labels, ep.way, ep.shot, ep.test_queries, seed=cfg.eval.seed).episode(
        args.episode
    )
    n = len(episode.support)
    rngs = [video_rng(cfg.eval.seed, episode.index, k, False) for k in range(n + len(episode.query))]
    support = clips.batch(episode.support, episode.support_labels, False, rngs[:n])
    query = clips.batch(episode.query, episode.query_labels, False, rngs[n:])
    with torch.no_grad():
        model.episode_logits(model.encode(support), support.labels, model.encode(query))
    ids = support.video_ids + query.video_ids
    frames = [np.asarray(f[:, :3]) for f in torch.cat([support.frames, query.frames])]  # RGB (drop rgb_diff)
    out = plot_episode_alignment(model.last_diagnostics, args.out, video_ids=ids, frames=frames)
    print(f"wrote {out}")
    return 0
