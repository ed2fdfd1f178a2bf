"""The clip store: videos decoded once into memory-mapped uint8 frames at the training resolution.

Decoding dominates training on small models (an episode of 30 clips takes 0.4-0.7 s to decode, 18 ms to read from
pre-decoded arrays). ``fsar data prepare CONFIG --out DIR`` decodes every video of a benchmark's splits once and
``data.clip_store=DIR`` makes training and evaluation read clips from ``DIR`` without decoding anything.

What is stored, per video
    The frames the configured frame sampler can ever pick (``fsar.data.sampling.sampler_support``: train jitter and
    test choice together; ``uniform`` T frames, ``ta2n`` at most 48 for T = 8, ``segment`` every frame), plus, when
    the store is prepared with point tracks (``data.tracks``), the frames the track files select. Each frame is
    resized with the deterministic part of the config's transform (``resize_short`` / ``resize_to``, the same
    filter as ``ClipTransform``) and rounded to uint8. Random crops, flips and photometric augmentation stay at load
    time. Also stored: the video's true frame count (so samplers, and the short-video accounting, see the same
    ``n`` as when decoding), its original (H, W) (point tracks are in original pixels) and the source indices of
    the stored frames.

Equality with decoding
    A clip read from the store equals the clip decoded from the video with the same config and rng up to the
    uint8 rounding of the resized frames: at most 0.5 grey levels before normalisation (``0.5 / (255 * std)``
    after it); frame indices, crop offsets, flips and short flags are identical (tested). Photometric train
    augmentation, when configured, runs on the resized instead of the original frames.

Layout of ``DIR`` (one flat file per shard of videos rather than one file per video: a few dozen files for
SSv2-Full instead of 77,500, one memory map per shard per process, whole shards written in one sequential pass and
resumed shard by shard)::

    build.json                  key and layout of the store being built (written first)
    <split>/shard_00000.u8      the stored frames of up to ``shard_videos`` videos, raw uint8, back to back
    <split>/shard_00000.json    that shard's table (written after its .u8: a shard with a .json is complete)
    <split>/table.npz           all videos of the split: entry, shard, byte offset, frames, sizes, indices
    errors.txt                  one ``<split> line N class/video: reason`` per video that is not stored
    index.json                  key, per-split summary and failures; written last: no index.json, no store

The *key* names everything the stored bytes depend on: the benchmark, the split files' hashes, the stored
resolution (``resize_short`` or ``resize_to``), the clip length and frame sampler, and whether track frames were
included. Opening a store for a run compares it with the run's own key and refuses a stale store, naming each field
that differs (a store prepared with track frames also serves runs without tracks, and a store of a sampler that keeps
every frame, ``segment``, serves runs with tracks even when prepared without them).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fsar.data.keys import diff_keys, file_hash
from fsar.data.sampling import keeps_every_frame
from fsar.data.video import Video
from fsar.errors import FsarError, MissingVideosError, VideoError
from fsar.parts import PARTS_DIR

STORE_VERSION = 1
INDEX_FILE = "index.json"
BUILD_FILE = "build.json"
ERRORS_FILE = "errors.txt"
TABLE_FILE = "table.npz"
MAX_LISTED = 20


class ClipStoreError(FsarError):
    """A clip store is missing, incomplete, stale (made for another configuration) or lacks a video."""


def stored_size(in_hw: tuple[int, int], resize_short: int | None, resize_to: Sequence[int] | None):
    """(H, W) at which a video of size ``in_hw`` is stored: the deterministic resize of ``ClipTransform``."""
    from fsar.data.transforms import short_side_size

    if resize_to:
        return int(resize_to[0]), int(resize_to[1])
    if resize_short:
        return short_side_size(in_hw, int(resize_short))
    return int(in_hw[0]), int(in_hw[1])


def store_key(
    benchmark: str,
    split_files: dict[str, str | Path],
    num_frames: int,
    frame_sampler: str,
    resize_short: int | None,
    resize_to: Sequence[int] | None,
    tracks: bool,
) -> dict[str, Any]:
    """What the stored bytes depend on (``resize_short`` is ignored when ``resize_to`` is set, as in the
    transforms)."""
    return {
        "version": STORE_VERSION,
        "benchmark": benchmark,
        "split_files": {name: file_hash(p) for name, p in sorted(split_files.items())},
        "resolution": {
            "resize_short": None if resize_to else (int(resize_short) if resize_short else None),
            "resize_to": [int(s) for s in resize_to] if resize_to else None,
        },
        # "tracks": whether the store holds the frames point tracks select; a sampler that keeps every frame
        # (segment) holds them whether or not the store was prepared with tracks
        "frames": {
            "num_frames": int(num_frames),
            "frame_sampler": frame_sampler,
            "tracks": bool(tracks) or keeps_every_frame(frame_sampler),
        },
    }


def key_differences(have: dict[str, Any], want: dict[str, Any], splits: Iterable[str]) -> list[str]:
    """Fields in which a store's key ``have`` does not serve a run with key ``want`` over ``splits``."""
    have = json.loads(json.dumps(have))
    want = json.loads(json.dumps(want))
    splits = list(splits)
    have["split_files"] = {n: h for n, h in have.get("split_files", {}).items() if n in splits}
    want["split_files"] = {n: h for n, h in want.get("split_files", {}).items() if n in splits}
    for key in (have, want):
        key.setdefault("frames", {})
    if have["frames"].get("tracks") and not want["frames"].get("tracks"):
        want["frames"]["tracks"] = True  # extra track frames do not hurt a run without tracks
    return diff_keys(have, want, "store", "this run")


