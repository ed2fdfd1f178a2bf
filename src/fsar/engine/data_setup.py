"""Build the splits' clip sources from a ``DataConfig``: benchmark, frame sampler, transforms, point tracks, and
where the pixels come from (the videos, or a clip store with ``data.clip_store``). The sources themselves live in
``fsar.data`` (``fsar.data.sources``); this module only maps the config onto them."""

from __future__ import annotations

from pathlib import Path

from fsar.data.benchmarks import load_benchmark
from fsar.data.check import require_complete
from fsar.data.clip_store import ClipStore, store_key, stored_records
from fsar.data.clips import ClipLoader
from fsar.data.randaugment import RandAugment
from fsar.data.sampling import build_frame_sampler
from fsar.data.sources import PixelClips
from fsar.data.transforms import ClipTransform
from fsar.data.twins import read_twin_classes, twin_labels
from fsar.engine.config import DataConfig
from fsar.engine.episode_data import SplitClips
from fsar.errors import ConfigError


def open_benchmark(data: DataConfig):
    """The configured benchmark. For ``synthetic``, ``root`` is the ``fsar synth --out`` folder."""
    if data.root is None and data.clip_store and data.splits:
        # a clip store serves every clip: the videos themselves need not be on this machine
        return load_benchmark(
            data.benchmark, root=data.clip_store, splits_dir=data.splits, split_id=data.split_id
        )
    if data.root is None:
        raise ConfigError(
            "data.root is not set: give the videos root (for `synthetic`, the `fsar synth --out` folder)"
        )
    root = Path(data.root)
    splits = Path(data.splits) if data.splits else None
    if data.benchmark == "synthetic" and splits is None:
        splits, root = root / "splits", root / "videos"
    if splits is None:
        raise ConfigError(
            f"data.splits is not set for benchmark {data.benchmark!r}: give the split files' folder"
        )
    return load_benchmark(data.benchmark, root=root, splits_dir=splits, split_id=data.split_id)


def make_transforms(data: DataConfig, flip_allowed: bool) -> tuple[ClipTransform, ClipTransform]:
    flip = flip_allowed if data.flip is None else data.flip
    if flip and not flip_allowed:
        raise ConfigError(
            f"data.flip=true but benchmark {data.benchmark!r} has direction-sensitive labels; remove the override"
        )
    resize_to = tuple(data.resize_to) if data.resize_to else None
    common = dict(
        resize_short=data.resize_short, resize_to=resize_to, crop=data.crop, normalization=data.normalization
    )
    return ClipTransform(train=True, flip=flip, **common), ClipTransform(train=False, flip=False, **common)


def clip_store_key(data: DataConfig, split_files: dict[str, Path]) -> dict:
    """The clip-store key of this data config over ``split_files`` (what a store for it must have been made with)."""
    return store_key(
        data.benchmark,
        split_files,
        data.num_frames,
        data.frame_sampler,
        data.resize_short,
        data.resize_to,
        tracks=data.tracks is not None,
    )


def build_split_clips(
    data: DataConfig, splits: tuple[str, ...], run_dir: Path | None = None
) -> dict[str, SplitClips]:
    """One ``SplitClips`` per requested split. Missing videos fail unless ``data.allow_missing``; then the
    left-out videos are written to ``run_dir/skipped_<split>.txt``. With ``data.clip_store`` every clip is read
    from the store (checked against this config first); nothing is decoded."""
    bench = open_benchmark(data)
    train_tf, test_tf = make_transforms(data, bench.spec.flip_allowed)
    store = None
    if data.clip_store:
        files = {n: bench.split_files[n] for n in splits if n in bench.split_files}
        store = ClipStore(data.clip_store, expected_key=clip_store_key(data, files), splits=splits)
    tracks = None
    if data.tracks is not None:
        from fsar.data.tracks import TrackSource

        tracks = TrackSource(
            Path(data.tracks),
            num_frames=data.num_frames,
            point_sampling=data.point_sampling,
            num_points=data.num_points,
        )

    def make_loader(video_source=None) -> ClipLoader:
        return ClipLoader(
            data.num_frames,
            build_frame_sampler(data.frame_sampler),
            train_tf,
            test_tf,
            cache_clips=0 if video_source is not None else data.cache_clips,  # a store needs no clip cache
            train_augment=RandAugment() if data.rand_augment else None,
            video_source=video_source,
        )

    twins = _twin_classes(data)
    loader = None if store is not None else make_loader()
    out: dict[str, SplitClips] = {}
    for name in splits:
        split = bench.split(name)
        report = run_dir / f"skipped_{name}.txt" if run_dir is not None else None
        if store is not None:
            stored = store.split(name)
            present = stored_records(stored, split, allow_missing=data.allow_missing, report_path=report)
            skipped = [r for r in split.records if r.entry not in stored]
            source = PixelClips(make_loader(stored.open), data.modality, tracks, kind="clip store")
        else:
            present = require_complete(split, allow_missing=data.allow_missing, report_path=report)
            skipped = [r for r in split.records if r.path is None]
            source = PixelClips(loader, data.modality, tracks, kind="videos")
        split_file = Path(split.split_file) if getattr(split, "split_file", None) else None
        out[name] = SplitClips(
            name=name,
            records=present,
            load_video=source.load,
            skipped=skipped,
            source=split_file,
            twins=twin_labels(twins, split.classes),
            classes=list(split.classes),
            plan_video=source.plan,
        )
    return out


def _twin_classes(data: DataConfig) -> dict[str, str]:
    """Reversed-order twin classes: from ``data.twins``, or the synthetic benchmark's ``meta.json``."""
    if data.twins is not None:
        return read_twin_classes(data.twins)
    if data.benchmark == "synthetic" and data.root is not None and (Path(data.root) / "meta.json").is_file():
        return read_twin_classes(Path(data.root) / "meta.json")
    return {}


def build_inputs(cfg, splits: tuple[str, ...], run_dir: Path | None = None):
    """The splits' clip sources and, with ``data.feature_cache``, the stand-in backbone for cached features
    (``None`` otherwise: the model builds its configured backbone)."""
    clips = build_split_clips(cfg.data, splits, run_dir=run_dir)
    if not cfg.data.feature_cache:
        return clips, None
    from fsar.engine.feature_cache import open_for_run

    return open_for_run(cfg, clips)
