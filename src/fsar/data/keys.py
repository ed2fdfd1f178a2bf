"""Keys of derived data on disk (clip store, feature cache): what the contents depend on, compared field by field.

A store written by one configuration and opened by another must be refused with the fields that differ, never
used silently. ``file_hash`` fingerprints a split file's bytes; ``diff_keys`` lists the differing fields of two
nested key dicts as ``a.b: <what> has X, <this> has Y`` (``changed_keys`` gives them as tuples, e.g. for a
resumed training run's config); ``write_json_atomic`` writes a file so that a reader sees the old or the new
content, never half of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any


def file_hash(path: str | Path) -> str:
    """A short SHA-256 of a file's bytes (split files: any edit, even whitespace, changes it)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def changed_keys(have: dict, want: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """The differing fields of two nested dicts as ``(dotted key, have's value, want's value)``, sorted by key; a
    key missing on one side has the value None there."""
    out: list[tuple[str, Any, Any]] = []
    for k in sorted(set(have) | set(want)):
        a, b = have.get(k), want.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append((f"{prefix}{k}", a, b))
    return out


def diff_keys(
    have: dict, want: dict, have_name: str = "cache", want_name: str = "this run", prefix: str = ""
):
    """Differing fields of two nested dicts, one readable line each (empty when equal)."""
    return [
        f"{k}: {have_name} has {a!r}, {want_name} has {b!r}" for k, a, b in changed_keys(have, want, prefix)
    ]


def write_json_atomic(path: str | Path, payload: Any, indent: int | None = None) -> Path:
    """Write JSON to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{uuid.uuid4().hex[:8]}")  # unique on shared storage
    tmp.write_text(json.dumps(payload, indent=indent), encoding="utf-8")
    os.replace(tmp, path)
    return path
