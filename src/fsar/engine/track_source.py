"""Moved to :mod:`fsar.data.tracks` (clips with point tracks are a clip source of ``fsar.data``); re-exported."""

from fsar.data.tracks import TrackSource

__all__ = ["TrackSource"]
