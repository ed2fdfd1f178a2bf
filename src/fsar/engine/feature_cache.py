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
    FeatureCache,
    FeatureClips,
    cache_summary,
    check_feature_key,
    write_feature_index,
    write_feature_shard,
)
from fsar.data.keys import file_hash
from fsar.engine.config import Config
from fsar.engine.episode_data import SplitClips
from fsar.errors import FsarError


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
) -> dict[str, Any]:
    """Run ``backbone`` over every video of ``clips`` (test-mode clips) and write the cache; returns the index."""
    from fsar.progress import progress_bar

    if not getattr(backbone, "frozen", False):
        raise FsarError(
            f"backbone {cfg.model.backbone!r} is trainable: cached features would go stale as it trains; "
            "freeze it (backbone_kwargs: {frozen: true}) to cache its features"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    backbone = backbone.to(device).eval()
    index: dict[str, Any] = {"key": cache_key(cfg, backbone, split_files, dtype), "splits": {}}
    rng = np.random.default_rng(0)  # unused by test-mode loading, which is deterministic
    for name, split in clips.items():
        entries: dict[str, list] = {}
        buffer: list[torch.Tensor] = []
        shard_no = 0
        ids = [str(r.video_id) for r in split.records]

        def flush(name: str = name) -> None:
            nonlocal buffer, shard_no
            if not buffer:
                return
            write_feature_shard(out, name, shard_no, torch.cat(buffer))
            buffer, shard_no = [], shard_no + 1

        bar = progress_bar(len(ids), f"features {name}", "videos", enabled=progress)
        row = 0
        for start in range(0, len(ids), batch_videos):
            idx = list(range(start, min(start + batch_videos, len(ids))))
            batch = split.batch(idx, [0] * len(idx), train=False, rngs=[rng] * len(idx))
            frames = batch.frames.to(device)
            b, t = frames.shape[:2]
            maps = backbone(frames.flatten(0, 1))
            maps = maps.reshape(b, t, *maps.shape[1:]).to(DTYPES[dtype]).cpu()
            for k, i in enumerate(idx):
                if row == shard_videos:
                    flush()
                    row = 0
                buffer.append(maps[k : k + 1])
                entries[ids[i]] = [shard_no, row]
                row += 1
            bar.update(len(idx))
        flush()
        bar.close()
        index["splits"][name] = {"videos": entries, "shape": list(maps.shape[1:]), "shards": shard_no}
    write_feature_index(out, index)
    return index


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
