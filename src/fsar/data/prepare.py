"""``fsar data prepare``: decode a benchmark's videos once, into a clip store or JPEG frame folders.

Both formats share the same machinery: jobs in split-file order, ``workers`` decoding processes (spawned, one
torch thread each; ``workers <= 1`` decodes in this process), at most ``2 * workers`` videos in flight, a progress
bar, a per-video error list (``errors.txt``: missing videos, unreadable videos, too many frames) and a summary.
Work is atomic and resumable: a killed prepare leaves only finished pieces plus temporary files that are never
read, and running the same command again continues where it stopped.

- ``prepare_clip_store``: the clip store of ``fsar.data.clip_store`` (layout and key there). Shard ``k`` of a split
  holds the split's videos ``k * shard_videos ...``; the main process appends each decoded video to its shard's
  temporary file and renames it when the shard is complete (then writes the shard's table), so a resume redoes
  at most the shards that were in flight. ``index.json`` is written last, after every shard of every split.
  Preparing again into the same folder with another configuration is refused, naming what differs; more splits
  may be added to a store later.
- ``prepare_frame_folders``: every frame of every video, at its original size, as ``img_00001.jpg`` ... (ffmpeg's
  ``%05d`` numbering from 1; ``FrameFolderVideo`` sorts naturally) in the benchmark's own layout (class folders
  or one folder per video id), so ``OUT`` is a videos root the benchmark loader reads as frame folders. Each
  video's folder is written under a temporary name and renamed when complete; existing folders are skipped.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fsar.data.benchmarks import VIDEO_IDS, Benchmark
from fsar.data.clip_store import (
    BUILD_FILE,
    ERRORS_FILE,
    INDEX_FILE,
    STORE_VERSION,
    TABLE_FILE,
    ClipStoreError,
    store_key,
    stored_size,
)
from fsar.data.keys import diff_keys, write_json_atomic
from fsar.parts import (
    PARTS_DIR,
    Part,
    PartsError,
    check_unit_files,
    finish_part,
    gather_parts,
    merged_errors,
    plan_hash,
    start_part,
    write_errors_file,
)
from fsar.procs import die_with_parent, is_lock_file

DEFAULT_MAX_FRAMES = 512
DEFAULT_SHARD_VIDEOS = 256
FRAME_PATTERN = "img_{:05d}.jpg"
STORE_KIND = "clip store"
FRAMES_KIND = "frame folders"


@dataclass
class PrepareJob:
    """One video of a split: where it is (``path`` None: missing from the videos root) and where it goes."""

    split: str
    entry: str  # class/video, the split-file entry
    line: int
    path: str | None
    shard: int = 0
    output: str | None = None  # frame folders: the video's output folder
    track_file: str | None = None  # clip store with tracks: the video's track file


@dataclass
class StoreSettings:
    """What a worker needs to turn a video into stored frames (picklable)."""

    num_frames: int
    frame_sampler: str
    resize_short: int | None
    resize_to: tuple[int, int] | None
    max_frames: int


@dataclass
class PrepareReport:
    """What a prepare did: videos written now, found done from an earlier run, and failed (with the reason)."""

    out: Path
    fmt: str
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: list[tuple[PrepareJob, str]] = field(default_factory=list)
    bytes: int = 0
    frames: int = 0
    seconds: float = 0.0
    part: Part | None = None  # --part I/N: what this part did (``total`` counts its videos only)
    merged: bool = False  # a part run: all parts were finished, checked and merged

    def summary(self) -> str:
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        return (
            ("" if self.part is None else f"part {self.part}: ")
            + f"{self.total} videos: {self.done} prepared now, {self.skipped} already done, {len(self.failed)} "
            f"failed; {self.frames:,} frames, {self.bytes / 1e9:.3f} GB written in {self.seconds:.1f} s "
            f"({rate:.2f} videos/s)"
        )


# ------------------------------------------------------------------------------------------------ workers
def _init_worker() -> None:
    import torch

    die_with_parent()

    torch.set_num_threads(1)


def _one_line(exc: BaseException) -> str:
    text = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
    return " ".join(str(text).split())


def store_video(job: PrepareJob, settings: StoreSettings) -> dict[str, Any]:
    """Decode the frames of ``job``'s video that the store keeps and resize them (see ``fsar.data.clip_store``)."""
    from fsar.data.sampling import build_frame_sampler, sampler_support
    from fsar.data.trackfile import TrackFile, uniform_rows
    from fsar.data.transforms import resize_frames
    from fsar.data.video import open_video

    sampler = build_frame_sampler(settings.frame_sampler)
    track_frames = None
    if job.track_file is not None:
        tf = TrackFile.load(job.track_file)
        track_frames = np.asarray(
            tf.timeline[uniform_rows(tf.num_frames, settings.num_frames)], dtype=np.int64
        )

    def choose(n: int) -> np.ndarray:
        wanted = sampler_support(sampler, n, settings.num_frames)
        if track_frames is not None:
            wanted = np.union1d(wanted, track_frames)
        if len(wanted) > settings.max_frames:
            raise ValueError(
                f"{len(wanted)} frames to store exceed --max-frames {settings.max_frames} (sampler "
                f"{settings.frame_sampler!r} on a {n}-frame video); raise --max-frames"
            )
        return wanted

    # One decoding pass: the frame count comes with the frames (Video.sample), not from a pass of its own.
    wanted, raw, n = open_video(job.path).sample(choose)
    src = (int(raw.shape[1]), int(raw.shape[2]))
    out_hw = stored_size(src, settings.resize_short, settings.resize_to)
    return {"frames": resize_frames(raw, out_hw), "indices": wanted, "num_frames": n, "source_size": src}


