"""Parsers for the split files of the few-shot action recognition benchmarks.

Text lists (ARN / CMN / OTAM splits as shipped by TRX and TA2N; ta2n.md §7). One ``class/video`` entry per line,
exactly one ``/`` per line, no header. Class names may contain spaces (Kinetics ``air drumming/-VtLx-mcPds_000012_000022``)
and brackets (TRX's SSv2-CMN ``Twisting (wringing) something wet until water comes out/88644``); in the TA2N SSv2 lists
the class is a token such as ``train24``. Files are named ``{train,val,test}listNN.txt`` where ``NN`` is the split
id (``03`` for ARN/CMN, ``07`` for TRX's OTAM lists). ``read_split_list`` is strict: a line without exactly one
``/``, an empty class or video name, a blank line before the end of the file, or a duplicated entry is a
``SplitFormatError`` naming the file and line numbers.

Whitespace policy. A line is taken exactly as written, apart from its line end (``\\n``, Windows ``\\r\\n`` or old
Mac ``\\r``) and a UTF-8 byte-order mark at the start of the file. Whitespace (spaces, tabs) before or after the
entry or around the ``/`` is an error naming the file and the line, not silently stripped: class and video names are
matched exactly against the files on disk, and trailing whitespace usually means a hand-edited list. Remove it,
e.g. with ``sed -i 's/[[:space:]]*$//' FILE`` for trailing whitespace. Spaces *inside* a name are kept (Kinetics'
``air drumming``). A line that is empty or holds only whitespace is blank: blank lines are accepted at the end of
the file only.

SSv2 JSON maps (``classInd.json`` of OTAM: per-split class ids; ``classInd_cmn.json`` of CMN: global ids 0-99):
a single dict ``{video_id: class_id}``; ``read_class_index_json``.

TATs annotation files (Kumar et al., ECCV 2024; tats.md §7), read into uniform ``AnnotationRecord``\\ s:
- JSON (SSv2 ``train_few_shot.json`` / ``test_few_shot.json``): a list of objects with ``"id"`` (the video id) and
  ``"label"`` (int or int-castable string); other keys are ignored. ``read_tats_json``.
- CSV with a header row, one of two layouts (``read_tats_csv``; a leading unnamed pandas index column is ignored):
  Kinetics-100 ``vid_base_path, split, feat_base_name, vid_id, label_id`` and UCF101/HMDB51
  ``split, video_name, label, vid_base_name``.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

from fsar.errors import DataLayoutError, SplitFormatError

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
_SPLIT_FILE = re.compile(r"^(train|val|test)list(\d+)\.txt$")


@dataclass(frozen=True)
class SplitEntry:
    """One line of a split list: ``class_name/video`` at (1-based) ``line``."""

    class_name: str
    video: str
    line: int


@dataclass(frozen=True)
class AnnotationRecord:
    """One video of a TATs annotation file.

    ``label`` is an int when the file gives an integer (JSON ``label``, CSV ``label_id``, a numeric CSV ``label``),
    else the class name as written. ``line`` is the 1-based line of a CSV row, or the 1-based position of a JSON
    list entry. Paths are as written in the file (relative to the dataset root), or None when the layout has none.
    """

    video_id: str
    label: int | str
    split: str | None
    video_path: str | None
    track_path: str | None
    line: int


def _read_text(path: Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise SplitFormatError(f"{path}: split file not found; check the splits folder")
    try:
        return path.read_text(encoding="utf-8-sig")  # a UTF-8 byte-order mark is dropped
    except UnicodeDecodeError as exc:
        raise SplitFormatError(f"{path}: not UTF-8 text ({exc}); re-save the file as UTF-8") from None


def read_split_list(path: str | Path) -> list[SplitEntry]:
    """Entries of a ``class/video`` split list, in file order (see the module docstring for the rules)."""
    path = Path(path)
    lines = _read_text(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    entries: list[SplitEntry] = []
    blank: list[int] = []
    seen: dict[str, list[int]] = {}
    for number, raw in enumerate(lines, start=1):
        text = raw[:-1] if raw.endswith("\r") else raw
        if text.strip() == "":
            blank.append(number)
            continue
        if blank:
            raise SplitFormatError(
                f"{path}: line {blank[0]}: blank line inside the list; remove it (blank lines are allowed only "
                "at the end)"
            )
        if text.count("/") != 1:
            raise SplitFormatError(
                f"{path}: line {number}: expected `class/video` with exactly one '/', got {text!r}"
            )
        class_name, video = text.split("/")
        if not class_name or not video:
            raise SplitFormatError(f"{path}: line {number}: empty class or video name in {text!r}")
        if text != text.strip() or class_name != class_name.strip() or video != video.strip():
            trailing = text != text.rstrip() and text.lstrip() == text and class_name == class_name.strip()
            fix = f" (for trailing whitespace: sed -i 's/[[:space:]]*$//' {path})" if trailing else ""
            raise SplitFormatError(
                f"{path}: line {number}: leading or trailing whitespace around the class or video name in {text!r}; "
                f"names are matched exactly, so remove it{fix}"
            )
        seen.setdefault(text, []).append(number)
        entries.append(SplitEntry(class_name, video, number))
    duplicates = {k: v for k, v in seen.items() if len(v) > 1}
    if duplicates:
        shown = "; ".join(
            f"{k!r} on lines {', '.join(map(str, v))}" for k, v in list(duplicates.items())[:10]
        )
        more = f" (and {len(duplicates) - 10} more)" if len(duplicates) > 10 else ""
        raise SplitFormatError(f"{path}: duplicated entries: {shown}{more}; each video must be listed once")
    if not entries:
        raise SplitFormatError(f"{path}: the split list has no entries")
    return entries


def find_split_files(splits_dir: str | Path, split_id: str | int | None = None) -> dict[str, Path]:
    """``{"train": ..., "val": ..., "test": ...}`` (those present) for the ``{split}listNN.txt`` files of one id.

    ``split_id`` (``"03"``, ``3``) picks ``NN``; without it the folder must hold exactly one id.
    """
    splits_dir = Path(splits_dir)
    if not splits_dir.is_dir():
        raise DataLayoutError(
            f"{splits_dir}: splits folder not found; pass the folder holding trainlistNN.txt etc."
        )
    by_id: dict[str, dict[str, Path]] = {}
    for entry in splits_dir.iterdir():
        m = _SPLIT_FILE.match(entry.name)
        if m and entry.is_file():
            by_id.setdefault(m.group(2), {})[m.group(1)] = entry
    if not by_id:
        raise DataLayoutError(
            f"{splits_dir}: no split files named trainlistNN.txt / vallistNN.txt / testlistNN.txt found"
        )
    ids = sorted(by_id, key=lambda s: (int(s), s))
    if split_id is None:
        if len(ids) > 1:
            raise DataLayoutError(
                f"{splits_dir}: split files with several ids ({', '.join(ids)}); choose one with split_id / --split-id"
            )
        chosen = ids[0]
    else:
        wanted = str(split_id).strip()
        matches = [i for i in ids if i == wanted or (wanted.isdigit() and int(i) == int(wanted))]
        if len(matches) != 1:
            raise DataLayoutError(
                f"{splits_dir}: no split files with id {wanted!r}; ids found: {', '.join(ids)}"
                if not matches
                else f"{splits_dir}: split id {wanted!r} matches several file sets ({', '.join(matches)}); "
                "give the exact id"
            )
        chosen = matches[0]
    return {name: by_id[chosen][name] for name in SPLIT_NAMES if name in by_id[chosen]}


def _load_json(path: Path):
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SplitFormatError(
            f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg})"
        ) from None


def read_class_index_json(path: str | Path) -> dict[str, int]:
    """An SSv2 ``classInd*.json`` map ``{video_id: class_id}`` (ids must be JSON integers)."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict):
        raise SplitFormatError(
            f"{path}: expected a JSON object {{video_id: class_id}}, got {type(data).__name__}"
        )
    out: dict[str, int] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise SplitFormatError(f"{path}: key {key!r}: class id must be an integer, got {value!r}")
        out[key] = value
    if not out:
        raise SplitFormatError(f"{path}: the class index is empty")
    return out


