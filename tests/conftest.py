"""Shared pytest fixtures. Kept light: nothing heavy is imported at collection time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_splits_dir() -> Path:
    """The real split files: ``$FSAR_SHARED_SPLITS``, else ``<repo>/../shared/splits``."""
    env = os.environ.get("FSAR_SHARED_SPLITS")
    return Path(env) if env else (REPO_ROOT / ".." / "shared" / "splits").resolve()


@pytest.fixture(scope="session")
def shared_splits() -> Path:
    """Folder holding ``ta2n/`` and ``trx/`` split folders; skips the test when it is absent."""
    path = shared_splits_dir()
    if not path.is_dir():
        pytest.skip(f"shared split files not found at {path} (set FSAR_SHARED_SPLITS to the folder)")
    return path


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip, with a reason, on machines without a CUDA GPU (torch is imported only when such
    a test was collected)."""
    marked = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is false)")
    for item in marked:
        item.add_marker(skip)