def _iter_all_frames(path: Path, chunk: int = 64):
    """Every frame of a video in order (uint8 RGB), decoding encoded files in one streaming pass."""
    from fsar.data.video import EncodedVideo, open_video, rgb_converter

    video = open_video(path)
    if isinstance(video, EncodedVideo):
        import av

        from fsar.errors import VideoError

        to_rgb = rgb_converter()
        try:
            with av.open(str(path)) as container:
                for frame in container.decode(video=0):
                    yield to_rgb(frame)
        except av.FFmpegError as exc:
            raise VideoError(path, f"decoding failed ({exc}); re-encode the video") from None
        return
    n = video.num_frames
    for start in range(0, n, chunk):
        yield from video.frames(np.arange(start, min(n, start + chunk)))


def frames_video(job: PrepareJob, quality: int) -> dict[str, Any]:
    """Write every frame of ``job``'s video as JPEGs into ``job.output`` (atomically: temp folder + rename)."""
    import cv2

    out = Path(job.output)
    tmp = out.with_name(f".{out.name}.partial")  # a fixed name: a killed run's leftovers are removed here
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n, nbytes, size = 0, 0, None
    try:
        for n, frame in enumerate(_iter_all_frames(Path(job.path)), start=1):
            file = tmp / FRAME_PATTERN.format(n)
            ok, buf = cv2.imencode(
                ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
            )
            if not ok:
                raise OSError(f"JPEG encoding failed for frame {n}")
            file.write_bytes(buf.tobytes())
            nbytes += len(buf)
            size = frame.shape[:2]
        if n == 0:
            raise ValueError("the video has no decodable frames")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"num_frames": n, "bytes": nbytes, "size": size}


def _run_job(fn: Callable, job: PrepareJob, arg) -> tuple[PrepareJob, dict | None, str | None]:
    try:
        return job, fn(job, arg), None
    except Exception as exc:  # every failure is listed, the others carry on
        return job, None, _one_line(exc)


