"""Augmentation in the loader or on the device (``data.augment_on``): the same random choices, the same numbers.

The device path is run with ``device=cpu``: uint8 clips and their plans from the loader, carried out batched over
the episode by ``RawClipBatch.augment`` after ``to_device``. On the CPU both paths must agree exactly (one
implementation, two placements); every transform of the real presets is covered (short-side or fixed-size resize,
random or centre crop, flip, the three normalisations, RandAugment with each of its ops, rgb_diff, point tracks,
videos and the clip store).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fsar.data.augment import ClipPlan, RawClipBatch, realize_clips
from fsar.data.benchmarks import load_benchmark
from fsar.data.episodes import EpisodeSampler
from fsar.data.prepare import prepare_clip_store
from fsar.data.randaugment import OPS, AugmentDraw, apply_draws, apply_op
from fsar.data.transforms import ClipTransform
from fsar.engine.config import load_config
from fsar.engine.data_setup import build_split_clips
from fsar.engine.episode_data import EpisodeDataset, to_device
from fsar.errors import ConfigError
from tests.helpers import make_frames, write_encoded_video, write_frame_folder

# 4:3 and 3:4 encoded videos, a PNG frame folder, a video shorter than T = 8 (two classes of two)
VIDEOS = [
    ("jump", "a", 31, "mp4"),
    ("jump", "b", 5, "mp4"),
    ("sit", "c", 20, "png"),
    ("sit", "d", 24, "tall"),
]

# every real recipe's pixel pipeline (resize sizes shrunk to the 48x64 test videos; the code is the same)
PRESETS = [
    "ta2n_hmdb51_1shot",  # ta2n sampler, short side, random crop + flip, no normalisation
    "trx_hmdb51_5shot",
    "strm_hmdb51_1shot",
    "hyrsm_hmdb51_1shot",  # uniform sampler, imagenet normalisation
    "molo_hmdb51_1shot",
    "clip_fsar_rn50_hmdb51_1shot",  # segment sampler, clip normalisation
    "tats_hmdb51_1shot",  # fixed-size resize, no crop, clip normalisation, RandAugment
    "trokens_hmdb51_1shot",
]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini")
    for i, (cls, vid, n, kind) in enumerate(VIDEOS):
        if kind == "png":
            write_frame_folder(
                root / "videos" / cls / vid, make_frames(n, 48, 64, seed=i), pattern="f{i}.png"
            )
        else:
            h, w = (64, 48) if kind == "tall" else (48, 64)
            write_encoded_video(root / "videos" / cls / f"{vid}.mp4", make_frames(n, h, w, seed=i))
    (root / "splits").mkdir()
    lines = "".join(f"{c}/{v}\n" for c, v, _, _ in VIDEOS)
    for split in ("train", "test"):
        (root / "splits" / f"{split}list01.txt").write_text(lines)
    return root


def preset_config(name: str, root, *extra: str):
    cfg = load_config(name, ["model.require_weights=false"])
    over = [
        "data.benchmark=hmdb51",
        f"data.root={root / 'videos'}",
        f"data.splits={root / 'splits'}",
        "model.require_weights=false",
    ]
    if cfg.data.resize_to:
        over.append("data.resize_to=[36, 44]")
    else:
        over += ["data.resize_short=40", "data.crop=32"]
    return load_config(name, over + list(extra))


def both_paths(clips, train: bool, seed: int, episodes: int = 3):
    sampler = EpisodeSampler(clips.labels, 2, 1, 1, seed=seed)
    loader = EpisodeDataset(clips, sampler.episode, episodes, train, seed)
    device = EpisodeDataset(clips, sampler.episode, episodes, train, seed, augment_on="device")
    for i in range(episodes):
        _, s_cpu, q_cpu = loader[i]
        _, s_raw, q_raw = device[i]
        for cpu, raw in ((s_cpu, s_raw), (q_cpu, q_raw)):
            assert isinstance(raw, RawClipBatch) and all(f.dtype == torch.uint8 for f in raw.frames)
            yield cpu, to_device(raw, "cpu")


def assert_same(cpu, dev):
    assert dev.frames.dtype == torch.float32 and dev.frames.shape == cpu.frames.shape
    assert torch.equal(dev.frames, cpu.frames), (dev.frames - cpu.frames).abs().max()
    for name in ("labels", "global_labels", "short", "tracks", "query_mask", "visibility"):
        a, b = getattr(cpu, name), getattr(dev, name)
        assert (a is None and b is None) or torch.equal(a, b), name
    assert dev.video_ids == cpu.video_ids and dev.class_names == cpu.class_names


@pytest.mark.parametrize("preset", PRESETS)
def test_device_path_equals_loader_path_for_every_real_preset(bench, preset):
    cfg = preset_config(preset, bench)
    clips = build_split_clips(cfg.data, ("train",))["train"]
    for train in (True, False):
        for cpu, dev in both_paths(clips, train, seed=5):
            assert_same(cpu, dev)
    tf = clips.load_video.__self__.loader.transform_train
    assert tf.normalization == cfg.data.normalization and tf.flip == (cfg.data.flip is not False)


@pytest.mark.parametrize("preset", ["ta2n_hmdb51_1shot", "tats_hmdb51_1shot"])
def test_device_path_equals_loader_path_from_the_clip_store(bench, tmp_path, preset):
    cfg = preset_config(preset, bench, "data.modality=rgb_diff")
    d = cfg.data
    prepare_clip_store(
        load_benchmark(d.benchmark, root=d.root, splits_dir=d.splits),
        tmp_path / "store",
        splits=("train",),
        num_frames=d.num_frames,
        frame_sampler=d.frame_sampler,
        resize_short=d.resize_short,
        resize_to=d.resize_to,
        progress=False,
    )
    clips = build_split_clips(dataclasses.replace(d, clip_store=str(tmp_path / "store")), ("train",))["train"]
    for train in (True, False):
        for cpu, dev in both_paths(clips, train, seed=11):
            assert cpu.frames.shape[2] == 6  # rgb_diff on top of the pixels
            assert_same(cpu, dev)


def test_the_plans_hold_the_random_choices_and_the_loader_ships_uint8(bench):
    cfg = preset_config("ta2n_hmdb51_1shot", bench)
    clips = build_split_clips(cfg.data, ("train",))["train"]
    sampler = EpisodeSampler(clips.labels, 2, 1, 1, seed=0)
    dataset = EpisodeDataset(clips, sampler.episode, 40, True, 0, augment_on="device")
    params = [p.params for i in range(40) for b in dataset[i][1:] for p in b.plans]
    assert 0 < sum(p.flip for p in params) < len(params)  # both sides of the coin
    assert len({(p.crop_top, p.crop_left) for p in params}) > 3  # random crops
    _, support, _ = dataset[0]
    assert {tuple(f.shape[1:]) for f in support.frames} <= {(48, 64, 3), (64, 48, 3)}  # decoded, not resized


def test_rand_augment_is_wired_from_the_config_and_drawn_per_clip(bench):
    cfg = preset_config("tats_hmdb51_1shot", bench)
    assert cfg.data.rand_augment
    clips = build_split_clips(cfg.data, ("train",))["train"]
    sampler = EpisodeSampler(clips.labels, 2, 1, 1, seed=0)
    train = EpisodeDataset(clips, sampler.episode, 20, True, 0, augment_on="device")
    draws = [p.augment for i in range(20) for b in train[i][1:] for p in b.plans]
    assert all(d is not None for d in draws) and any(d.steps() for d in draws)
    test = EpisodeDataset(clips, sampler.episode, 2, False, 0, augment_on="device")
    assert all(p.augment is None for i in range(2) for b in test[i][1:] for p in b.plans)
    off = build_split_clips(dataclasses.replace(cfg.data, rand_augment=False), ("train",))["train"]
    assert off.load_video.__self__.loader.train_augment is None


def random_clips(n: int, hw=(20, 24), t: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, t, *hw, 3), dtype=np.uint8))


@pytest.mark.parametrize("op", OPS)
def test_each_rand_augment_op_batched_equals_per_clip(op):
    """Clips sharing an op go through it together on the device; the result must be each clip's own."""
    x = random_clips(5)
    draws = [
        AugmentDraw((op, op), (True, k % 2 == 0), (1.0, 0.7), (1 if k < 3 else -1, 1)) for k in range(4)
    ] + [None]
    batched = apply_draws(x, draws)
    for k, d in enumerate(draws):
        alone = x[k]
        for o, lv, s in d.steps() if d is not None else []:
            alone = apply_op(alone, o, lv, s)
        assert torch.equal(batched[k], alone), (op, k)
    assert not torch.equal(batched[1], x[1])  # the op did something (clip 1 applies it once)
    assert torch.equal(batched[4], x[4])


