"""Reversed-order twin classes: pairs of classes made of the same motions in opposite orders ("A then B" and
"B then A"), which only a model that uses temporal order can tell apart.

fsar's synthetic benchmark records its twins in ``meta.json`` (``"twins": {class: twin}``). For other benchmarks a
user may name such pairs in a JSON file of the same form (a flat ``{class: twin}`` mapping is accepted too), e.g.
Something-Something's "Pushing something from left to right" / "... from right to left". Evaluation then reports
accuracy on *twin queries* (queries whose twin class is in the episode) and on order episodes
(:class:`fsar.data.episodes.OrderEpisodeSampler`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from fsar.errors import FsarError


def read_twin_classes(path: str | Path) -> dict[str, str]:
    """``{class name: twin class name}`` from ``path`` (a synthetic ``meta.json`` or a flat JSON mapping).
    The mapping must be symmetric."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FsarError(f"{path}: twin-class file not found (data.twins)") from None
    except json.JSONDecodeError as exc:
        raise FsarError(f"{path}: not valid JSON ({exc})") from None
    twins = data.get("twins", data) if isinstance(data, dict) else None
    if not isinstance(twins, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in twins.items()
    ):
        raise FsarError(
            f"{path}: expected a JSON object {{class: twin class}} (or one under the key 'twins')"
        )
    asym = sorted(k for k, v in twins.items() if twins.get(v) != k)
    if asym:
        raise FsarError(f"{path}: twin classes must name each other; not so for {asym[:5]}")
    return dict(twins)


def twin_labels(twins: dict[str, str], classes: Sequence[str]) -> dict[int, int]:
    """Restrict ``twins`` to a split whose label ``i`` is ``classes[i]``: split label -> twin's split label (pairs
    with one class outside the split are left out, as they can never meet in an episode)."""
    label_of = {name: i for i, name in enumerate(classes)}
    return {label_of[a]: label_of[b] for a, b in twins.items() if a in label_of and b in label_of}
