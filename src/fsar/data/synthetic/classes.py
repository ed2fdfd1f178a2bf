"""Class construction of the synthetic benchmark: each class is an ordered sequence of distinct motion primitives.

Classes are drawn per split, deterministically from the config's seed. In every split a share
``twin_fraction`` of the classes comes in **reversed-order twin** pairs (``left_then_rotcw`` and
``rotcw_then_left``): the same primitives in the opposite order, so only a model that uses temporal order can tell
them apart. A sequence's reverse is never used as an unrelated class elsewhere, so twins never straddle splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fsar.data.synthetic.config import SPLIT_NAMES, SynthConfig

# Stream id mixed into the class-construction seed, so it never coincides with a video's [seed, class, video].
_CLASS_STREAM = 0xC1A55


@dataclass(frozen=True)
class ClassDef:
    index: int  # global class index, 0..num_classes-1
    name: str  # e.g. c017_left_then_rotcw
    primitives: tuple[str, ...]
    split: str  # train | val | test
    twin: str | None = None  # name of the reversed-order twin class, if any

    def video_id(self, video_idx: int) -> str:
        """``c017_v003``: the class prefix and the video index."""
        return f"{self.name.split('_', 1)[0]}_v{video_idx:03d}"


def class_name(index: int, primitives: tuple[str, ...], width: int = 3) -> str:
    return f"c{index:0{width}d}_" + "_then_".join(primitives)


def twin_pairs_per_split(count: int, twin_fraction: float) -> int:
    """Number of twin pairs in a split of ``count`` classes: ``round(count * twin_fraction / 2)``, at least one
    pair when the fraction is positive and the split has two classes or more."""
    pairs = int(round(count * twin_fraction / 2))
    if twin_fraction > 0 and count >= 2:
        pairs = max(pairs, 1)
    return min(pairs, count // 2)


def build_classes(config: SynthConfig) -> list[ClassDef]:
    """All classes, ordered by global index: train classes first, then val, then test."""
    rng = np.random.default_rng([config.seed, _CLASS_STREAM])
    prims = list(config.primitives)
    used: set[tuple[str, ...]] = set()

    def draw(min_len: int) -> tuple[str, ...]:
        for _ in range(10_000):
            length = int(rng.integers(max(min_len, config.min_primitives), config.max_primitives + 1))
            order = rng.permutation(len(prims))[:length]
            seq = tuple(prims[i] for i in order)
            if seq not in used and seq[::-1] not in used:
                used.add(seq)
                used.add(seq[::-1])
                return seq
        raise ValueError(
            f"cannot draw {config.num_classes} distinct primitive sequences from {len(prims)} primitives with "
            f"lengths {config.min_primitives}..{config.max_primitives}; allow more primitives or longer sequences"
        )

    width = max(3, len(str(config.num_classes - 1)))
    classes: list[ClassDef] = []
    for split, count in zip(SPLIT_NAMES, config.split_counts):
        n_pairs = twin_pairs_per_split(count, config.twin_fraction)
        entries: list[tuple[tuple[str, ...], int | None]] = []  # (sequence, pair id)
        for pair in range(n_pairs):
            seq = draw(min_len=2)
            entries.append((seq, pair))
            entries.append((seq[::-1], pair))
        for _ in range(count - 2 * n_pairs):
            entries.append((draw(min_len=1), None))
        order = rng.permutation(len(entries))
        entries = [entries[i] for i in order]
        start = len(classes)
        names = [class_name(start + i, seq, width) for i, (seq, _) in enumerate(entries)]
        for i, (seq, pair) in enumerate(entries):
            twin = None
            if pair is not None:
                j = next(j for j, (_, p) in enumerate(entries) if p == pair and j != i)
                twin = names[j]
            classes.append(ClassDef(index=start + i, name=names[i], primitives=seq, split=split, twin=twin))
    return classes
