"""The engine side of the feature cache: run a frozen backbone once over a benchmark, train and evaluate from disk.

Storage, reading, key checking and the cached-features clip source are data concerns and live in
``fsar.data.feature_store`` (layout documented there; re-exported here). This module builds the *key* from a run's
configuration and backbone (benchmark, the split files' hashes, frame count and sampler, the test-mode transform,
the backbone name, its options and a hash of its weights, and the dtype), extracts features with the backbone, and
swaps a run's clips for the cached ones (``open_for_run``) with the stand-in backbone ``PrecomputedFeatures``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fsar.data.feature_store import (
    CACHE_VERSION,
    DTYPES,
    FEATURES_KIND,
    FeatureCache,
    FeatureClips,
    cache_summary,
    check_feature_key,
    check_part_folder,
    merge_feature_parts,
    read_shard_shape,
    shard_path,
    write_feature_index,
    write_feature_shard,
)
from fsar.data.keys import file_hash
from fsar.engine.config import Config
from fsar.engine.episode_data import SplitClips
from fsar.errors import FsarError
from fsar.parts import Part, PartsError, finish_part, gather_parts, plan_hash, start_part


def state_dict_hash(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:20]


def cache_key(cfg: Config, backbone: nn.Module, split_files: dict[str, Path], dtype: str) -> dict[str, Any]:
    """What cached features depend on (compared field by field when a cache is opened)."""
    data = cfg.data
    return {
        "version": CACHE_VERSION,
        "benchmark": data.benchmark,
        "split_files": {name: file_hash(Path(p)) for name, p in sorted(split_files.items())},
        "num_frames": data.num_frames,
        "frame_sampler": data.frame_sampler,
        "transform": {
            "resize_short": None if data.resize_to else data.resize_short,
            "resize_to": data.resize_to,
            "crop": data.crop,
            "normalization": data.normalization,
            "modality": data.modality,
        },
        "backbone": cfg.model.backbone,
        "backbone_kwargs": cfg.model.backbone_kwargs,
        "backbone_weights_hash": state_dict_hash(backbone),
        "dtype": dtype,
    }


class PrecomputedFeatures(nn.Module):
    """Stands in for the backbone when clips are cached feature maps: ``[N, C, h, w]`` in, the same out."""

    def __init__(self, out_channels: int, default_normalization: str = "none") -> None:
        super().__init__()
        self.out_channels = out_channels
        self.default_normalization = default_normalization
        self.frozen = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.out_channels:
            raise ValueError(
                f"expected cached feature maps [N, {self.out_channels}, h, w]; got {tuple(x.shape)} "
                "(is data.feature_cache set for this run?)"
            )
        return x


@torch.no_grad()
def extract_features(
    cfg: Config,
    backbone: nn.Module,
    clips: dict[str, SplitClips],
    split_files: dict[str, Path],
    out_dir: str | Path,
    device: torch.device,
    dtype: str = "float16",
    batch_videos: int = 16,
    shard_videos: int = 1024,
    progress: bool = True,
    part: Part | None = None,
) -> dict[str, Any] | None:
    """Run ``backbone`` over every video of ``clips`` (test-mode clips) and write the cache; returns the index.

    With ``part`` (``--part I/N``), only that part's shards are computed (shard ``u``, counting the splits' shards
    in order, goes to part ``u mod N + 1``; :mod:`fsar.parts`); shards already written are kept (resume), and the
    last part to finish writes ``index.json`` (:func:`fsar.data.feature_store.merge_feature_parts`). Batches are
    the same as a single run's (a batch across two parts' shards is computed whole), so the shards are
    byte-identical to it. Returns the index, or None for a part whose siblings are not finished."""
    from fsar.progress import progress_bar

    if not getattr(backbone, "frozen", False):
        raise FsarError(
            f"backbone {cfg.model.backbone!r} is trainable: cached features would go stale as it trains; "
            "freeze it (backbone_kwargs: {frozen: true}) to cache its features"
        )
    if batch_videos < 1 or shard_videos < 1:
        raise ValueError(f"batch_videos and shard_videos must be >= 1, got {batch_videos} and {shard_videos}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    backbone = backbone.to(device).eval()
    key = cache_key(cfg, backbone, split_files, dtype)
    index: dict[str, Any] = {"key": key, "splits": {}}
    ids_of = {name: [str(r.video_id) for r in split.records] for name, split in clips.items()}
    units = [
        (name, k)
        for name, ids in ids_of.items()
        for k in range((len(ids) + shard_videos - 1) // shard_videos)
    ]
    mine = set(units)
    if part is not None:
        check_part_folder(out, key)
        sizes = [[name, len(ids)] for name, ids in ids_of.items()]
        plan = plan_hash(
            {
                "kind": FEATURES_KIND,
                "key": key,
                "splits": sizes,
                "shard_videos": shard_videos,
                "batch": batch_videos,
            }
        )
        start_part(out, part, FEATURES_KIND, plan, len(units))
        mine = {u for i, u in enumerate(units) if part.owns(i)}
    shapes: dict[str, list[int]] = {}
    rng = np.random.default_rng(0)  # unused by test-mode loading, which is deterministic
    for name, split in clips.items():
        ids = ids_of[name]
        todo = {k for (n, k) in mine if n == name}
        if part is not None:  # resume: a shard file is written atomically, so one that exists is complete
            for k in sorted(todo):
                path = shard_path(out, name, k)
                if path.is_file():
                    shapes[name] = read_shard_shape(path)[1:]
                    todo.discard(k)
        size = {k: min(shard_videos, len(ids) - k * shard_videos) for k in todo}
        buffers: dict[int, list[torch.Tensor]] = {k: [] for k in todo}
        bar = progress_bar(sum(size.values()), f"features {name}", "videos", enabled=progress)
        for start in range(0, len(ids), batch_videos):
            idx = list(range(start, min(start + batch_videos, len(ids))))
            if not any(i // shard_videos in todo for i in idx):
                continue
            batch = split.batch(idx, [0] * len(idx), train=False, rngs=[rng] * len(idx))
            frames = batch.frames.to(device)
            b, t = frames.shape[:2]
            maps = backbone(frames.flatten(0, 1))
            maps = maps.reshape(b, t, *maps.shape[1:]).to(DTYPES[dtype]).cpu()
            shapes[name] = list(maps.shape[1:])
            for j, i in enumerate(idx):
                k = i // shard_videos
                if k not in todo:
                    continue
                buffers[k].append(maps[j : j + 1])
                bar.update(1)
                if len(buffers[k]) == size[k]:
                    write_feature_shard(out, name, k, torch.cat(buffers.pop(k)))
        bar.close()
        entries: dict[str, list] = {}
        for i, video_id in enumerate(ids):
            entries[video_id] = [i // shard_videos, i % shard_videos]
        count = (len(ids) + shard_videos - 1) // shard_videos
        index["splits"][name] = {"videos": entries, "shape": shapes.get(name), "shards": count}
    if part is None:
        write_feature_index(out, index)
        return index
    data = {
        "key": key,
        "splits": [[name, ids_of[name]] for name in clips],
        "shard_videos": shard_videos,
        "shapes": shapes,
    }
    names = [shard_path(out, n, k).name for n, k in units if (n, k) in mine]
    finish_part(out, part, FEATURES_KIND, plan, len(units), names, [], data)
    try:
        manifests = gather_parts(out, FEATURES_KIND)
    except PartsError:  # other parts unfinished (the last one merges), or inconsistent (merge-parts says how)
        return None
    return merge_feature_parts(out, manifests)


def open_for_run(cfg: Config, clips: dict[str, SplitClips]) -> tuple[dict[str, SplitClips], nn.Module]:
    """Check ``cfg.data.feature_cache`` against this run's configuration and return cached splits and the
    stand-in backbone. The backbone is built (seeded with ``train.seed``) only to hash its weights."""
    from fsar.engine.build import build_backbone

    root = Path(cfg.data.feature_cache)
    raw = FeatureCache(root)
    missing = [n for n in clips if n not in raw.index["splits"]]
    if missing:
        raise FsarError(
            f"{root}: the feature cache has no {missing} split(s); extract them with `fsar extract-features`"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        backbone = build_backbone(cfg.model)
    sources = {n: c.source for n, c in clips.items()}
    if any(p is None for p in sources.values()):
        raise FsarError("a feature cache needs splits read from split files")
    expected = cache_key(cfg, backbone, sources, raw.index["key"]["dtype"])
    check_feature_key(root, raw.index["key"], expected, splits=list(clips))
    channels = raw.shape(next(iter(clips)))[1]
    stand_in = PrecomputedFeatures(channels, getattr(backbone, "default_normalization", "none"))
    return split_clips_from_cache(raw, clips), stand_in


def split_clips_from_cache(cache: FeatureCache, clips: dict[str, SplitClips]) -> dict[str, SplitClips]:
    """The same splits, with each clip loaded from the cache instead of decoded."""
    return {
        name: SplitClips(
            name=name,
            records=split.records,
            load_video=FeatureClips(cache, name).load,
            skipped=split.skipped,
            source=split.source,
            classes=split.classes,
        )
        for name, split in clips.items()
    }


__all__ = [
    "DTYPES",
    "FeatureCache",
    "PrecomputedFeatures",
    "cache_key",
    "cache_summary",
    "extract_features",
    "split_clips_from_cache",
    "state_dict_hash",
]
