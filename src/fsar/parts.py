"""Preprocessing split across machines: ``--part I/N`` for ``fsar track``, ``fsar data prepare`` and
``fsar extract-features``, and the merge that checks the parts and builds the one index training reads.

**The rule.** A command's work is a list of *units* in a fixed order, the same on every machine: one unit per video
for ``fsar track`` (its track file) and ``fsar data prepare --format frames`` (its frame folder), one unit per shard
for the clip store (``<split>/shard_NNNNN.u8``, ``--shard-videos`` consecutive videos of a split) and the feature
cache (``<split>_NNNN.safetensors``). Unit number ``u`` (0-based, in that order) belongs to part
``u mod N + 1``: round robin, so parts differ by at most one unit and neighbouring videos (often one class) are
spread over all parts. The order depends only on the command's inputs (the sorted videos folder, or the split files
in split order; splits in the order given), never on the machine or on what is already done, so a part re-run
after a crash owns exactly the units it owned before. Shards rather than videos for the two stores so that each
file is written by exactly one part and the merged store is byte for byte the one a single machine writes.

**Bookkeeping.** Each part writes only its own units and its own manifest ``OUT/.fsar-parts/part-I-of-N.json``
(atomically; ``"status": "running"`` when it starts, ``"complete"`` with its units, failures and what the index
needs when it ends). A part refuses to start next to manifests of another run (other videos, settings or N),
naming the file. Each part is resumable (finished units are kept and skipped) and safe beside the others on shared
storage: no file is written by two parts. Shared files (``index.json``, split tables, ``errors.txt``) are written by
the merge only.

**Merge.** When a part finishes it checks whether all N manifests are complete; if so it merges (the last part to
finish builds the index). ``fsar data merge-parts OUT`` does the same by hand (for any of the three commands) and
says which parts are missing, running or killed. The merge checks that the parts' units are disjoint, that they
cover the whole plan and that every finished unit's file is there; it is deterministic and idempotent, so two parts
finishing at once both write the same files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsar.errors import FsarError

PARTS_DIR = ".fsar-parts"
FORMAT = "fsar part"
PART_HELP = (
    "do only part I of N of the work (e.g. --part 2/8; unit u goes to part u mod N + 1) and write "
    f"OUT/{PARTS_DIR}/part-I-of-N.json; the last part to finish merges (or run `fsar data merge-parts OUT`)"
)


class PartsError(FsarError):
    """A bad ``--part`` value, parts of different runs in one folder, or parts that are incomplete or inconsistent."""


@dataclass(frozen=True)
class Part:
    """Part ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise PartsError(f"part {self.index}/{self.count}: need 1 <= I <= N")

    def owns(self, unit: int) -> bool:
        """True if unit number ``unit`` (0-based, in the plan's order) belongs to this part."""
        return unit % self.count == self.index - 1

    @property
    def tag(self) -> str:
        return f"part-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_part(text: str) -> Part:
    """``"I/N"`` (integers, ``1 <= I <= N``) to a :class:`Part`; anything else is an error naming the value."""
    index, sep, count = str(text).strip().partition("/")
    try:
        if not sep:
            raise ValueError
        part = Part(int(index), int(count))
    except (ValueError, PartsError):
        raise PartsError(
            f"--part {text!r}: expected I/N with whole numbers 1 <= I <= N, e.g. --part 1/8 ... --part 8/8 "
            "(in a Slurm array: --part $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT with --array=1-N)"
        ) from None
    return part


