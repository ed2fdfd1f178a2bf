"""The point-track file format now lives in :mod:`fsar.data.trackfile` (it is data read by the clip sources);
this module re-exports it so existing imports keep working."""

from fsar.data.trackfile import (
    FORMAT_VERSION,
    NORMALIZATIONS,
    SelectedTracks,
    TrackFile,
    canonical_json,
    normalize_tracks,
    uniform_rows,
)

__all__ = [
    "FORMAT_VERSION",
    "NORMALIZATIONS",
    "SelectedTracks",
    "TrackFile",
    "canonical_json",
    "normalize_tracks",
    "uniform_rows",
]
