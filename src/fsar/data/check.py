"""Manifest checks: which videos of a benchmark's splits are missing, unreadable or too short.

Kinetics-100 drifts as YouTube videos disappear (trx#10: 92 % obtainable; strm#26: whole classes missing), and the
original loaders skip or replace broken videos silently (field.md §3 C and G). ``check_benchmark`` makes the state of
a local copy explicit: for each split, the number of classes and videos and the **full** lists of

- missing videos (the split line names a video that is not under the root),
- unreadable videos (with the reason: corrupt file, empty frame folder, unreadable frame image, ...),
- videos shorter than ``T`` frames (they will be padded by repeating the last frame; see ``fsar.data.sampling``),

plus notes where class or video counts differ from the canonical split statistics (``BenchmarkSpec``).

With ``decode=True`` an encoded video is decoded completely (its exact frame count is needed anyway); a frame
folder is listed and the ``T`` frames of uniform sampling plus the last frame are read. With ``full=True``
(``fsar data check --full``) every frame of every video is read (``Video.verify``): every image of a frame folder
(decoded, and checked to be complete: OpenCV reads a truncated JPEG without an error), and every frame of an
encoded video converted to RGB with FFmpeg's error log watched (a corrupt frame that the decoder conceals is listed
too). With ``decode=False`` only existence is checked (fast), and neither unreadable nor short videos are looked
for.

A split whose list cannot be read (an empty list, a malformed line) is reported with the error and the report
fails; the other splits are still checked.

``require_complete`` is the training-side gate: missing videos are an error unless the user allows skipping them,
in which case the exact list of what was left out is written next to the run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fsar.data.benchmarks import Benchmark, SplitData, VideoRecord
from fsar.data.sampling import build_frame_sampler
from fsar.data.video import FrameFolderVideo, open_video
from fsar.errors import FsarError, MissingVideosError

MAX_LISTED_MISSING = 20


@dataclass
class VideoProblem:
    """One listed video: the split-file entry ``class/video``, its line, and what is wrong."""

    entry: str
    line: int
    path: str | None = None
    reason: str | None = None
    num_frames: int | None = None


@dataclass
class SplitCheck:
    split: str
    split_file: str
    num_classes: int
    num_videos: int
    expected_classes: int | None = None
    expected_videos: int | None = None
    missing: list[VideoProblem] = field(default_factory=list)
    unreadable: list[VideoProblem] = field(default_factory=list)
    short: list[VideoProblem] = field(default_factory=list)
    error: str | None = None  # the split file could not be read (then nothing else of the split is known)

    @property
    def num_present(self) -> int:
        return self.num_videos - len(self.missing)


@dataclass
class CheckReport:
    benchmark: str
    root: str
    splits_dir: str
    num_frames: int
    decode: bool
    splits: list[SplitCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    full: bool = False

    @property
    def ok(self) -> bool:
        """True when every split file reads and no video is missing or unreadable (short videos and count notes
        do not fail a check)."""
        return all(not s.missing and not s.unreadable and s.error is None for s in self.splits)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ok"] = self.ok
        for s, d in zip(self.splits, out["splits"]):
            d["num_present"] = s.num_present
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def _decoded_line(self) -> str:
        if not self.decode:
            return "no (existence only)"
        if self.full:
            return (
                f"yes, every frame of every video (--full; frame counts checked against T={self.num_frames})"
            )
        return f"yes (frame counts checked against T={self.num_frames})"

    def format(self) -> str:
        """A readable report: a table per split, then the full lists and the notes."""
        T = self.num_frames
        lines = [
            f"Benchmark {self.benchmark}",
            f"  videos root: {self.root}",
            f"  split files: {self.splits_dir}",
            f"  decoded:     {self._decoded_line()}",
            "",
        ]
        header = ["split", "classes", "videos", "present", "missing", "unreadable", f"short (<{T})"]
        rows = [
            [s.split, "error", "-", "-", "-", "-", "-"]
            if s.error is not None
            else [
                s.split,
                str(s.num_classes),
                str(s.num_videos),
                str(s.num_present),
                str(len(s.missing)),
                str(len(s.unreadable)) if self.decode else "-",
                str(len(s.short)) if self.decode else "-",
            ]
            for s in self.splits
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

        def fmt(row: list[str]) -> str:
            return "  ".join(
                c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(row, widths))
            )

        lines += [fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)]
        for s in self.splits:
            if s.error is not None:
                lines += ["", f"Split file problem, {s.split} ({s.split_file}; this split was not checked):"]
                lines += [f"  {s.error}"]
            if s.missing:
                lines += ["", f"Missing videos, {s.split} ({len(s.missing)}, split file {s.split_file}):"]
                lines += [f"  line {p.line}: {p.entry}" for p in s.missing]
            if s.unreadable:
                lines += ["", f"Unreadable videos, {s.split} ({len(s.unreadable)}):"]
                lines += [f"  line {p.line}: {p.entry} ({p.path}): {p.reason}" for p in s.unreadable]
            if s.short:
                lines += [
                    "",
                    f"Videos shorter than {T} frames, {s.split} ({len(s.short)}; the last frame is repeated):",
                ]
                lines += [f"  line {p.line}: {p.entry}: {p.num_frames} frames" for p in s.short]
        if self.notes:
            lines += ["", "Notes:"] + [f"  - {n}" for n in self.notes]
        n_missing = sum(len(s.missing) for s in self.splits)
        n_bad = sum(len(s.unreadable) for s in self.splits)
        n_split = sum(s.error is not None for s in self.splits)
        split_part = f", {n_split} unreadable split file{'s' if n_split != 1 else ''}" if n_split else ""
        lines += [
            "",
            "Result: OK"
            if self.ok
            else f"Result: PROBLEMS ({n_missing} missing, {n_bad} unreadable{split_part}). Fix the split files and "
            "the videos root, or train with data.allow_missing=true to skip missing videos (the skipped list is "
            "written to the run folder).",
        ]
        return "\n".join(lines)


def probe_video(path: Path, num_frames: int, full: bool = False) -> tuple[int | None, str | None]:
    """``(frame count, None)`` for a readable video, ``(None, reason)`` otherwise (see the module docstring)."""
    try:
        video = open_video(path)
        if full:
            return video.verify(), None
        n = video.num_frames
        if isinstance(video, FrameFolderVideo):
            idx = build_frame_sampler("uniform")(
                n, num_frames, False, np.random.default_rng(0)
            )  # no randomness
            video.frames(sorted({*idx.tolist(), n - 1}))
        return n, None
    except Exception as exc:  # a check reports every failure and carries on
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        where = Path(getattr(exc, "path", path))
        if where != Path(path) and where.is_relative_to(path):  # a frame image: name it
            reason = f"{where.relative_to(path)}: {reason}"
        return None, reason


def check_split(
    split: SplitData,
    num_frames: int,
    decode: bool,
    workers: int,
    expected: tuple[int | None, int | None],
    full: bool = False,
    progress=None,
) -> SplitCheck:
    """Check one split's videos. ``progress``: an object with ``update(n)`` (a tqdm bar), called per video."""
    result = SplitCheck(
        split.name,
        str(split.split_file),
        split.num_classes,
        len(split.records),
        expected_classes=expected[0],
        expected_videos=expected[1],
    )
    result.missing = [VideoProblem(r.entry, r.line) for r in split.missing]
    if not decode:
        return result
    present = split.present

    def probe(record: VideoRecord) -> tuple[int | None, str | None]:
        out = probe_video(record.path, num_frames, full)
        if progress is not None:
            progress.update(1)
        return out

    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            probes = list(pool.map(probe, present))
    else:
        probes = [probe(r) for r in present]
    for r, (n, reason) in zip(present, probes):
        if reason is not None:
            result.unreadable.append(VideoProblem(r.entry, r.line, str(r.path), reason))
        elif n < num_frames:
            result.short.append(VideoProblem(r.entry, r.line, str(r.path), num_frames=n))
    return result