def test_realize_mixes_sizes_and_refuses_bad_input():
    tf = ClipTransform(resize_short=16, crop=12, train=True, flip=True, normalization="imagenet")
    rng = np.random.default_rng(0)
    clips, plans = [], []
    for hw in [(20, 24), (24, 20), (20, 24), (16, 30)]:
        x = random_clips(1, hw)[0]
        p = tf.sample_params(hw, rng)
        clips.append(x)
        plans.append(ClipPlan(p, "imagenet"))
    out = realize_clips(clips, plans)
    assert out.shape == (4, 3, 3, 12, 12)
    for k in range(4):
        assert torch.equal(out[k], tf.apply(clips[k], plans[k].params))
    with pytest.raises(ValueError, match="one known normalization"):
        realize_clips(clips[:2], [plans[0], dataclasses.replace(plans[1], normalization="clip")])
    with pytest.raises(ValueError, match="plan was made for"):
        realize_clips([clips[1]], [plans[0]])
    with pytest.raises(ValueError, match="uint8"):
        realize_clips([clips[0].float()], [plans[0]])


def test_augment_on_is_checked_by_the_config():
    with pytest.raises(ConfigError, match="data.augment_on must be one of loader, device; got 'gpu'"):
        load_config(None, ["data.augment_on=gpu"])
    with pytest.raises(ConfigError, match="data.augment_on=device .* data.feature_cache"):
        load_config(None, ["data.augment_on=device", "data.feature_cache=/x"])
    assert load_config(None, []).data.augment_on == "loader"