def _int_or_none(value: str) -> int | None:
    text = str(value).strip()
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else None


def read_tats_json(path: str | Path) -> list[AnnotationRecord]:
    """Records of a TATs SSv2 JSON list ``[{"id": ..., "label": ...}, ...]``."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, list):
        raise SplitFormatError(
            f'{path}: expected a JSON list of {{"id", "label"}} objects, got {type(data).__name__}'
        )
    records: list[AnnotationRecord] = []
    seen: dict[str, int] = {}
    for position, item in enumerate(data, start=1):
        where = f"{path}: entry {position}"
        if not isinstance(item, dict) or "id" not in item or "label" not in item:
            raise SplitFormatError(f'{where}: expected an object with keys "id" and "label", got {item!r}')
        video_id = str(item["id"]).strip()
        raw = item["label"]
        label = raw if isinstance(raw, int) and not isinstance(raw, bool) else _int_or_none(raw)
        if label is None or not video_id:
            raise SplitFormatError(f'{where}: "id" must be non-empty and "label" an integer, got {item!r}')
        if video_id in seen:
            raise SplitFormatError(f"{where}: video id {video_id!r} already listed at entry {seen[video_id]}")
        seen[video_id] = position
        records.append(AnnotationRecord(video_id, label, None, None, None, position))
    if not records:
        raise SplitFormatError(f"{path}: the annotation list is empty")
    return records


TATS_CSV_LAYOUTS: dict[str, tuple[str, ...]] = {
    "kinetics": ("vid_base_path", "split", "feat_base_name", "vid_id", "label_id"),
    "ucf_hmdb": ("split", "video_name", "label", "vid_base_name"),
}


def read_tats_csv(path: str | Path) -> list[AnnotationRecord]:
    """Records of a TATs CSV (Kinetics-100 or UCF101/HMDB51 layout, detected from the header row)."""
    path = Path(path)
    rows = list(csv.reader(_read_text(path).splitlines()))
    if not rows:
        raise SplitFormatError(f"{path}: empty CSV; expected a header row")
    header = [h.strip() for h in rows[0]]
    skip_index = bool(header) and header[0] in ("", "Unnamed: 0")
    columns = header[1:] if skip_index else header
    layout = next((name for name, cols in TATS_CSV_LAYOUTS.items() if sorted(cols) == sorted(columns)), None)
    if layout is None:
        expected = " | ".join(", ".join(c) for c in TATS_CSV_LAYOUTS.values())
        raise SplitFormatError(
            f"{path}: line 1: unknown CSV header {header}; expected the columns {expected}"
        )
    col = {name: i + int(skip_index) for i, name in enumerate(columns)}
    records: list[AnnotationRecord] = []
    for number, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise SplitFormatError(f"{path}: line {number}: expected {len(header)} fields, got {len(row)}")
        get = {name: row[i].strip() for name, i in col.items()}
        if layout == "kinetics":
            label: int | str | None = _int_or_none(get["label_id"])
            if label is None:
                raise SplitFormatError(
                    f"{path}: line {number}: label_id must be an integer, got {get['label_id']!r}"
                )
            rec = AnnotationRecord(
                get["vid_id"], label, get["split"], get["vid_base_path"], get["feat_base_name"], number
            )
        else:
            number_label = _int_or_none(get["label"])
            label = number_label if number_label is not None else get["label"]
            rec = AnnotationRecord(get["video_name"], label, get["split"], get["vid_base_name"], None, number)
        if not rec.video_id or rec.label == "":
            raise SplitFormatError(f"{path}: line {number}: empty video id or label")
        records.append(rec)
    if not records:
        raise SplitFormatError(f"{path}: the CSV has a header but no rows")
    return records
