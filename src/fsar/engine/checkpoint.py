"""Atomic, verified checkpoints.

A checkpoint is written to a temporary file in the same folder and renamed into place, so a crash (even kill -9)
leaves either the previous checkpoint or the new one, never a partial file under the real name. A sidecar
``<name>.sha256`` holds the file's hash; on load the hash is checked before anything is deserialised, so a
truncated or corrupted checkpoint is reported, never loaded half-way.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from fsar.errors import FsarError

CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model", "config")


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus the format version) atomically, with its sha256 in ``<path>.sha256``."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save({"format_version": CHECKPOINT_VERSION, **payload}, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp_hash = path.with_name(f".{path.name}.sha256.tmp{os.getpid()}")
    _fsync_write(tmp, data)
    _fsync_write(tmp_hash, f"{digest}  {path.name}\n".encode())
    # the hash goes in place first: a crash between the renames leaves a mismatch, which load reports
    os.replace(tmp_hash, path.with_name(path.name + ".sha256"))
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and verify a checkpoint; raise ``FsarError`` naming the file if it is missing, truncated or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise FsarError(f"{path}: checkpoint not found")
    data = path.read_bytes()
    hash_file = path.with_name(path.name + ".sha256")
    if hash_file.is_file():
        expected = hash_file.read_text().split()[0] if hash_file.read_text().strip() else ""
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise FsarError(
                f"{path}: checkpoint is corrupt or truncated (sha256 {actual[:12]}… does not match {hash_file.name}); "
                "it was not loaded. Use another checkpoint (e.g. best.pt) or restart the run."
            )
    try:
        payload = torch.load(io.BytesIO(data), map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated/corrupt files raise many different errors
        raise FsarError(
            f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc}); it may be truncated or corrupt"
        ) from None
    if not isinstance(payload, dict) or any(k not in payload for k in REQUIRED_KEYS):
        raise FsarError(f"{path}: not an fsar checkpoint (needs keys {', '.join(REQUIRED_KEYS)})")
    if payload["format_version"] > CHECKPOINT_VERSION:
        raise FsarError(
            f"{path}: checkpoint format {payload['format_version']} is newer than this fsar; upgrade fsar"
        )
    return payload


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