def check_benchmark(
    benchmark: Benchmark,
    num_frames: int = 8,
    splits: Sequence[str] = ("train", "val", "test"),
    decode: bool = True,
    workers: int = 1,
    full: bool = False,
    progress: bool = False,
) -> CheckReport:
    """Check the listed splits of ``benchmark`` (those without a split file are noted and skipped; one whose file
    cannot be read is reported and the others are still checked). ``full``: read every frame of every video.
    ``progress``: a progress bar over the videos (on stderr, when it is a terminal)."""
    spec = benchmark.spec
    report = CheckReport(
        spec.name,
        str(benchmark.root),
        str(benchmark.splits_dir),
        int(num_frames),
        bool(decode),
        full=bool(full and decode),
    )
    loaded: dict[str, SplitData] = {}
    for name in splits:
        if name not in benchmark.split_files:
            report.notes.append(f"{name}: no {name}listNN.txt in {benchmark.splits_dir}; not checked")
            continue
        try:
            loaded[name] = benchmark.split(name)
        except FsarError as exc:  # e.g. an empty list: reported, and the other splits are still checked
            report.splits.append(SplitCheck(name, str(benchmark.split_files[name]), 0, 0, error=str(exc)))
    bar = None
    if progress and decode:
        from fsar.progress import progress_bar

        total = sum(len(d.present) for d in loaded.values())
        bar = progress_bar(total, "check" + (" --full" if full else ""), "videos")
    try:
        for name, data in loaded.items():
            exp_c = (spec.expected_classes or {}).get(name)
            exp_v = (spec.expected_videos or {}).get(name)
            result = check_split(
                data, num_frames, decode, max(1, int(workers)), (exp_c, exp_v), full=full, progress=bar
            )
            report.splits.append(result)
            if exp_c is not None and result.num_classes != exp_c:
                report.notes.append(
                    f"{name}: {result.num_classes} classes in the split file; the canonical {spec.name} split has {exp_c}"
                )
            if exp_v is not None and result.num_videos != exp_v:
                report.notes.append(
                    f"{name}: {result.num_videos} videos in the split file; the canonical {spec.name} split "
                    f"({spec.split_origin}) has {exp_v}"
                )
            if result.short:
                report.notes.append(
                    f"{name}: {len(result.short)} videos have fewer than {num_frames} frames; their clips repeat the last frame"
                )
    finally:
        if bar is not None:
            bar.close()
    order = {n: i for i, n in enumerate(splits)}
    report.splits.sort(key=lambda c: order[c.split])
    return report