class StoredVideo(Video):
    """One video of a clip store, read through the shard's memory map; the ``Video`` API at the stored size.

    ``num_frames`` is the video's true frame count; ``frames(indices)`` returns the stored frames of those source
    indices and fails, naming the video, for an index that was not stored. ``source_size`` is the original
    (H, W), for geometry that refers to the original frames (point tracks)."""

    def __init__(
        self,
        path: Path,
        data: np.ndarray,
        stored_indices: np.ndarray,
        num_frames: int,
        source_size: tuple[int, int],
    ) -> None:
        self.path = Path(path)
        self._data = data  # [k, h, w, 3] uint8 view of the shard
        self.stored_indices = np.asarray(stored_indices, dtype=np.int64)
        self._num_frames = int(num_frames)
        self.source_size = (int(source_size[0]), int(source_size[1]))

    @property
    def num_frames(self) -> int:
        return self._num_frames

    @property
    def size(self) -> tuple[int, int]:
        return int(self._data.shape[1]), int(self._data.shape[2])

    @property
    def fps(self) -> float | None:
        return None

    def frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise ValueError(f"{self.path}: frame indices must be a 1-D integer sequence, got {idx!r}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self._num_frames):
            bad = int(idx[(idx < 0) | (idx >= self._num_frames)][0])
            raise IndexError(
                f"{self.path}: frame index {bad} is out of range; valid indices are 0..{self._num_frames - 1}"
            )
        pos = np.searchsorted(self.stored_indices, idx)
        pos = np.minimum(pos, len(self.stored_indices) - 1)
        absent = idx[self.stored_indices[pos] != idx]
        if absent.size:
            raise VideoError(
                self.path,
                f"frames {sorted(set(absent.tolist()))[:10]} are not in the clip store (it holds "
                f"{len(self.stored_indices)} of {self._num_frames} frames, those the frame sampler and track "
                "files it was prepared for can pick); re-run `fsar data prepare` with this run's config",
            )
        return np.ascontiguousarray(self._data[pos])

    def verify(self) -> int:
        """Read every stored frame from the memory map (a truncated or unreadable shard fails here); the frames
        were decoded and checked when the store was prepared. Returns the true frame count."""
        try:
            np.asarray(self._data).sum(dtype=np.uint64)
        except (OSError, ValueError) as exc:
            raise VideoError(
                self.path, f"stored frames cannot be read ({exc}); re-run `fsar data prepare`"
            ) from None
        return self._num_frames


class StoreSplit:
    """The stored videos of one split: ``open(record)`` gives a ``StoredVideo``; ``failed`` maps split entries
    that are not stored to the reason. Shards are memory-mapped lazily, once per process."""

    def __init__(self, root: Path, name: str, failed: dict[str, str]) -> None:
        self.root = Path(root)
        self.name = name
        path = self.root / name / TABLE_FILE
        if not path.is_file():
            raise ClipStoreError(f"{path}: missing from the clip store; re-run `fsar data prepare`")
        with np.load(path) as t:
            self._table = {k: t[k] for k in t.files}
        self.entries: list[str] = [str(e) for e in self._table["entries"]]
        self._row = {e: i for i, e in enumerate(self.entries)}
        self.failed = dict(failed)
        self._maps: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, entry: str) -> bool:
        return entry in self._row

    def __getstate__(self) -> dict:  # memory maps are re-opened in each data-loader worker
        return {**self.__dict__, "_maps": {}}

    def path_of(self, entry: str) -> Path:
        """A name for the stored video in messages (not a file)."""
        return self.root / self.name / entry

    def _shard(self, k: int) -> np.ndarray:
        if k not in self._maps:
            path = self.root / self.name / f"shard_{k:05d}.u8"
            if not path.is_file():
                raise ClipStoreError(f"{path}: clip-store shard missing; re-run `fsar data prepare`")
            self._maps[k] = (
                np.memmap(path, dtype=np.uint8, mode="r") if path.stat().st_size else np.zeros(0, np.uint8)
            )
        return self._maps[k]

    def open_entry(self, entry: str) -> StoredVideo:
        row = self._row.get(entry)
        if row is None:
            reason = self.failed.get(entry, "not in the clip store")
            raise VideoError(
                self.path_of(entry),
                f"not stored ({reason}); fix the video and re-run `fsar data prepare --retry-failed`, or allow "
                "skipping missing videos (data.allow_missing=true)",
            )
        t = self._table
        k, h, w = int(t["count"][row]), int(t["height"][row]), int(t["width"][row])
        offset = int(t["offset"][row])
        flat = self._shard(int(t["shard"][row]))[offset : offset + k * h * w * 3]
        if flat.size != k * h * w * 3:
            raise ClipStoreError(
                f"{self.path_of(entry)}: the shard is shorter than its table says (truncated copy?); re-run "
                "`fsar data prepare`"
            )
        start, stop = int(t["idx_start"][row]), int(t["idx_start"][row + 1])
        return StoredVideo(
            self.path_of(entry),
            flat.reshape(k, h, w, 3),
            t["indices"][start:stop],
            int(t["num_frames"][row]),
            (int(t["src_height"][row]), int(t["src_width"][row])),
        )

    def open(self, record) -> StoredVideo:
        """The stored video of a ``VideoRecord`` (matched by its split entry ``class/video``)."""
        return self.open_entry(record.entry)

    def num_frames(self, entry: str) -> int:
        return int(self._table["num_frames"][self._row[entry]])