def run_jobs(
    jobs: Sequence[PrepareJob],
    fn: Callable,
    arg,
    workers: int,
    on_result: Callable[[PrepareJob, dict | None, str | None], None],
) -> None:
    """``fn(job, arg)`` for every job, in ``workers`` spawned processes (in this process for ``workers <= 1``),
    at most ``2 * workers`` in flight; ``on_result(job, result, error)`` runs in this process for each."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            on_result(*_run_job(fn, job, arg))
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker) as pool:
        pending: dict = {}
        it = iter(jobs)
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < 2 * workers:
                job = next(it, None)
                if job is None:
                    exhausted = True
                    break
                pending[pool.submit(_run_job, fn, job, arg)] = job
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                job = pending.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # the worker process itself died
                    result = (job, None, f"worker failed: {_one_line(exc)}")
                on_result(*result)


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from fsar.progress import progress_bar

    return progress_bar(total, desc, "videos", initial=initial, enabled=enabled, stream=sys.stderr)


def write_errors(out: Path, failed: Iterable[tuple[PrepareJob, str]]) -> Path | None:
    """``out/errors.txt``: one ``<split> line N class/video: reason`` per failed video; removed when none."""
    path = out / ERRORS_FILE
    lines = [f"{j.split} line {j.line} {j.entry}: {reason}\n" for j, reason in failed]
    if not lines:
        path.unlink(missing_ok=True)
        return None
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text("".join(lines), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _missing_reason(job: PrepareJob) -> str:
    return "missing from the videos root (run `fsar data check` to list every missing video)"


# ------------------------------------------------------------------------------------------------ clip store
class _ShardWriter:
    """Appends stored videos to ``<split>/shard_k.u8`` (under a temporary name until complete), in the shard's
    job order whatever order the workers finish in, so a store's bytes do not depend on ``workers``."""

    def __init__(self, folder: Path, k: int, members: Sequence[PrepareJob]) -> None:
        self.final = folder / f"shard_{k:05d}.u8"
        self.table = folder / f"shard_{k:05d}.json"
        self.tmp = folder / f".shard_{k:05d}.u8.partial"  # truncated when the shard is redone
        self.file = open(self.tmp, "wb")  # noqa: SIM115 - closed in finish() or abandon()
        self.order = {j.entry: i for i, j in enumerate(members)}
        self.waiting: dict[int, tuple[PrepareJob, dict | None, str | None]] = {}
        self.next = 0
        self.offset = 0
        self.videos: list[dict] = []
        self.failed: dict[str, str] = {}

    @property
    def complete(self) -> bool:
        return self.next == len(self.order)

    def add(self, job: PrepareJob, result: dict | None, error: str | None) -> int:
        """Queue a finished video; write every queued video whose turn has come. Returns the bytes written."""
        self.waiting[self.order[job.entry]] = (job, result, error)
        written = 0
        while self.next in self.waiting:
            written += self._write(*self.waiting.pop(self.next))
            self.next += 1
        return written

    def _write(self, job: PrepareJob, result: dict | None, error: str | None) -> int:
        if error is not None:
            self.failed[job.entry] = error
            return 0
        frames = np.ascontiguousarray(result["frames"])
        self.file.write(frames.tobytes())
        k, h, w = (int(s) for s in frames.shape[:3])
        self.videos.append(
            {
                "entry": job.entry,
                "line": job.line,
                "offset": self.offset,
                "count": k,
                "height": h,
                "width": w,
                "num_frames": int(result["num_frames"]),
                "source_size": [int(s) for s in result["source_size"]],
                "indices": [int(i) for i in result["indices"]],
            }
        )
        self.offset += frames.nbytes
        return frames.nbytes

    def finish(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.final)
        write_json_atomic(self.table, {"bytes": self.offset, "videos": self.videos, "failed": self.failed})

    def abandon(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


def _load_shard_table(folder: Path, k: int) -> dict | None:
    import json

    path = folder / f"shard_{k:05d}.json"
    if not path.is_file() or not (folder / f"shard_{k:05d}.u8").is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _write_split_table(folder: Path, tables: list[dict]) -> dict[str, Any]:
    """Gather the shard tables of a split into ``table.npz`` (atomically); returns the split's summary."""
    rows = [(k, v) for k, t in enumerate(tables) for v in t["videos"]]
    failed = {e: r for t in tables for e, r in t["failed"].items()}
    counts = np.array([v["count"] for _, v in rows], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    arrays = {
        "entries": np.array([v["entry"] for _, v in rows], dtype=str),
        "shard": np.array([k for k, _ in rows], dtype=np.int32),
        "offset": np.array([v["offset"] for _, v in rows], dtype=np.int64),
        "count": counts.astype(np.int32),
        "height": np.array([v["height"] for _, v in rows], dtype=np.int32),
        "width": np.array([v["width"] for _, v in rows], dtype=np.int32),
        "num_frames": np.array([v["num_frames"] for _, v in rows], dtype=np.int64),
        "src_height": np.array([v["source_size"][0] for _, v in rows], dtype=np.int32),
        "src_width": np.array([v["source_size"][1] for _, v in rows], dtype=np.int32),
        "idx_start": starts,
        "indices": np.array([i for _, v in rows for i in v["indices"]], dtype=np.int64),
    }
    tmp = folder / f".{TABLE_FILE}.tmp{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, folder / TABLE_FILE)
    total = sum(t["bytes"] for t in tables)
    return {
        "videos": len(rows),
        "failed": failed,
        "shards": len(tables),
        "bytes": int(total),
        "frames": int(counts.sum()),
    }


def _store_jobs(bench: Benchmark, splits: Sequence[str], shard_videos: int, tracks_root: Path | None):
    jobs: dict[str, list[PrepareJob]] = {}
    for name in splits:
        records = bench.split(name).records
        jobs[name] = []
        for i, r in enumerate(records):
            job = PrepareJob(
                name, r.entry, r.line, str(r.path) if r.path is not None else None, i // shard_videos
            )
            if tracks_root is not None:
                from fsar.data.tracks import TrackSource

                try:
                    job.track_file = str(TrackSource(tracks_root, 1).path_for(r))
                except Exception as exc:
                    job.track_file = f"!{_one_line(exc)}"
            jobs[name].append(job)
    return jobs


def _check_build(out: Path, key: dict, layout: dict, splits: Sequence[str] = ()) -> dict:
    """Refuse a folder holding another store's build; returns the key to record (split files merged). Parts of a
    store being built (their manifests and ``splits`` folders) are allowed; :func:`fsar.parts.start_part` checks
    that they belong to the same store."""
    import json

    path = out / BUILD_FILE
    if not path.is_file():
        allowed = {ERRORS_FILE}
        if (out / PARTS_DIR).is_dir():
            allowed |= {PARTS_DIR, *splits}
        if out.exists() and any(p.name not in allowed and not is_lock_file(p.name) for p in out.iterdir()):
            raise ClipStoreError(
                f"{out}: the folder is not empty and holds no clip store being built; choose an empty --out"
            )
        return key
    have = json.loads(path.read_text(encoding="utf-8"))
    common = set(have["key"]["split_files"]) & set(key["split_files"])
    a = {**have["key"], "split_files": {n: h for n, h in have["key"]["split_files"].items() if n in common}}
    b = {**key, "split_files": {n: h for n, h in key["split_files"].items() if n in common}}
    diffs = diff_keys(a, b, "the store", "this prepare") + diff_keys(
        have["layout"], layout, "the store", "this prepare"
    )
    if diffs:
        raise ClipStoreError(
            f"{out}: holds a clip store prepared with other settings: " + "; ".join(diffs) + ". Prepare into "
            "another --out folder (or delete this one)."
        )
    return {**key, "split_files": {**have["key"]["split_files"], **key["split_files"]}}


def prepare_clip_store(
    bench: Benchmark,
    out: str | Path,
    *,
    splits: Sequence[str],
    num_frames: int,
    frame_sampler: str,
    resize_short: int | None,
    resize_to: Sequence[int] | None,
    tracks: str | Path | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    shard_videos: int = DEFAULT_SHARD_VIDEOS,
    workers: int = 1,
    retry_failed: bool = False,
    progress: bool = True,
    part: Part | None = None,
) -> PrepareReport:
    """Build (or finish) the clip store of ``bench``'s ``splits`` in ``out``; see the module docstring. With
    ``part`` (``--part I/N``), build only that part's shards (shard ``u`` of the store, counting the splits' shards
    in order, goes to part ``u mod N + 1``; :mod:`fsar.parts`); the last part to finish writes the split tables,
    ``errors.txt``, ``build.json`` and ``index.json`` (:func:`merge_clip_store_parts`)."""
    start = time.perf_counter()
    out = Path(out)
    if shard_videos < 1 or max_frames < 1:
        raise ValueError(f"shard_videos and max_frames must be >= 1, got {shard_videos} and {max_frames}")
    files = {n: bench.split_files[n] for n in splits}
    key = store_key(bench.name, files, num_frames, frame_sampler, resize_short, resize_to, tracks is not None)
    layout = {"shard_videos": int(shard_videos), "max_frames": int(max_frames)}
    recorded = _check_build(out, key, layout, splits)
    jobs = _store_jobs(bench, splits, shard_videos, Path(tracks) if tracks is not None else None)
    every = [
        (name, k) for name, js in jobs.items() for k in range((len(js) + shard_videos - 1) // shard_videos)
    ]
    shards = every
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_hash({"kind": STORE_KIND, "key": key, "layout": layout, "splits": _split_sizes(jobs)})
    if part is None:
        write_json_atomic(out / BUILD_FILE, {"key": recorded, "layout": layout}, indent=2)
    else:
        start_part(out, part, STORE_KIND, plan, len(every))
        shards = [s for u, s in enumerate(every) if part.owns(u)]
    settings = StoreSettings(
        num_frames, frame_sampler, resize_short, tuple(resize_to) if resize_to else None, int(max_frames)
    )
    report = PrepareReport(out, "clip store", part=part)

    todo: list[PrepareJob] = []
    writers: dict[tuple[str, int], _ShardWriter] = {}
    for name in jobs:
        (out / name).mkdir(exist_ok=True)
    for name, k in shards:
        folder = out / name
        members = jobs[name][k * shard_videos : (k + 1) * shard_videos]
        report.total += len(members)
        table = _load_shard_table(folder, k)
        if table is not None and not (retry_failed and table["failed"]):
            report.skipped += len(members)
            continue
        writers[(name, k)] = _ShardWriter(folder, k, members)
        todo.extend(members)

    bar = _progress(report.total, report.skipped, "prepare", progress)

    def on_result(job: PrepareJob, result: dict | None, error: str | None) -> None:
        writer = writers[(job.split, job.shard)]
        nbytes = writer.add(job, result, error)
        report.bytes += nbytes
        if error is None:
            report.done += 1
            report.frames += len(result["indices"])
        if writer.complete:
            writer.finish()
            del writers[(job.split, job.shard)]
        bar.update(1)

    decodable = []
    for job in todo:
        if job.path is None:
            on_result(job, None, _missing_reason(job))
        elif job.track_file is not None and job.track_file.startswith("!"):
            on_result(job, None, job.track_file[1:])
        else:
            decodable.append(job)
    try:
        run_jobs(decodable, store_video, settings, workers, on_result)
    finally:
        bar.close()
        for writer in writers.values():  # only after an interruption: unfinished shards are redone next time
            writer.abandon()
    if writers:
        raise ClipStoreError(f"{out}: {len(writers)} shard(s) unfinished; re-run the same command")

    order = list(jobs)
    by_entry = {(j.split, j.entry): j for js in jobs.values() for j in js}
    for name, k in shards:
        failed = _load_shard_table(out / name, k)["failed"]
        report.failed.extend((by_entry[(name, e)], r) for e, r in failed.items())
    report.failed.sort(key=lambda item: (order.index(item[0].split), item[0].line))
    if part is None:
        write_errors(out, report.failed)
        _finish_store(out, _split_sizes(jobs), recorded, layout)
    else:
        errors = [([order.index(j.split), j.line], _error_line(j, r)) for j, r in report.failed]
        data = {"key": key, "layout": layout, "splits": _split_sizes(jobs)}
        units = [_shard_unit(name, k) for name, k in shards]
        finish_part(out, part, STORE_KIND, plan, len(every), units, errors, data)
        report.merged = _merge_if_last(out, STORE_KIND, merge_clip_store_parts)
    report.seconds = time.perf_counter() - start
    return report


def _split_sizes(jobs: dict[str, list[PrepareJob]]) -> list[list]:
    return [[name, len(js)] for name, js in jobs.items()]


def _shard_unit(split: str, k: int) -> str:
    return f"{split}/shard_{k:05d}.u8"


def _error_line(job: PrepareJob, reason: str) -> str:
    return f"{job.split} line {job.line} {job.entry}: {reason}\n"


def _merge_if_last(out: Path, kind: str, merge) -> bool:
    """Merge the parts in ``out`` if every part is finished (this part was the last); False otherwise."""
    try:
        manifests = gather_parts(out, kind)
    except PartsError:  # others unfinished (the last one merges), or inconsistent (merge-parts says how)
        return False
    merge(out, manifests)
    return True


def _finish_store(out: Path, split_sizes: list[list], recorded: dict, layout: dict) -> None:
    """Gather the shard tables of every split into ``table.npz`` and write ``index.json`` (last)."""
    import json

    shard_videos = layout["shard_videos"]
    summary = {}
    for name, size in split_sizes:
        count = (size + shard_videos - 1) // shard_videos
        summary[name] = _write_split_table(
            out / name, [_load_shard_table(out / name, k) for k in range(count)]
        )
    index_path = out / INDEX_FILE
    earlier = json.loads(index_path.read_text(encoding="utf-8"))["splits"] if index_path.is_file() else {}
    write_json_atomic(
        index_path,
        {
            "format": "fsar clip store",
            "version": STORE_VERSION,
            "key": recorded,
            "layout": layout,
            "splits": {**earlier, **summary},
        },
        indent=1,
    )


def merge_clip_store_parts(out: str | Path, manifests: list[dict] | None = None) -> list[dict]:
    """Check the parts of a clip store in ``out`` (every shard there) and write what a single-machine prepare
    writes at its end: ``build.json``, the split tables, ``errors.txt`` and ``index.json``."""
    out = Path(out)
    manifests = manifests if manifests is not None else gather_parts(out, STORE_KIND)
    check_unit_files(out, manifests, set())
    data = manifests[0]["data"]
    names = [name for name, _ in data["splits"]]
    recorded = _check_build(out, data["key"], data["layout"], names)
    write_json_atomic(out / BUILD_FILE, {"key": recorded, "layout": data["layout"]}, indent=2)
    write_errors_file(out / ERRORS_FILE, merged_errors(manifests))
    _finish_store(out, data["splits"], recorded, data["layout"])
    return manifests


# ------------------------------------------------------------------------------------------------ frame folders
def frame_folder_output(bench: Benchmark, record, out: Path) -> Path:
    """Where a record's frame folder goes: its path relative to the videos root, without the file extension
    (``<class>/<video>/`` for class folders, ``<video_id>/`` for SSv2)."""
    source = Path(record.path)
    try:
        rel = source.relative_to(bench.root)
    except ValueError:
        rel = Path(str(record.class_name), str(record.video_id))
    if bench.spec.layout == VIDEO_IDS:
        rel = Path(str(record.video_id))
    return out / (rel if source.is_dir() else rel.with_suffix(""))


def prepare_frame_folders(
    bench: Benchmark,
    out: str | Path,
    *,
    splits: Sequence[str],
    quality: int = 95,
    workers: int = 1,
    progress: bool = True,
    part: Part | None = None,
) -> PrepareReport:
    """Write every video of ``bench``'s ``splits`` as a JPEG frame folder under ``out`` (see the module docstring).
    Use ``out`` as the videos root afterwards (``data.root``, ``--root``). With ``part`` (``--part I/N``), only
    that part's videos: video ``u`` (in split order, each once) goes to part ``u mod N + 1`` (:mod:`fsar.parts`);
    the last part to finish writes ``errors.txt`` (:func:`merge_frame_folder_parts`)."""
    start = time.perf_counter()
    out = Path(out)
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    out.mkdir(parents=True, exist_ok=True)
    jobs: list[PrepareJob] = []
    seen: set[str] = set()
    for name in splits:
        for r in bench.split(name).records:
            output = str(frame_folder_output(bench, r, out)) if r.path is not None else None
            if output is not None and output in seen:
                continue
            if output is not None:
                seen.add(output)
            jobs.append(
                PrepareJob(name, r.entry, r.line, str(r.path) if r.path is not None else None, output=output)
            )
    every = jobs
    if part is not None:
        names = [_frames_unit(out, j) for j in every]
        plan = plan_hash({"kind": FRAMES_KIND, "units": names, "quality": int(quality)})
        start_part(out, part, FRAMES_KIND, plan, len(every))
        jobs = [j for u, j in enumerate(every) if part.owns(u)]
    report = PrepareReport(out, "frame folders", total=len(jobs), part=part)
    todo = []
    for job in jobs:
        if job.path is None:
            report.failed.append((job, _missing_reason(job)))
        elif Path(job.output).is_dir():
            report.skipped += 1
        else:
            todo.append(job)
    bar = _progress(report.total, report.skipped + len(report.failed), "prepare", progress)

    def on_result(job: PrepareJob, result: dict | None, error: str | None) -> None:
        if error is not None:
            report.failed.append((job, error))
        else:
            report.done += 1
            report.frames += result["num_frames"]
            report.bytes += result["bytes"]
        bar.update(1)

    try:
        run_jobs(todo, frames_video, int(quality), workers, on_result)
    finally:
        bar.close()
    report.failed.sort(key=lambda item: (list(splits).index(item[0].split), item[0].line))
    if part is None:
        write_errors(out, report.failed)
    else:
        errors = [([list(splits).index(j.split), j.line], _error_line(j, r)) for j, r in report.failed]
        failed_units = sorted(_frames_unit(out, j) for j, _ in report.failed)
        units = [_frames_unit(out, j) for j in jobs]
        finish_part(out, part, FRAMES_KIND, plan, len(every), units, errors, {"failed_units": failed_units})
        report.merged = _merge_if_last(out, FRAMES_KIND, merge_frame_folder_parts)
    report.seconds = time.perf_counter() - start
    return report


def _frames_unit(out: Path, job: PrepareJob) -> str:
    """A frame-folder unit's name: its folder relative to ``out``, or ``<split> line N`` for a missing video."""
    if job.output is None:
        return f"{job.split} line {job.line}"
    return Path(job.output).relative_to(out).as_posix()


def merge_frame_folder_parts(out: str | Path, manifests: list[dict] | None = None) -> list[dict]:
    """Check the parts of a frame-folder prepare in ``out`` (every folder there) and write ``errors.txt``."""
    out = Path(out)
    manifests = manifests if manifests is not None else gather_parts(out, FRAMES_KIND)
    failed = {name for m in manifests for name in m["data"].get("failed_units", [])}
    check_unit_files(out, manifests, failed)
    write_errors_file(out / ERRORS_FILE, merged_errors(manifests))
    return manifests
