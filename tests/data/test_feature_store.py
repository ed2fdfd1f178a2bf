"""Feature-cache storage (``fsar.data.feature_store``): atomic shards and index, reading, key checks, clip source."""

import pickle
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from fsar.data.feature_store import (
    FeatureCache,
    FeatureClips,
    cache_summary,
    check_feature_key,
    write_feature_index,
    write_feature_shard,
)
from fsar.errors import FsarError


@dataclass
class Rec:
    video_id: str


def make_cache(root):
    feats = torch.arange(3 * 2 * 4 * 2 * 2, dtype=torch.float32).reshape(3, 2, 4, 2, 2).half()
    write_feature_shard(root, "test", 0, feats[:2])
    write_feature_shard(root, "test", 1, feats[2:])
    key = {"version": 1, "benchmark": "b", "split_files": {"test": "aa", "train": "bb"}, "num_frames": 2}
    index = {
        "key": key,
        "splits": {
            "test": {"videos": {"v0": [0, 0], "v1": [0, 1], "v2": [1, 0]}, "shape": [2, 4, 2, 2], "shards": 2}
        },
    }
    write_feature_index(root, index)
    return feats, key


def test_written_cache_reads_back_per_video(tmp_path):
    feats, key = make_cache(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "index.json",
        "test_0000.safetensors",
        "test_0001.safetensors",
    ]
    cache = FeatureCache(tmp_path, expected_key=key)
    for i in range(3):
        torch.testing.assert_close(cache.load("test", f"v{i}"), feats[i].float(), rtol=0, atol=0)
    clone = pickle.loads(pickle.dumps(cache))  # data-loader workers: no open handles cross
    torch.testing.assert_close(clone.load("test", "v2"), feats[2].float())
    source = FeatureClips(cache, "test")
    assert source.load(Rec("v1"), True, np.random.default_rng(0)).frames.shape == (2, 4, 2, 2)
    with pytest.raises(FsarError, match="no cached features for test video 'v9'"):
        cache.load("test", "v9")
    assert cache_summary(cache.index, 2)["test"] == {
        "videos": 3,
        "bytes_per_video": 64,
        "shape": [2, 4, 2, 2],
    }
    (tmp_path / "test_0001.safetensors").unlink()
    with pytest.raises(FsarError, match="shard missing"):
        FeatureCache(tmp_path).load("test", "v2")


def test_stale_or_absent_caches_are_refused(tmp_path):
    _, key = make_cache(tmp_path)
    with pytest.raises(FsarError, match="stale feature cache.*num_frames: cache has 2, this run has 4"):
        FeatureCache(tmp_path, expected_key={**key, "num_frames": 4})
    # split files are compared for the splits a run uses only
    other = {**key, "split_files": {"test": "aa", "train": "cc"}}
    check_feature_key(tmp_path, key, other, splits=["test"])
    with pytest.raises(FsarError, match="split_files.train: cache has 'bb', this run has 'cc'"):
        check_feature_key(tmp_path, key, other)
    with pytest.raises(FsarError, match="not a feature cache"):
        FeatureCache(tmp_path / "nowhere")