def require_complete(
    split_data: SplitData, allow_missing: bool, report_path: Path | None = None
) -> list[VideoRecord]:
    """The split's records if none is missing. Otherwise raise ``MissingVideosError`` (listing up to 20 and the
    count), or, with ``allow_missing``, return the present records and write the ``class/video`` lines left out to
    ``report_path`` (one per line)."""
    missing = split_data.missing
    if not missing:
        return list(split_data.records)
    where = f"{split_data.benchmark} {split_data.name} split" + (
        f" ({split_data.split_file})" if split_data.split_file else ""
    )
    if not allow_missing:
        shown = "\n".join(f"  line {r.line}: {r.entry}" for r in missing[:MAX_LISTED_MISSING])
        more = (
            f"\n  ... and {len(missing) - MAX_LISTED_MISSING} more"
            if len(missing) > MAX_LISTED_MISSING
            else ""
        )
        raise MissingVideosError(
            f"{len(missing)} of {len(split_data.records)} videos of the {where} are missing from the videos root:\n"
            f"{shown}{more}\n"
            "Fix the videos root (run `fsar data check` for the full list), or allow skipping missing videos "
            "(the override `data.allow_missing=true`, e.g. `fsar train CONFIG data.allow_missing=true`); the skipped "
            "videos are then listed in the run folder."
        )
    if report_path is not None:
        report_path = Path(report_path)
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text("".join(f"{r.entry}\n" for r in missing), encoding="utf-8")
    return split_data.present
