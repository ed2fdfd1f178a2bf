"""Named few-shot benchmarks: split files + a videos root -> labelled, resolved video records.

Benchmarks (split origins and statistics in field.md §5 and ta2n.md §7):

============== ============================================= ================ ====================== =======
name           split files                                   classes t/v/t    videos t/v/t           flip
============== ============================================= ================ ====================== =======
ssv2_full      OTAM (Cao et al., CVPR 2020), ``ssv2_OTAM``   64 / 12 / 24     67,013 / 1,926 / 2,857 never
ssv2_small     CMN (Zhu & Yang, ECCV 2018), ``ssv2_CMN``     64 / 12 / 24     6,400 / 1,200 / 2,400   never
kinetics100    CMN, ``kinetics_CMN``                         64 / 12 / 24     6,400 / 1,200 / 2,400   allowed
ucf101         ARN (Zhang et al., ECCV 2020), ``ucf_ARN``    70 / 10 / 21     9,154 / 1,421 / 2,745   allowed
hmdb51         ARN, ``hmdb_ARN``                             31 / 10 / 10     4,280 / 1,194 / 1,292   allowed
synthetic      ``fsar synth`` output                         any              any                     never
============== ============================================= ================ ====================== =======

(TA2N's OTAM train list has 77,500 lines and its Kinetics lists 6,387 / 1,200 / 2,397 because of unavailable
videos; ``data check`` reports differences from the table as notes, not errors.) SSv2 labels are
direction-sensitive ("pushing something from left to right"), so horizontal flipping is never allowed there.

On-disk layouts (``root`` is the videos root, ``splits_dir`` the folder holding ``{train,val,test}listNN.txt``):

- **Class folders** (``ucf101``, ``hmdb51``, ``kinetics100``, ``synthetic``): the split line ``class/video`` is found
  at ``<root>/<class>/<video>.<ext>`` (``ext`` one of mp4, webm, mkv, avi, mov) or as a frame folder
  ``<root>/<class>/<video>/`` holding ``.jpg``/``.jpeg``/``.png`` frames. The class folder may also be named with
  spaces replaced by ``_`` (Kinetics: ``air drumming`` -> ``air_drumming``).
- **Video ids** (``ssv2_full``, ``ssv2_small``): the split line ``train24/51958`` is found at ``<root>/51958.<ext>``
  (e.g. the official ``.webm``) or as a frame folder ``<root>/51958/``; the class is the token before the ``/``
  (``train24`` in TA2N's lists, the class text in TRX's SSv2-CMN lists).
- **synthetic**: ``fsar synth --out OUT`` writes ``OUT/videos/<class>/<video>.mp4`` and
  ``OUT/splits/{train,val,test}list01.txt``; ``load_synthetic(OUT)`` is
  ``load_benchmark("synthetic", root=OUT/"videos", splits_dir=OUT/"splits")``.

When both a frame folder and a video file exist for an entry, the frame folder is used; among files, the first
extension in the order above wins. Matching is exact (case-sensitive). A split line whose video is not on disk
gets ``path=None``; nothing is substituted (see ``fsar.data.check.require_complete``).

Labels: a record's ``label`` is the index of its class in ``SplitData.classes``, the classes **in order of first
appearance in the split file** (for the class-sorted ARN/CMN lists this is the file's class order; OTAM lists are
interleaved). Resolving paths costs one directory listing per class folder (or one of the root for SSv2), so the
77,500-line OTAM train list resolves in well under a second.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fsar.data.splits import SPLIT_NAMES, find_split_files, read_split_list
from fsar.data.video import VIDEO_EXTENSIONS
from fsar.errors import DataLayoutError
from fsar.registry import Registry

CLASS_FOLDERS = "class_folders"
VIDEO_IDS = "video_ids"


@dataclass(frozen=True)
class BenchmarkSpec:
    """What a benchmark is: its disk layout, its split origin and per-benchmark defaults."""

    name: str
    layout: str  # CLASS_FOLDERS or VIDEO_IDS
    split_origin: str
    flip_allowed: bool
    expected_classes: dict[str, int] | None = None  # per split, from the canonical split files
    expected_videos: dict[str, int] | None = None
    description: str = ""


BENCHMARKS: Registry[BenchmarkSpec] = Registry("benchmark")

_CMN = {"train": 64, "val": 12, "test": 24}


def _spec(spec: BenchmarkSpec) -> None:
    BENCHMARKS.register(spec.name)(lambda: spec)


_spec(
    BenchmarkSpec(
        "ssv2_full",
        VIDEO_IDS,
        "OTAM (Cao et al., CVPR 2020): splits/ssv2_OTAM",
        flip_allowed=False,
        expected_classes=_CMN,
        expected_videos={"train": 67_013, "val": 1_926, "test": 2_857},
        description="Something-Something v2, full few-shot split (TA2N's train list has 77,500 lines)",
    )
)
_spec(
    BenchmarkSpec(
        "ssv2_small",
        VIDEO_IDS,
        "CMN (Zhu & Yang, ECCV 2018): splits/ssv2_CMN",
        flip_allowed=False,
        expected_classes=_CMN,
        expected_videos={"train": 6_400, "val": 1_200, "test": 2_400},
        description="Something-Something v2, 100 videos per class",
    )
)
_spec(
    BenchmarkSpec(
        "kinetics100",
        CLASS_FOLDERS,
        "CMN (Zhu & Yang, ECCV 2018): splits/kinetics_CMN",
        flip_allowed=True,
        expected_classes=_CMN,
        expected_videos={"train": 6_400, "val": 1_200, "test": 2_400},
        description="Kinetics-100; the available videos drift over time (TA2N's lists: 6,387 / 1,200 / 2,397)",
    )
)
_spec(
    BenchmarkSpec(
        "ucf101",
        CLASS_FOLDERS,
        "ARN (Zhang et al., ECCV 2020): splits/ucf_ARN",
        flip_allowed=True,
        expected_classes={"train": 70, "val": 10, "test": 21},
        expected_videos={"train": 9_154, "val": 1_421, "test": 2_745},
        description="UCF101 few-shot split",
    )
)
_spec(
    BenchmarkSpec(
        "hmdb51",
        CLASS_FOLDERS,
        "ARN (Zhang et al., ECCV 2020): splits/hmdb_ARN",
        flip_allowed=True,
        expected_classes={"train": 31, "val": 10, "test": 10},
        expected_videos={"train": 4_280, "val": 1_194, "test": 1_292},
        description="HMDB51 few-shot split",
    )
)
_spec(
    BenchmarkSpec(
        "synthetic",
        CLASS_FOLDERS,
        "fsar synth",
        flip_allowed=False,  # "left" vs "right", cw vs ccw: flips change labels
        description="Procedurally generated clips from `fsar synth` (for tests, demos and CI)",
    )
)


def get_benchmark_spec(name: str) -> BenchmarkSpec:
    return BENCHMARKS.create(name)


@dataclass(frozen=True)
class VideoRecord:
    """One video of a split: ``label`` indexes ``SplitData.classes``; ``path`` is None when not on disk."""

    video_id: str
    class_name: str
    label: int
    path: Path | None
    line: int

    @property
    def entry(self) -> str:
        """The split-file entry, ``class/video``."""
        return f"{self.class_name}/{self.video_id}"


@dataclass
class SplitData:
    """The records of one split and its classes (in order of first appearance in ``split_file``)."""

    name: str
    records: list[VideoRecord]
    classes: list[str]
    split_file: Path | None = None
    benchmark: str = ""

    @property
    def missing(self) -> list[VideoRecord]:
        return [r for r in self.records if r.path is None]

    @property
    def present(self) -> list[VideoRecord]:
        return [r for r in self.records if r.path is not None]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def index_folder(folder: Path) -> dict[str, Path]:
    """One listing of ``folder``: name -> path for frame folders, then stem and full name -> path for video files
    (earlier extensions in ``VIDEO_EXTENSIONS`` first). A key never maps to a later candidate."""
    dirs: dict[str, Path] = {}
    files: list[tuple[int, str, str, Path]] = []
    priority = {ext: i for i, ext in enumerate(VIDEO_EXTENSIONS)}
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_dir():
                    dirs[entry.name] = Path(entry.path)
                else:
                    stem, ext = os.path.splitext(entry.name)
                    if ext.lower() in priority:
                        files.append((priority[ext.lower()], stem, entry.name, Path(entry.path)))
    except FileNotFoundError:
        return {}
    index = dict(dirs)
    for _, stem, name, path in sorted(files):
        index.setdefault(stem, path)
        index.setdefault(name, path)
    return index


class Benchmark:
    """A benchmark bound to a videos root and a split folder. ``split(name)`` parses and resolves lazily."""

    def __init__(
        self, spec: BenchmarkSpec, root: Path, splits_dir: Path, split_id: str | int | None = None
    ) -> None:
        self.spec = spec
        self.root = Path(root)
        self.splits_dir = Path(splits_dir)
        if not self.root.is_dir():
            raise DataLayoutError(
                f"{self.root}: videos root folder not found for benchmark {spec.name!r}; pass the folder holding "
                + (
                    "<class>/<video> entries"
                    if spec.layout == CLASS_FOLDERS
                    else "<video_id>.webm files or folders"
                )
            )
        self.split_files = find_split_files(self.splits_dir, split_id)
        self._splits: dict[str, SplitData] = {}
        self._folder_index: dict[Path, dict[str, Path]] = {}

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def available_splits(self) -> list[str]:
        return [s for s in SPLIT_NAMES if s in self.split_files]

    def __repr__(self) -> str:
        return f"Benchmark({self.spec.name!r}, root={str(self.root)!r}, splits={self.available_splits})"

    def _index(self, folder: Path) -> dict[str, Path]:
        if folder not in self._folder_index:
            self._folder_index[folder] = index_folder(folder)
        return self._folder_index[folder]

    def class_folder(self, class_name: str) -> Path | None:
        """``<root>/<class>``, else ``<root>/<class with spaces as _>``, else None."""
        for candidate in dict.fromkeys([class_name, class_name.replace(" ", "_")]):
            folder = self.root / candidate
            if folder.is_dir():
                return folder
        return None

    def split(self, name: str) -> SplitData:
        if name not in SPLIT_NAMES:
            raise ValueError(f"unknown split {name!r}; choose one of {', '.join(SPLIT_NAMES)}")
        if name not in self.split_files:
            raise DataLayoutError(
                f"{self.splits_dir}: no {name}listNN.txt for benchmark {self.spec.name!r}; "
                f"splits present: {', '.join(self.available_splits) or 'none'}"
            )
        if name not in self._splits:
            self._splits[name] = self._load_split(name)
        return self._splits[name]

    def _load_split(self, name: str) -> SplitData:
        split_file = self.split_files[name]
        entries = read_split_list(split_file)
        classes = list(dict.fromkeys(e.class_name for e in entries))
        label_of = {c: i for i, c in enumerate(classes)}
        if self.spec.layout == VIDEO_IDS:
            index = self._index(self.root)
            folders = dict.fromkeys(classes, index)
        else:
            folders = {}
            for c in classes:
                folder = self.class_folder(c)
                folders[c] = self._index(folder) if folder is not None else {}
        records = [
            VideoRecord(
                e.video, e.class_name, label_of[e.class_name], folders[e.class_name].get(e.video), e.line
            )
            for e in entries
        ]
        return SplitData(name, records, classes, split_file, self.spec.name)


def load_benchmark(
    name: str, root: str | Path, splits_dir: str | Path, split_id: str | int | None = None
) -> Benchmark:
    """The benchmark ``name`` (see ``BENCHMARKS.names()``) over videos ``root`` and split files ``splits_dir``."""
    return Benchmark(get_benchmark_spec(name), Path(root), Path(splits_dir), split_id)


def load_synthetic(out_dir: str | Path) -> Benchmark:
    """The benchmark written by ``fsar synth --out out_dir``."""
    out_dir = Path(out_dir)
    return load_benchmark("synthetic", root=out_dir / "videos", splits_dir=out_dir / "splits")
