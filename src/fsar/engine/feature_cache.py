"""A feature cache for frozen backbones: run the backbone once over a benchmark, train and evaluate from disk.

Layout of a cache folder::

    index.json                      key, per split: video ids and where each one lives
    <split>_<k>.safetensors         shard k of a split: one tensor "features" [n, T, C, h, w] (fp16 by default)

The *key* records everything the features depend on: benchmark, the split files' hashes, frame count and sampler,
the test-mode transform, the backbone name, its options and a hash of its weights, and the dtype. Training and
evaluation with ``data.feature_cache`` compute the key of their own configuration and refuse a cache whose key
differs, naming the fields that differ. Shards are read through safetensors' memory map, one video at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fsar.engine.config import Config
from fsar.engine.episode_data import LoadedVideo, SplitClips
from fsar.errors import FsarError

CACHE_VERSION = 1
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def state_dict_hash(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:20]


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def cache_key(cfg: Config, backbone: nn.Module, split_files: dict[str, Path], dtype: str) -> dict[str, Any]:
    """What cached features depend on (compared field by field when a cache is opened)."""
    data = cfg.data
    return {
        "version": CACHE_VERSION,
        "benchmark": data.benchmark,
        "split_files": {name: _file_hash(Path(p)) for name, p in sorted(split_files.items())},
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


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: cache has {va!r}, this run has {vb!r}")
    return out


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
    from safetensors.torch import save_file
    from tqdm import tqdm

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
            tensor = torch.cat(buffer).contiguous()
            path = out / f"{name}_{shard_no:04d}.safetensors"
            tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
            save_file({"features": tensor}, str(tmp))
            os.replace(tmp, path)
            buffer, shard_no = [], shard_no + 1

        bar = tqdm(total=len(ids), desc=f"features {name}", unit="video", disable=None if progress else True)
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
    tmp = out / f".index.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(index))
    os.replace(tmp, out / "index.json")
    return index


class FeatureCache:
    """Reads a cache written by :func:`extract_features`, after checking its key against this run's."""

    def __init__(self, root: str | Path, expected_key: dict[str, Any] | None = None) -> None:
        self.root = Path(root)
        index_path = self.root / "index.json"
        if not index_path.is_file():
            raise FsarError(
                f"{self.root}: not a feature cache (no index.json); create it with `fsar extract-features`"
            )
        self.index = json.loads(index_path.read_text())
        if expected_key is not None:
            diffs = _diff(self.index["key"], expected_key)
            if diffs:
                raise FsarError(
                    f"{self.root}: stale feature cache, made for another configuration: "
                    + "; ".join(diffs)
                    + ". Re-run `fsar extract-features` for this configuration or point data.feature_cache elsewhere."
                )
        self._open: dict[str, Any] = {}

    def shape(self, split: str) -> list[int]:
        return self.index["splits"][split]["shape"]

    def _shard(self, split: str, k: int):
        from safetensors import safe_open

        name = f"{split}_{k:04d}.safetensors"
        if name not in self._open:
            path = self.root / name
            if not path.is_file():
                raise FsarError(f"{path}: feature-cache shard missing; re-run `fsar extract-features`")
            self._open[name] = safe_open(str(path), framework="pt")
        return self._open[name]

    def load(self, split: str, video_id: str) -> torch.Tensor:
        try:
            shard, row = self.index["splits"][split]["videos"][str(video_id)]
        except KeyError:
            raise FsarError(f"{self.root}: no cached features for {split} video {video_id!r}") from None
        return self._shard(split, shard).get_slice("features")[row : row + 1][0].float()

    def __getstate__(self) -> dict:  # open shard handles do not cross process boundaries
        return {**self.__dict__, "_open": {}}


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
    have = dict(raw.index["key"])
    have["split_files"] = {n: h for n, h in have["split_files"].items() if n in clips}
    diffs = _diff(have, expected)
    if diffs:
        raise FsarError(
            f"{root}: stale feature cache, made for another configuration: "
            + "; ".join(diffs)
            + ". Re-run `fsar extract-features` for this configuration or point data.feature_cache elsewhere."
        )
    channels = raw.shape(next(iter(clips)))[1]
    stand_in = PrecomputedFeatures(channels, getattr(backbone, "default_normalization", "none"))
    return split_clips_from_cache(raw, clips), stand_in


def split_clips_from_cache(cache: FeatureCache, clips: dict[str, SplitClips]) -> dict[str, SplitClips]:
    """The same splits, with each clip loaded from the cache instead of decoded."""
    out = {}
    for name, split in clips.items():

        def load(record, train: bool, rng, _name=name) -> LoadedVideo:
            return LoadedVideo(frames=cache.load(_name, record.video_id))

        out[name] = SplitClips(
            name=name, records=split.records, load_video=load, skipped=split.skipped, source=split.source
        )
    return out


def cache_summary(index: dict[str, Any], dtype_bytes: int) -> dict[str, Any]:
    return {
        name: {
            "videos": len(s["videos"]),
            "bytes_per_video": int(np.prod(s["shape"])) * dtype_bytes,
            "shape": s["shape"],
        }
        for name, s in index["splits"].items()
    }


__all__ = [
    "FeatureCache",
    "PrecomputedFeatures",
    "cache_key",
    "cache_summary",
    "extract_features",
    "split_clips_from_cache",
    "state_dict_hash",
]