def part_argument(text: str) -> Part:
    """``type=`` for argparse: the error of :func:`parse_part` as a usage error."""
    try:
        return parse_part(text)
    except PartsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def plan_hash(plan: Any) -> str:
    """A short hash of a JSON-able description of the whole plan (units in order and the settings)."""
    text = json.dumps(plan, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def manifest_path(out: str | os.PathLike[str], part: Part) -> Path:
    return Path(out) / PARTS_DIR / f"{part.tag}.json"


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # unique across machines on shared storage
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def read_manifests(out: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every part manifest in ``out`` (sorted by part), each with its ``path``."""
    folder = Path(out) / PARTS_DIR
    found = []
    for path in sorted(folder.glob("part-*-of-*.json")) if folder.is_dir() else ():
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PartsError(
                f"{path}: unreadable part manifest ({exc}); delete it and re-run that part"
            ) from None
        if manifest.get("format") != FORMAT:
            raise PartsError(f"{path}: not an fsar part manifest; move it away")
        manifest["path"] = str(path)
        found.append(manifest)
    return sorted(found, key=lambda m: m["part"])


def start_part(out: str | os.PathLike[str], part: Part, kind: str, plan: str, units_total: int) -> None:
    """Refuse to start beside manifests of another run in ``out``; then record this part as running."""
    for m in read_manifests(out):
        if m["part"] == part.index and m["parts"] == part.count and m["kind"] == kind and m["plan"] == plan:
            continue
        if m["kind"] != kind or m["parts"] != part.count or m["plan"] != plan:
            what = (
                f"a {m['kind']} run"
                if m["kind"] != kind
                else f"{m['parts']} parts"
                if m["parts"] != part.count
                else "other videos or settings"
            )
            raise PartsError(
                f"{out}: holds part {m['part']}/{m['parts']} of another run ({what}; {m['path']}), not of this "
                f"{kind} run in {part.count} parts: run every part with the same command and N, use another "
                f"--out, or delete {Path(out) / PARTS_DIR} to start over"
            )
    _write_json(
        manifest_path(out, part),
        {
            "format": FORMAT,
            "kind": kind,
            "part": part.index,
            "parts": part.count,
            "plan": plan,
            "units_total": int(units_total),
            "status": "running",
            "host": socket.gethostname(),
            "pid": os.getpid(),
        },
    )


def finish_part(
    out: str | os.PathLike[str],
    part: Part,
    kind: str,
    plan: str,
    units_total: int,
    units: list[str],
    errors: list[tuple[list, str]],
    data: dict[str, Any] | None = None,
) -> Path:
    """Record this part as complete: its unit names, its failures (``(sort key, errors.txt line)``) and the
    command-specific ``data`` the merge needs."""
    path = manifest_path(out, part)
    _write_json(
        path,
        {
            "format": FORMAT,
            "kind": kind,
            "part": part.index,
            "parts": part.count,
            "plan": plan,
            "units_total": int(units_total),
            "status": "complete",
            "host": socket.gethostname(),
            "units": list(units),
            "errors": [[list(key), text] for key, text in errors],
            "data": data or {},
        },
    )
    return path


def gather_parts(out: str | os.PathLike[str], kind: str | None = None) -> list[dict[str, Any]]:
    """The N complete, consistent manifests of ``out`` (sorted by part), or a :class:`PartsError` saying which
    parts are missing, unfinished or inconsistent."""
    out = Path(out)
    manifests = read_manifests(out)
    if not manifests:
        raise PartsError(f"{out}: no part manifests ({PARTS_DIR}/part-I-of-N.json); nothing to merge")
    first = manifests[0]
    for m in manifests:
        for field in ("kind", "parts", "plan", "units_total"):
            if m[field] != first[field]:
                raise PartsError(
                    f"{out}: parts of different runs: {m['path']} has {field} {m[field]!r}, {first['path']} "
                    f"{first[field]!r}; delete the wrong ones and re-run them"
                )
    if kind is not None and first["kind"] != kind:
        raise PartsError(f"{out}: holds parts of a {first['kind']} run, not {kind}")
    n = first["parts"]
    have = {m["part"]: m for m in manifests}
    missing = [i for i in range(1, n + 1) if i not in have]
    running = [i for i in range(1, n + 1) if i in have and have[i]["status"] != "complete"]
    if missing or running:
        said = []
        if running:
            said.append(
                f"part(s) {', '.join(f'{i}/{n}' for i in running)} started but not finished (still running, or "
                "killed: re-run them, finished work is kept)"
            )
        if missing:
            said.append(f"part(s) {', '.join(f'{i}/{n}' for i in missing)} not started")
        raise PartsError(f"{out}: {'; '.join(said)}; then run `fsar data merge-parts {out}`")
    seen: dict[str, int] = {}
    for m in manifests:
        for name in m["units"]:
            if name in seen:
                raise PartsError(
                    f"{out}: unit {name} is claimed by parts {seen[name]} and {m['part']} of {n}"
                )
            seen[name] = m["part"]
    if len(seen) != first["units_total"]:
        raise PartsError(
            f"{out}: the parts hold {len(seen)} of {first['units_total']} units; re-run the parts with the same "
            "command"
        )
    return manifests


def merged_errors(manifests: list[dict[str, Any]]) -> list[str]:
    """Every part's failure lines, in the order a single-machine run lists them."""
    rows = [(key, text) for m in manifests for key, text in m["errors"]]
    rows.sort(key=lambda row: row[0])
    return [text for _, text in rows]


def write_errors_file(path: str | os.PathLike[str], lines: list[str]) -> Path | None:
    """Write ``lines`` (each ending in a newline) to ``path`` atomically, or remove ``path`` when there are none."""
    path = Path(path)
    if not lines:
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text("".join(lines), encoding="utf-8")
    os.replace(tmp, path)
    return path


def check_unit_files(out: str | os.PathLike[str], manifests: list[dict[str, Any]], failed: set[str]) -> None:
    """Every unit a part finished (not in ``failed``) must exist under ``out``."""
    out = Path(out)
    for m in manifests:
        for name in m["units"]:
            if name not in failed and not (out / name).exists():
                raise PartsError(
                    f"{out / name}: missing, although part {m['part']}/{m['parts']} finished it; re-run "
                    f"--part {m['part']}/{m['parts']}"
                )
