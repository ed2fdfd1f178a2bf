"""Storage of a feature cache: a frozen backbone's per-video feature maps on disk, read as a clip source.

Layout of a cache folder::

    index.json                      key, per split: video ids and where each one lives, feature shape
    <split>_<k>.safetensors         shard k of a split: one tensor "features" [n, T, C, h, w] (fp16 by default)

Shards and ``index.json`` are written through a temporary file and an atomic rename; ``index.json`` comes last,
so a cache without it is never read. The *key* (built by ``fsar.engine.feature_cache.cache_key``: benchmark,
split-file hashes, clip settings, backbone and its weights' hash, dtype) is compared field by field by
``check_feature_key``; a stale cache is refused naming the fields that differ. ``FeatureCache`` reads one video at
a time through safetensors' memory map; ``FeatureClips`` serves the cached maps as clips (``fsar.data.sources``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fsar.data.keys import diff_keys, write_json_atomic
from fsar.data.sources import LoadedVideo
from fsar.errors import FsarError
from fsar.parts import PARTS_DIR, check_unit_files, gather_parts

CACHE_VERSION = 1
FEATURES_KIND = "feature cache"
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def shard_path(root: str | Path, split: str, k: int) -> Path:
    return Path(root) / f"{split}_{k:04d}.safetensors"


def write_feature_shard(root: str | Path, split: str, k: int, features: torch.Tensor) -> Path:
    """Write shard ``k`` of ``split`` (``features`` [n, T, C, h, w]) atomically."""
    from safetensors.torch import save_file

    path = shard_path(root, split, k)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file({"features": features.contiguous()}, str(tmp))
    os.replace(tmp, path)
    return path


def read_shard_shape(path: str | Path) -> list[int]:
    """The shape of a shard's ``features`` tensor, from its header (no data read)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return list(f.get_slice("features").get_shape())


def check_part_folder(root: str | Path, key: dict[str, Any]) -> None:
    """Before a part (``--part I/N``) writes into ``root``: refuse a finished cache made for another key."""
    index = Path(root) / "index.json"
    if index.is_file():
        have = json.loads(index.read_text(encoding="utf-8"))["key"]
        diffs = diff_keys(have, key, "the cache", "this part")
        if diffs:
            raise FsarError(
                f"{root}: holds a feature cache made for another configuration: " + "; ".join(diffs) + ". "
                "Extract the parts into another --out folder (or delete this one)."
            )


def merge_feature_parts(root: str | Path, manifests: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Check the parts of a feature cache in ``root`` (every shard there) and write ``index.json``, the same as a
    single-machine ``fsar extract-features`` writes; returns the index."""
    root = Path(root)
    manifests = manifests if manifests is not None else gather_parts(root, FEATURES_KIND)
    check_unit_files(root, manifests, set())
    data = manifests[0]["data"]
    shard_videos = data["shard_videos"]
    shapes: dict[str, list[int]] = {}
    for m in manifests:
        shapes.update(m["data"]["shapes"])
    index: dict[str, Any] = {"key": data["key"], "splits": {}}
    for name, ids in data["splits"]:
        entries: dict[str, list] = {}
        for i, video_id in enumerate(ids):
            entries[video_id] = [i // shard_videos, i % shard_videos]
        count = (len(ids) + shard_videos - 1) // shard_videos
        index["splits"][name] = {"videos": entries, "shape": shapes.get(name), "shards": count}
    write_feature_index(root, index)
    return index


def write_feature_index(root: str | Path, index: dict[str, Any]) -> Path:
    """Write ``index.json`` (last: it marks the cache complete)."""
    return write_json_atomic(Path(root) / "index.json", index)


def check_feature_key(
    root: Path, have: dict[str, Any], want: dict[str, Any], splits: Iterable[str] | None = None
) -> None:
    """Refuse a cache whose key ``have`` differs from this run's ``want`` (split files compared for ``splits``
    only, when given)."""
    if splits is not None:
        splits = list(splits)
        have = {**have, "split_files": {n: h for n, h in have.get("split_files", {}).items() if n in splits}}
        want = {**want, "split_files": {n: h for n, h in want.get("split_files", {}).items() if n in splits}}
    diffs = diff_keys(have, want, "cache", "this run")
    if diffs:
        raise FsarError(
            f"{root}: stale feature cache, made for another configuration: "
            + "; ".join(diffs)
            + ". Re-run `fsar extract-features` for this configuration or point data.feature_cache elsewhere."
        )


class FeatureCache:
    """Reads a feature cache, after checking its key against ``expected_key`` when given."""

    def __init__(self, root: str | Path, expected_key: dict[str, Any] | None = None) -> None:
        self.root = Path(root)
        index_path = self.root / "index.json"
        if not index_path.is_file() and (self.root / PARTS_DIR).is_dir():
            raise FsarError(
                f"{self.root}: feature cache extracted in parts (--part I/N) and not merged yet; finish every "
                f"part, or see which are missing with `fsar data merge-parts {self.root}`"
            )
        if not index_path.is_file():
            raise FsarError(
                f"{self.root}: not a feature cache (no index.json); create it with `fsar extract-features`"
            )
        self.index = json.loads(index_path.read_text())
        if expected_key is not None:
            check_feature_key(self.root, self.index["key"], expected_key)
        self._open: dict[str, Any] = {}

    def shape(self, split: str) -> list[int]:
        return self.index["splits"][split]["shape"]

    def _shard(self, split: str, k: int):
        from safetensors import safe_open

        path = shard_path(self.root, split, k)
        if path.name not in self._open:
            if not path.is_file():
                raise FsarError(f"{path}: feature-cache shard missing; re-run `fsar extract-features`")
            self._open[path.name] = safe_open(str(path), framework="pt")
        return self._open[path.name]

    def load(self, split: str, video_id: str) -> torch.Tensor:
        try:
            shard, row = self.index["splits"][split]["videos"][str(video_id)]
        except KeyError:
            raise FsarError(f"{self.root}: no cached features for {split} video {video_id!r}") from None
        return self._shard(split, shard).get_slice("features")[row : row + 1][0].float()

    def __getstate__(self) -> dict:  # open shard handles do not cross process boundaries
        return {**self.__dict__, "_open": {}}


class FeatureClips:
    """A clip source serving a split's cached feature maps ``[T, C, h, w]`` (no pixels, no randomness)."""

    kind = "feature cache"

    def __init__(self, cache: FeatureCache, split: str) -> None:
        self.cache = cache
        self.split = split

    def load(self, record, train: bool, rng) -> LoadedVideo:
        return LoadedVideo(frames=self.cache.load(self.split, record.video_id))

    __call__ = load


def cache_summary(index: dict[str, Any], dtype_bytes: int) -> dict[str, Any]:
    """Per split: videos, bytes per video and the feature shape."""
    return {
        name: {
            "videos": len(s["videos"]),
            "bytes_per_video": int(np.prod(s["shape"])) * dtype_bytes,
            "shape": s["shape"],
        }
        for name, s in index["splits"].items()
    }