class ClipStore:
    """A finished clip store (see the module docstring). Raises ``ClipStoreError`` for a missing, unfinished or
    (with ``expected_key``) stale store."""

    def __init__(
        self, root: str | Path, expected_key: dict[str, Any] | None = None, splits: Iterable[str] = ()
    ) -> None:
        self.root = Path(root)
        index_path = self.root / INDEX_FILE
        if not index_path.is_file():
            if (self.root / PARTS_DIR).is_dir():
                raise ClipStoreError(
                    f"{self.root}: clip store prepared in parts (--part I/N) and not merged yet; finish every "
                    f"part, or see which are missing with `fsar data merge-parts {self.root}`"
                )
            if (self.root / BUILD_FILE).is_file():
                raise ClipStoreError(
                    f"{self.root}: unfinished clip store (`fsar data prepare` was interrupted or is running); "
                    "re-run the same prepare command to finish it"
                )
            raise ClipStoreError(
                f"{self.root}: not a clip store (no {INDEX_FILE}); create it with `fsar data prepare CONFIG "
                f"--out {self.root}`"
            )
        self.index = json.loads(index_path.read_text(encoding="utf-8"))
        self.key: dict[str, Any] = self.index["key"]
        splits = list(splits)
        absent = [s for s in splits if s not in self.index["splits"]]
        if absent:
            raise ClipStoreError(
                f"{self.root}: the clip store has no {absent} split(s) (it has "
                f"{sorted(self.index['splits'])}); prepare them with `fsar data prepare ... --splits "
                f"{','.join(absent)}`"
            )
        if expected_key is not None:
            diffs = key_differences(self.key, expected_key, splits or list(self.index["splits"]))
            if diffs:
                raise ClipStoreError(
                    f"{self.root}: stale clip store, made for another configuration: "
                    + "; ".join(diffs)
                    + ". Re-run `fsar data prepare` for this configuration into another folder, or point "
                    "data.clip_store elsewhere."
                )
        self._splits: dict[str, StoreSplit] = {}

    @property
    def splits(self) -> list[str]:
        return list(self.index["splits"])

    def split(self, name: str) -> StoreSplit:
        if name not in self.index["splits"]:
            raise ClipStoreError(f"{self.root}: the clip store has no {name!r} split")
        if name not in self._splits:
            self._splits[name] = StoreSplit(self.root, name, self.index["splits"][name].get("failed", {}))
        return self._splits[name]


def stored_records(store_split: StoreSplit, split_data, allow_missing: bool, report_path: Path | None = None):
    """The split's records served by the store (``path`` renamed into the store). A record that is not stored
    fails (listing up to 20 with the reason prepare gave) unless ``allow_missing``; then it is left out and written
    to ``report_path`` (one ``class/video`` per line), as missing videos are when decoding."""
    present, missing = [], []
    for r in split_data.records:
        if r.entry in store_split:
            present.append(dataclasses.replace(r, path=store_split.path_of(r.entry)))
        else:
            missing.append(r)
    if not missing:
        return present
    reason = store_split.failed
    if not allow_missing:
        shown = "\n".join(
            f"  line {r.line}: {r.entry}: {reason.get(r.entry, 'not in the store')}"
            for r in missing[:MAX_LISTED]
        )
        more = f"\n  ... and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
        raise MissingVideosError(
            f"{len(missing)} of {len(split_data.records)} videos of the {split_data.benchmark} {split_data.name} "
            f"split are not in the clip store {store_split.root}:\n{shown}{more}\n"
            f"Fix them (full list in {store_split.root / ERRORS_FILE}) and re-run `fsar data prepare "
            "--retry-failed`, or allow skipping them (data.allow_missing=true; the skipped videos are then listed "
            "in the run folder)."
        )
    if report_path is not None:
        report_path = Path(report_path)
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text("".join(f"{r.entry}\n" for r in missing), encoding="utf-8")
    return present
