"""Clip store: equal to decoding up to uint8 rounding, no decoding when used, keyed, resumable, failures listed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from fsar.cli.main import main
from fsar.data.benchmarks import load_benchmark
from fsar.data.clip_store import ClipStore, ClipStoreError
from fsar.data.prepare import prepare_clip_store
from fsar.engine.config import DataConfig, load_config
from fsar.engine.data_setup import build_split_clips
from fsar.errors import MissingVideosError, VideoError
from tests.helpers import make_frames, write_encoded_video, write_frame_folder

# (class, video, frames, kind): 4:3 and 3:4 encoded videos, a PNG frame folder, a video shorter than T = 8
VIDEOS = [
    ("jump", "a", 31, "mp4"),
    ("jump", "b", 5, "mp4"),
    ("sit", "c", 20, "png"),
    ("sit", "d", 24, "tall"),
]


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini")
    for i, (cls, vid, n, kind) in enumerate(VIDEOS):
        if kind == "png":
            write_frame_folder(
                root / "videos" / cls / vid, make_frames(n, 48, 64, seed=i), pattern="f{i}.png"
            )
        elif kind == "tall":
            write_encoded_video(root / "videos" / cls / f"{vid}.mp4", make_frames(n, 64, 48, seed=i))
        else:
            write_encoded_video(root / "videos" / cls / f"{vid}.mp4", make_frames(n, 48, 64, seed=i))
    (root / "splits").mkdir()
    lines = "".join(f"{c}/{v}\n" for c, v, _, _ in VIDEOS)
    for split in ("train", "test"):
        (root / "splits" / f"{split}list01.txt").write_text(lines)
    return root


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    assert main(["synth", "--out", str(out), "--preset", "tiny", "--quiet"]) == 0
    return out


def data_cfg(root: Path, **kw) -> DataConfig:
    base = dict(
        benchmark="hmdb51",  # class folders, flips allowed
        root=str(root / "videos"),
        splits=str(root / "splits"),
        num_frames=8,
        frame_sampler="ta2n",
        resize_short=32,
        crop=28,
        flip=True,
        normalization="none",
    )
    return DataConfig(**{**base, **kw})


def prepare(root: Path, d: DataConfig, out: Path, **kw):
    bench = load_benchmark(d.benchmark, root=d.root, splits_dir=d.splits)
    return prepare_clip_store(
        bench,
        out,
        splits=kw.pop("splits", ("train", "test")),
        num_frames=d.num_frames,
        frame_sampler=d.frame_sampler,
        resize_short=d.resize_short,
        resize_to=d.resize_to,
        tracks=d.tracks,
        progress=False,
        **kw,
    )


@pytest.mark.parametrize(
    "settings",
    [
        dict(),  # TA2N-style: ta2n jitter, short side resize, random crop + flip at train
        dict(
            frame_sampler="segment",
            resize_short=None,
            resize_to=[40, 40],
            crop=None,
            normalization="imagenet",
        ),
        dict(frame_sampler="uniform", resize_short=None, resize_to=None, crop=None),  # stored as is: exact
    ],
)
def test_store_clips_equal_decoded_clips_up_to_uint8_rounding(bench_dir, tmp_path, settings):
    d = data_cfg(bench_dir, **settings)
    report = prepare(bench_dir, d, tmp_path / "store")
    assert report.done == 2 * len(VIDEOS) and not report.failed
    decoded = build_split_clips(d, ("train", "test"))
    stored = build_split_clips(dataclasses.replace(d, clip_store=str(tmp_path / "store")), ("train", "test"))
    from fsar.data.transforms import NORMALIZATIONS

    std = np.array(NORMALIZATIONS[d.normalization][1]).reshape(1, 3, 1, 1)
    exact = d.resize_short is None and d.resize_to is None
    for split in ("train", "test"):
        train = split == "train"
        for rec_d, rec_s in zip(decoded[split].records, stored[split].records):
            assert rec_d.entry == rec_s.entry
            for seed in range(4):
                a = decoded[split].load_video(rec_d, train, np.random.default_rng(seed))
                b = stored[split].load_video(rec_s, train, np.random.default_rng(seed))
                assert a.frames.shape == b.frames.shape and a.short == b.short
                err = np.abs(a.frames.numpy() - b.frames.numpy()) * 255 * std
                if exact:
                    assert err.max() == 0
                else:  # the stored frames are the resized frames rounded to uint8
                    assert err.max() <= 0.5 + 1e-3, (rec_d.entry, seed, err.max())


def test_loader_level_indices_params_and_short_flags_are_identical(bench_dir, tmp_path):
    d = data_cfg(bench_dir)
    prepare(bench_dir, d, tmp_path / "store", splits=("train",))
    store = ClipStore(tmp_path / "store").split("train")
    decoded = build_split_clips(d, ("train",))["train"]
    loader = decoded.load_video.__self__.loader
    from fsar.data.clips import ClipLoader

    via_store = ClipLoader(
        8, loader.sampler, loader.transform_train, loader.transform_test, video_source=store.open
    )
    shorts = []
    for rec in decoded.records:
        for seed in range(6):
            a = loader.load(rec, True, np.random.default_rng(seed))
            b = via_store.load(rec, True, np.random.default_rng(seed))
            np.testing.assert_array_equal(a.indices, b.indices)
            assert (
                a.params == b.params and a.short == b.short and a.num_frames_in_video == b.num_frames_in_video
            )
        shorts.append(b.short)
    assert shorts == [False, True, False, False]
    video = store.open_entry("jump/a")
    assert video.num_frames == 31 and video.source_size == (48, 64) and video.size == (32, 42)
    from fsar.data.sampling import sampler_support

    # the frames the ta2n sampler can pick (all 31 here; at most 48 for T = 8 whatever the length)
    np.testing.assert_array_equal(video.stored_indices, sampler_support(loader.sampler, 31, 8))
    assert store.open_entry("sit/d").size == (42, 32)  # a portrait video keeps its aspect


def test_training_and_eval_from_the_store_never_decode(synth, tmp_path, monkeypatch):
    store = tmp_path / "store"
    assert (
        main(
            ["data", "prepare", "demo_ta2n_tiny", f"data.root={synth}", "--out", str(store), "--no-progress"]
        )
        == 0
    )
    import av

    from fsar.data import video as video_module

    def no_decoding(*args, **kwargs):
        raise AssertionError("a video was opened although data.clip_store is set")

    monkeypatch.setattr(video_module.EncodedVideo, "__init__", no_decoding)
    monkeypatch.setattr(video_module.FrameFolderVideo, "__init__", no_decoding)
    monkeypatch.setattr(av, "open", no_decoding)
    run = tmp_path / "run"
    args = [f"data.root={synth}", f"data.clip_store={store}", "train.tasks=4", "train.val_every=4"]
    args += ["eval.episodes=10", "train.tensorboard=false", "data.workers=0"]
    assert main(["train", "demo_ta2n_tiny", *args, "--out", str(run)]) == 0
    assert json.loads((run / "results.json").read_text())["test_episodes"] == 10
    assert main(["eval", str(run / "best.pt"), "--episodes", "10"]) == 0
    # the videos are not needed at all: no data.root, only the split files and the store
    cfg = load_config(
        "demo_ta2n_tiny", [f"data.splits={synth / 'splits'}", f"data.clip_store={store}", "data.workers=0"]
    )
    clips = build_split_clips(cfg.data, ("test",))["test"]
    assert clips.load_video(clips.records[0], False, np.random.default_rng(0)).frames.shape == (8, 6, 32, 32)


def test_stale_unfinished_and_foreign_stores_are_refused(bench_dir, tmp_path):
    d = data_cfg(bench_dir)
    store = tmp_path / "store"
    prepare(bench_dir, d, store, splits=("test",))
    with_store = dataclasses.replace(d, clip_store=str(store))
    assert len(build_split_clips(with_store, ("test",))["test"].records) == 4
    cases = {
        "frames.num_frames: store has 8, this run has 6": dict(num_frames=6),
        "frames.frame_sampler: store has 'ta2n', this run has 'uniform'": dict(frame_sampler="uniform"),
        "resolution.resize_short: store has 32, this run has 40": dict(resize_short=40),
        "frames.tracks: store has False, this run has True": dict(tracks=str(tmp_path)),
    }
    for message, change in cases.items():
        with pytest.raises(ClipStoreError, match="stale clip store.*" + message.replace("(", r"\(")):
            build_split_clips(dataclasses.replace(with_store, **change), ("test",))
    # crop, flip and normalisation are applied at load time: the same store serves them
    build_split_clips(
        dataclasses.replace(with_store, crop=20, flip=False, normalization="imagenet"), ("test",)
    )
    with pytest.raises(ClipStoreError, match=r"no \['train'\] split"):
        build_split_clips(with_store, ("train", "test"))
    # a changed split file changes the key
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "testlist01.txt").write_text("jump/a\njump/b\nsit/c\n")
    with pytest.raises(ClipStoreError, match="split_files.test: store has"):
        build_split_clips(dataclasses.replace(with_store, splits=str(tmp_path / "splits")), ("test",))
    # preparing other settings into the same folder is refused
    with pytest.raises(ClipStoreError, match="prepared with other settings.*num_frames"):
        prepare(bench_dir, dataclasses.replace(d, num_frames=4), store, splits=("test",))
    (store / "index.json").unlink()
    with pytest.raises(ClipStoreError, match="unfinished clip store"):
        ClipStore(store)
    with pytest.raises(ClipStoreError, match="not a clip store"):
        ClipStore(tmp_path / "splits")


def test_killed_prepare_resumes_and_gives_the_same_store(bench_dir, tmp_path, monkeypatch):
    d = data_cfg(bench_dir)
    full = tmp_path / "full"
    prepare(bench_dir, d, full, shard_videos=2)
    from fsar.data import prepare as prepare_module

    real = prepare_module.store_video
    calls = []

    def dies_on_the_fourth(job, settings):
        calls.append(job.entry)
        if len(calls) == 4:
            raise KeyboardInterrupt  # a kill in the middle of train's shard 1 (sit/c written, sit/d not)
        return real(job, settings)

    monkeypatch.setattr(prepare_module, "store_video", dies_on_the_fourth)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        prepare(bench_dir, d, part, shard_videos=2)
    assert not (part / "index.json").exists() and (part / "train" / "shard_00000.json").is_file()
    assert not (part / "train" / "shard_00001.json").exists()
    assert not list((part / "train").glob(".*partial"))
    with pytest.raises(ClipStoreError, match="unfinished"):
        build_split_clips(dataclasses.replace(d, clip_store=str(part)), ("train",))
    monkeypatch.setattr(prepare_module, "store_video", real)
    # a kill -9 leaves a partial shard, or a renamed shard whose table was not written yet: both are redone
    (part / "train" / ".shard_00001.u8.partial").write_bytes(b"junk" * 1000)
    (part / "test" / "shard_00000.u8").write_bytes(b"junk")
    report = prepare(bench_dir, d, part, shard_videos=2)
    assert report.skipped == 2 and report.done == 6
    for split in ("train", "test"):
        for k in (0, 1):
            name = f"{split}/shard_{k:05d}.u8"
            assert (part / name).read_bytes() == (full / name).read_bytes()
    again = prepare(bench_dir, d, part, shard_videos=2)
    assert again.skipped == 8 and again.done == 0


def test_failed_videos_are_listed_and_never_substituted(bench_dir, tmp_path):
    root = tmp_path / "bench"
    import shutil

    shutil.copytree(bench_dir, root)
    (root / "videos" / "jump" / "a.mp4").write_bytes(b"not a video")
    (root / "splits" / "testlist01.txt").write_text("jump/a\njump/b\nsit/c\nsit/d\nsit/gone\n")
    store = tmp_path / "store"
    args = ["data", "prepare", "demo_ta2n_tiny", "data.benchmark=hmdb51", f"data.root={root / 'videos'}"]
    args += [f"data.splits={root / 'splits'}", "data.frame_sampler=uniform", "data.resize_to=[64, 64]"]
    assert main([*args, "--splits", "test", "--out", str(store), "--no-progress"]) == 1
    errors = (store / "errors.txt").read_text().splitlines()
    assert len(errors) == 2
    assert errors[0].startswith("test line 1 jump/a: ") and "missing" in errors[1] and "sit/gone" in errors[1]
    d = data_cfg(root, clip_store=str(store), frame_sampler="uniform", resize_short=None, resize_to=[64, 64])
    d = dataclasses.replace(d, crop=None, flip=False)
    with pytest.raises(
        MissingVideosError, match=r"(?s)2 of 5 videos .* not in the clip store.*line 1: jump/a"
    ):
        build_split_clips(d, ("test",))
    clips = build_split_clips(dataclasses.replace(d, allow_missing=True), ("test",), run_dir=tmp_path / "run")
    assert [r.entry for r in clips["test"].records] == ["jump/b", "sit/c", "sit/d"]
    assert (tmp_path / "run" / "skipped_test.txt").read_text() == "jump/a\nsit/gone\n"
    with pytest.raises(VideoError, match="not stored"):
        ClipStore(store).split("test").open_entry("jump/a")


def test_stored_video_refuses_frames_it_does_not_hold(bench_dir, tmp_path):
    d = data_cfg(bench_dir, frame_sampler="uniform")
    prepare(bench_dir, d, tmp_path / "store", splits=("test",))
    video = ClipStore(tmp_path / "store").split("test").open_entry("jump/a")
    held = video.stored_indices
    assert held.tolist() == np.floor(np.linspace(0, 30, 8)).astype(int).tolist()
    assert video.frames(held[::-1]).shape == (8, 32, 42, 3)
    with pytest.raises(VideoError, match=r"frames \[1\] are not in the clip store"):
        video.frames([0, 1])
    with pytest.raises(IndexError, match="out of range"):
        video.frames([31])


def test_workers_write_the_same_store(bench_dir, tmp_path):
    d = data_cfg(bench_dir)
    prepare(bench_dir, d, tmp_path / "one", splits=("test",))
    prepare(bench_dir, d, tmp_path / "two", splits=("test",), workers=2)
    one = (tmp_path / "one" / "test" / "shard_00000.u8").read_bytes()
    assert one == (tmp_path / "two" / "test" / "shard_00000.u8").read_bytes()


def test_point_tracks_work_from_the_store(synth, tmp_path):
    tracks = tmp_path / "tracks"
    argv = ["track", "--benchmark", "synthetic", "--root", str(synth), "--out", str(tracks), "--split-names"]
    assert main([*argv, "test", "--grid", "4", "--points", "8", "--no-progress"]) == 0
    over = [f"data.root={synth}", f"data.tracks={tracks}", "data.workers=0"]
    store = tmp_path / "store"
    prep = [
        "data",
        "prepare",
        "demo_tats_tiny",
        *over,
        "--splits",
        "test",
        "--out",
        str(store),
        "--no-progress",
    ]
    assert main(prep) == 0
    cfg = load_config("demo_tats_tiny", over)
    decoded = build_split_clips(cfg.data, ("test",))["test"]
    stored = build_split_clips(dataclasses.replace(cfg.data, clip_store=str(store)), ("test",))["test"]
    track_frames = set()
    for rec_d, rec_s in zip(decoded.records, stored.records):
        for train in (True, False):
            a = decoded.load_video(rec_d, train, np.random.default_rng(3))
            b = stored.load_video(rec_s, train, np.random.default_rng(3))
            assert b.tracks is not None and b.tracks.shape == (8, 8, 2)
            for name in ("tracks", "query_mask", "visibility"):
                assert np.array_equal(getattr(a, name).numpy(), getattr(b, name).numpy()), name
            assert np.abs(a.frames.numpy() - b.frames.numpy()).max() <= 0.5 / 255 * 2 + 1e-6  # rgb_diff: 2x
        video = ClipStore(store).split("test").open_entry(rec_s.entry)
        track_frames |= set(video.stored_indices.tolist())
    # the store holds the track files' frames too (LK tracks at 10 fps of the 16-frame videos)
    assert len(track_frames) > 8
    # a store with tracks serves a run without them
    no_tracks = dataclasses.replace(cfg.data, tracks=None, clip_store=str(store))
    assert len(build_split_clips(no_tracks, ("test",))["test"].records) == 30
    # a store prepared without tracks: with the segment sampler it keeps every frame, so it serves a run with
    # tracks (and preparing it again with tracks reuses it); with a sampler that keeps a few frames it is refused
    for sampler, serves in (("segment", True), ("uniform", False)):
        plain = tmp_path / f"plain_{sampler}"
        prep_plain = [
            "data",
            "prepare",
            "demo_tats_tiny",
            f"data.root={synth}",
            f"data.frame_sampler={sampler}",
        ]
        assert main([*prep_plain, "--splits", "test", "--out", str(plain), "--no-progress"]) == 0
        run = dataclasses.replace(cfg.data, frame_sampler=sampler, clip_store=str(plain))
        if not serves:
            with pytest.raises(ClipStoreError, match="frames.tracks: store has False, this run has True"):
                build_split_clips(run, ("test",))
            continue
        served = build_split_clips(run, ("test",))["test"]
        for rec_d, rec_s in zip(decoded.records, served.records):
            a = decoded.load_video(rec_d, True, np.random.default_rng(4))
            b = served.load_video(rec_s, True, np.random.default_rng(4))
            assert np.array_equal(a.tracks.numpy(), b.tracks.numpy())
            assert np.abs(a.frames.numpy() - b.frames.numpy()).max() <= 0.5 / 255 * 2 + 1e-6
        again = [
            *prep_plain,
            f"data.tracks={tracks}",
            "--splits",
            "test",
            "--out",
            str(plain),
            "--no-progress",
        ]
        assert main(again) == 0


def test_frame_folders_in_the_benchmark_layout_are_read_back_as_frame_folders(bench_dir, tmp_path, capsys):
    out = tmp_path / "frames"
    args = ["data", "prepare", "demo_ta2n_tiny", "data.benchmark=hmdb51", f"data.root={bench_dir / 'videos'}"]
    args += [f"data.splits={bench_dir / 'splits'}", "--format", "frames", "--out", str(out), "--no-progress"]
    (out / "jump" / ".a.partial").mkdir(parents=True)  # a killed run's leftover: replaced, never read
    (out / "jump" / ".a.partial" / "img_00001.jpg").write_bytes(b"junk")
    assert main(args) == 0
    assert "4 videos: 4 prepared now, 0 already done, 0 failed" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "jump" / "a").iterdir())[:2] == ["img_00001.jpg", "img_00002.jpg"]
    assert not (out / "jump" / ".a.partial").exists()
    frames = load_benchmark("hmdb51", root=out, splits_dir=bench_dir / "splits")
    videos = load_benchmark("hmdb51", root=bench_dir / "videos", splits_dir=bench_dir / "splits")
    from fsar.data.video import FrameFolderVideo, open_video

    for a, b in zip(frames.split("test").records, videos.split("test").records):
        fv, vv = open_video(a.path), open_video(b.path)
        assert isinstance(fv, FrameFolderVideo) and fv.num_frames == vv.num_frames and fv.size == vv.size
        idx = np.arange(vv.num_frames)
        assert np.abs(fv.frames(idx).astype(int) - vv.frames(idx).astype(int)).mean() < 2.0  # JPEG q95
    assert main(args) == 0  # resumed: everything is there already
    assert "0 prepared now, 4 already done" in capsys.readouterr().out
    assert (
        main(
            [
                "data",
                "check",
                "--benchmark",
                "hmdb51",
                "--root",
                str(out),
                "--splits",
                str(bench_dir / "splits"),
            ]
        )
        == 0
    )


def test_frame_folder_outputs_follow_the_video_id_layout(tmp_path):
    from fsar.data.prepare import frame_folder_output

    root = tmp_path / "ssv2"
    write_encoded_video(root / "51958.mp4", make_frames(4))
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "testlist01.txt").write_text("train24/51958\n")
    bench = load_benchmark("ssv2_small", root=root, splits_dir=tmp_path / "splits")
    record = bench.split("test").records[0]
    assert frame_folder_output(bench, record, tmp_path / "out") == tmp_path / "out" / "51958"


def _leaves(key: dict, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in key.items():
        out |= _leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
    return out


def test_every_component_of_the_store_key_refuses_a_stale_store(bench_dir, tmp_path, monkeypatch):
    """One change per component of the key (read from the store itself, so that a new component must be added
    here): opening the store is refused with an error naming that component and both values."""
    import fsar.data.clip_store as clip_store_module

    d = data_cfg(bench_dir, resize_short=None, resize_to=[24, 32])
    store = tmp_path / "store"
    prepare(bench_dir, d, store, splits=("test",))
    with_store = dataclasses.replace(d, clip_store=str(store))
    assert len(build_split_clips(with_store, ("test",))["test"].records) == 4
    assert ClipStore(store).split("test").open_entry("jump/a").size == (24, 32)  # [H, W] as resize_to says
    other_splits = tmp_path / "splits"
    other_splits.mkdir()
    (other_splits / "testlist01.txt").write_text("jump/a\njump/b\nsit/c\n")
    cases = {
        "version": ({}, f"version: store has {clip_store_module.STORE_VERSION}, this run has 99"),
        "benchmark": (dict(benchmark="ucf101"), "benchmark: store has 'hmdb51', this run has 'ucf101'"),
        "split_files.test": (dict(splits=str(other_splits)), "split_files.test: store has '"),
        "resolution.resize_to": (
            dict(resize_to=[32, 32]),
            "resolution.resize_to: store has [24, 32], this run has [32, 32]",
        ),
        "resolution.resize_short": (
            dict(resize_to=None, resize_short=24),
            "resolution.resize_short: store has None, this run has 24",
        ),
        "frames.num_frames": (dict(num_frames=6), "frames.num_frames: store has 8, this run has 6"),
        "frames.frame_sampler": (
            dict(frame_sampler="uniform"),
            "frames.frame_sampler: store has 'ta2n', this run has 'uniform'",
        ),
        "frames.tracks": (dict(tracks=str(tmp_path)), "frames.tracks: store has False, this run has True"),
    }
    assert set(cases) == _leaves(ClipStore(store).key)
    # the one allowed difference: a store with track frames serves a run without tracks, not the reverse
    from fsar.data.clip_store import key_differences

    with_tracks = json.loads(json.dumps(ClipStore(store).key))
    with_tracks["frames"]["tracks"] = True
    assert key_differences(with_tracks, ClipStore(store).key, ["test"]) == []
    assert key_differences(ClipStore(store).key, with_tracks, ["test"]) == [
        "frames.tracks: store has False, this run has True"
    ]
    for component, (change, message) in cases.items():
        with monkeypatch.context() as m:
            if component == "version":
                m.setattr(clip_store_module, "STORE_VERSION", 99)
            with pytest.raises(ClipStoreError) as err:
                build_split_clips(dataclasses.replace(with_store, **change), ("test",))
        text = str(err.value)
        assert "stale clip store" in text and message in text, (component, text)
        # only the changed component is named (resize_to -> resize_short also names resize_to, by design)
        named = {leaf for leaf in cases if f"{leaf}: store has" in text}
        assert named == (
            {component, "resolution.resize_to"} if component == "resolution.resize_short" else {component}
        )


def test_preparing_decodes_each_encoded_video_once(bench_dir, tmp_path, monkeypatch):
    """The frame count comes with the frames (Video.sample): one decoding pass per video, not a counting pass
    and then a reading pass. The store's bytes are those a two-pass read gives."""
    from fsar.data.video import EncodedVideo

    d = data_cfg(bench_dir)
    passes = []
    real_open = EncodedVideo._open

    def counting_open(self):
        passes.append(self.path.name)
        return real_open(self)

    monkeypatch.setattr(EncodedVideo, "_open", counting_open)
    report = prepare(bench_dir, d, tmp_path / "store", workers=1, splits=("test",))
    encoded = [v for c, v, n, kind in VIDEOS if kind != "png"]
    assert report.done == len(VIDEOS) and report.failed == []
    assert sorted(passes) == sorted(f"{v}.mp4" for v in encoded)