def write_tracks(root, points: int = 6) -> None:
    """Random point tracks shaped like ``fsar track``'s for every mini-benchmark video (only their geometry
    matters here)."""
    from fsar.data.trackfile import TrackFile

    for i, (cls, vid, n, kind) in enumerate(VIDEOS):
        h, w = (64, 48) if kind == "tall" else (48, 64)
        rng = np.random.default_rng(i)
        timeline = np.arange(n, dtype=np.int64)
        TrackFile(
            tracks=(rng.random((n, points + 2, 2)) * [w, h]).astype(np.float32),
            visibility=rng.random((n, points + 2)) > 0.2,
            query_frame=rng.integers(0, n, points + 2).astype(np.int32),
            frame_size=(h, w),
            timeline=timeline,
            fps=25.0,
            tracker="test",
            sampled_indices=np.arange(points, dtype=np.int64),
            num_points_total=points + 2,
            video_id=vid,
        ).save(root / "tracks" / cls / f"{vid}.npz")


@pytest.mark.parametrize("preset", ["tats_hmdb51_1shot", "ta2n_hmdb51_1shot"])
def test_device_path_equals_loader_path_with_point_tracks(bench, preset):
    write_tracks(bench)
    cfg = preset_config(preset, bench, f"data.tracks={bench / 'tracks'}", "data.num_points=6")
    clips = build_split_clips(cfg.data, ("train",))["train"]
    for train in (True, False):
        for cpu, dev in both_paths(clips, train, seed=2):
            assert cpu.tracks is not None and cpu.tracks.shape[-2:] == (6, 2)
            assert_same(cpu, dev)
