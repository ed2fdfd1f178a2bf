"""Seeded N-way K-shot episodes.

Episode ``i`` of a sampler is a pure function of ``(seed, i)``: it does not depend on which episodes were drawn
before, on the process, or on the number of workers. In a distributed run, rank ``r`` of ``w`` draws the episodes
``r, r + w, r + 2w, ...`` of the same stream, so ranks never duplicate an episode and together cover exactly the
episodes a single process would draw (the TATs original gave every rank the same episodes).

Support indices are class-major (all shots of episode class 0, then class 1, ...; label = position), queries are
shuffled. Episodes can be saved to and loaded from a JSON file, so a fixed set of 10,000 test episodes can be shared
by every method and run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fsar.errors import EpisodeError, FsarError

EPISODE_FILE_VERSION = 1


@dataclass(frozen=True)
class Episode:
    """One N-way K-shot episode over a split's videos.

    classes:       the split class labels of the episode's classes, in episode-label order.
    support:       video indices (into the split's records), class-major, ``way * shot`` of them.
    query:         video indices of the queries, shuffled.
    query_labels:  episode-local label (0..way-1) of each query.
    """

    index: int
    classes: tuple[int, ...]
    support: tuple[int, ...]
    query: tuple[int, ...]
    query_labels: tuple[int, ...]

    @property
    def way(self) -> int:
        return len(self.classes)

    @property
    def shot(self) -> int:
        return len(self.support) // len(self.classes)

    @property
    def support_labels(self) -> tuple[int, ...]:
        return tuple(c for c in range(self.way) for _ in range(self.shot))

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "classes": list(self.classes),
            "support": list(self.support),
            "query": list(self.query),
            "query_labels": list(self.query_labels),
        }

    @staticmethod
    def from_dict(d: dict) -> Episode:
        return Episode(
            index=int(d["index"]),
            classes=tuple(int(x) for x in d["classes"]),
            support=tuple(int(x) for x in d["support"]),
            query=tuple(int(x) for x in d["query"]),
            query_labels=tuple(int(x) for x in d["query_labels"]),
        )


def labels_fingerprint(labels: Sequence[int]) -> str:
    """A short hash of a split's label list, stored in episode files to detect a mismatched split."""
    return hashlib.sha256(np.asarray(labels, dtype=np.int64).tobytes()).hexdigest()[:16]


class EpisodeSampler:
    """N-way K-shot episodes over a list of per-video labels.

    Args:
        labels: class label of each video of the split (any integers).
        way, shot, queries: classes per episode, support videos per class, query videos per class.
        seed: the episode stream's seed.
        rank, world_size: this process's share of the stream (episode ``i`` of this sampler is global episode
            ``rank + i * world_size``).
    """

    def __init__(
        self,
        labels: Sequence[int],
        way: int,
        shot: int,
        queries: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if way < 1 or shot < 1 or queries < 0:
            raise ValueError(f"need way >= 1, shot >= 1, queries >= 0; got {way=}, {shot=}, {queries=}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size); got {rank=}, {world_size=}")
        self.labels = np.asarray(labels, dtype=np.int64)
        self.way, self.shot, self.queries = way, shot, queries
        self.seed, self.rank, self.world_size = int(seed), rank, world_size
        classes, inverse = np.unique(self.labels, return_inverse=True)
        self.class_labels = classes
        self.videos_by_class = [np.flatnonzero(inverse == c) for c in range(len(classes))]
        need = shot + queries
        eligible = [c for c, v in enumerate(self.videos_by_class) if len(v) >= need]
        self.eligible = np.asarray(eligible, dtype=np.int64)
        if len(self.eligible) < way:
            small = {int(classes[c]): len(v) for c, v in enumerate(self.videos_by_class) if len(v) < need}
            raise EpisodeError(
                f"a {way}-way {shot}-shot episode with {queries} queries per class needs {way} classes with at "
                f"least {need} videos each; only {len(self.eligible)} of {len(classes)} classes qualify "
                f"(too small: {small})"
            )

    def global_index(self, i: int) -> int:
        return self.rank + i * self.world_size

    def episode(self, i: int) -> Episode:
        """This sampler's ``i``-th episode (global episode ``rank + i * world_size``)."""
        return self.global_episode(self.global_index(i))

    def global_episode(self, g: int) -> Episode:
        """Global episode ``g`` of the stream: a pure function of ``(seed, g)``."""
        if g < 0:
            raise IndexError(f"episode index must be >= 0, got {g}")
        rng = np.random.default_rng([self.seed, g])
        return self._fill(g, rng, self._choose_classes(rng))

    def _choose_classes(self, rng: np.random.Generator) -> np.ndarray:
        """Positions (into ``videos_by_class``) of the episode's classes, in episode-label order."""
        return rng.choice(self.eligible, size=self.way, replace=False)

    def _fill(self, g: int, rng: np.random.Generator, chosen: np.ndarray) -> Episode:
        """Draw the support and query videos of the classes ``chosen``."""
        support: list[int] = []
        query: list[int] = []
        query_labels: list[int] = []
        for label, c in enumerate(chosen):
            videos = rng.choice(self.videos_by_class[c], size=self.shot + self.queries, replace=False)
            support.extend(int(v) for v in videos[: self.shot])
            query.extend(int(v) for v in videos[self.shot :])
            query_labels.extend([label] * self.queries)
        order = rng.permutation(len(query))
        return Episode(
            index=g,
            classes=tuple(int(self.class_labels[c]) for c in chosen),
            support=tuple(support),
            query=tuple(query[k] for k in order),
            query_labels=tuple(query_labels[k] for k in order),
        )

    def take(self, count: int, start: int = 0) -> list[Episode]:
        """This sampler's episodes ``start .. start + count - 1``."""
        return [self.episode(i) for i in range(start, start + count)]

    def __iter__(self) -> Iterator[Episode]:
        i = 0
        while True:
            yield self.episode(i)
            i += 1


class OrderEpisodeSampler(EpisodeSampler):
    """Episodes built to test temporal order: each ``way``-way episode holds ``pairs`` reversed-order twin pairs
    (two classes with the same motion primitives in opposite orders, so frame order alone tells them apart) and
    ``way - 2 * pairs`` other classes. Like :class:`EpisodeSampler`, episode ``i`` is a pure function of
    ``(seed, i)``; support and query layout are the same.

    ``twins``: split label -> the split label of its reversed-order twin (symmetric).
    """

    def __init__(
        self,
        labels: Sequence[int],
        twins: dict[int, int],
        way: int,
        shot: int,
        queries: int,
        seed: int,
        pairs: int = 2,
    ) -> None:
        super().__init__(labels, way, shot, queries, seed)
        if 2 * pairs > way:
            raise ValueError(f"{pairs} twin pairs do not fit in a {way}-way episode")
        bad = {a: b for a, b in twins.items() if twins.get(b) != a}
        if bad:
            raise EpisodeError(f"twin map is not symmetric for {bad}: each twin must name the other")
        eligible = {int(self.class_labels[c]) for c in self.eligible}
        self.pairs = pairs
        self.twin_pairs = sorted(
            {(min(a, b), max(a, b)) for a, b in twins.items() if a in eligible and b in eligible}
        )
        if len(self.twin_pairs) < pairs:
            raise EpisodeError(
                f"order episodes need {pairs} reversed-order twin pairs with at least {shot + queries} videos per "
                f"class; this split has {len(self.twin_pairs)}"
            )
        self._position = {int(label): c for c, label in enumerate(self.class_labels)}

    def global_episode(self, g: int) -> Episode:
        if g < 0:
            raise IndexError(f"episode index must be >= 0, got {g}")
        rng = np.random.default_rng([self.seed, g, 0x7E1A])  # a stream apart from the standard episodes'
        return self._fill(g, rng, self._choose_classes(rng))

    def _choose_classes(self, rng: np.random.Generator) -> np.ndarray:
        picked = rng.choice(len(self.twin_pairs), size=self.pairs, replace=False)
        classes = [self._position[label] for k in picked for label in self.twin_pairs[int(k)]]
        others = np.setdiff1d(self.eligible, classes)
        if len(others) < self.way - len(classes):
            raise EpisodeError(f"not enough other classes to fill a {self.way}-way order episode")
        classes += [int(c) for c in rng.choice(others, size=self.way - len(classes), replace=False)]
        return np.asarray(classes)[rng.permutation(self.way)]


def shard_episodes(episodes: Sequence[Episode], rank: int, world_size: int) -> list[Episode]:
    """Rank ``rank``'s disjoint share of a fixed episode list (every ``world_size``-th episode)."""
    return list(episodes[rank::world_size])


def save_episodes(
    path: str | Path, episodes: Sequence[Episode], *, labels: Sequence[int], meta: dict
) -> None:
    """Write episodes to a JSON file (atomically). ``meta`` records how they were drawn (benchmark, split, ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": EPISODE_FILE_VERSION,
        "meta": meta,
        "num_videos": len(labels),
        "labels_fingerprint": labels_fingerprint(labels),
        "episodes": [e.to_dict() for e in episodes],
    }
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, separators=(",", ":")))
    os.replace(tmp, path)


def load_episodes(path: str | Path, *, labels: Sequence[int] | None = None) -> tuple[list[Episode], dict]:
    """Read an episode file. With ``labels`` given, refuse a file drawn over a different split."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise FsarError(f"{path}: episode file not found") from None
    except json.JSONDecodeError as exc:
        raise FsarError(f"{path}: not a valid episode file ({exc})") from None
    if payload.get("format_version") != EPISODE_FILE_VERSION:
        raise FsarError(f"{path}: unsupported episode file version {payload.get('format_version')!r}")
    if labels is not None and payload["labels_fingerprint"] != labels_fingerprint(labels):
        raise FsarError(
            f"{path}: these episodes were drawn over a different split ({payload['num_videos']} videos, "
            f"fingerprint {payload['labels_fingerprint']}) than the one given ({len(labels)} videos, "
            f"fingerprint {labels_fingerprint(labels)}); regenerate the episode file for this split"
        )
    episodes = [Episode.from_dict(d) for d in payload["episodes"]]
    return episodes, payload.get("meta", {})
