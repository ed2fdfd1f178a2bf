"""Keys of derived data on disk (clip store, feature cache): what the contents depend on, compared field by field.

A store written by one configuration and opened by another must be refused with the fields that differ, never
used silently. ``file_hash`` fingerprints a split file's bytes; ``diff_keys`` lists the differing fields of two
nested key dicts as ``a.b: <what> has X, <this> has Y``; ``write_json_atomic`` writes a file so that a reader
sees the old or the new content, never half of it.
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


def diff_keys(
    have: dict, want: dict, have_name: str = "cache", want_name: str = "this run", prefix: str = ""
):
    """Differing fields of two nested dicts, one readable line each (empty when equal)."""
    out: list[str] = []
    for k in sorted(set(have) | set(want)):
        a, b = have.get(k), want.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_keys(a, b, have_name, want_name, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {have_name} has {a!r}, {want_name} has {b!r}")
    return out


def write_json_atomic(path: str | Path, payload: Any, indent: int | None = None) -> Path:
    """Write JSON to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{uuid.uuid4().hex[:8]}")  # unique on shared storage
    tmp.write_text(json.dumps(payload, indent=indent), encoding="utf-8")
    os.replace(tmp, path)
    return path
