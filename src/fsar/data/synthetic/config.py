"""``SynthConfig``: every parameter of the synthetic few-shot action benchmark, with the ``default`` and ``tiny``
presets.

The benchmark is fsar's own (no paper): an ordered composition of motion primitives per class, rendered with
nuisance factors that mirror the two misalignments named by TA2N (Li et al., "TA2N: Two-Stage Action Alignment
Network for Few-shot Action Recognition", AAAI 2022): *duration* misalignment (the action occupies a random
sub-window of the clip) and *evolution* misalignment (a random monotone time warp inside that window).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from fsar.data.synthetic.primitives import PRIMITIVE_NAMES

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")


def scaled_split_counts(num_classes: int, proportions: tuple[int, int, int]) -> tuple[int, int, int]:
    """Split ``num_classes`` into train/val/test in the ratio of ``proportions`` (largest remainder, ties to the
    earlier split), e.g. ``(100, (64, 12, 24)) -> (64, 12, 24)`` and ``(30, (5, 5, 5)) -> (10, 10, 10)``."""
    if num_classes < 3:
        raise ValueError(f"num_classes must be at least 3 (one class per split), got {num_classes}")
    total = sum(proportions)
    if total <= 0 or min(proportions) < 0:
        raise ValueError(f"split proportions must be non-negative with a positive sum, got {proportions}")
    exact = [num_classes * p / total for p in proportions]
    counts = [math.floor(e) for e in exact]
    order = sorted(range(3), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: num_classes - sum(counts)]:
        counts[i] += 1
    # Every split needs at least one class.
    for i in range(3):
        while counts[i] == 0:
            donor = max(range(3), key=lambda j: counts[j])
            counts[donor] -= 1
            counts[i] += 1
    return counts[0], counts[1], counts[2]


@dataclass(frozen=True)
class SynthConfig:
    """All parameters of a synthetic benchmark. Lengths in pixels unless noted; ``*_range`` are (low, high)
    bounds of a uniform draw. A generated folder is a pure function of this config (and the generator version)."""

    seed: int = 0
    # Classes and splits.
    num_classes: int = 100
    split_counts: tuple[int, int, int] = (64, 12, 24)
    videos_per_class: int = 20
    primitives: tuple[str, ...] = PRIMITIVE_NAMES
    min_primitives: int = 2
    max_primitives: int = 3
    # Share of each split's classes that belong to a reversed-order twin pair (A-then-B and B-then-A).
    twin_fraction: float = 0.5
    # Frames.
    num_frames: int = 32
    height: int = 112
    width: int = 112
    fps: int = 12
    # Actor and ground-truth points.
    num_points: int = 64
    actor_radius_range: tuple[float, float] = (0.11, 0.16)  # fraction of min(H, W)
    primitive_strength_range: tuple[float, float] = (0.8, 1.2)  # per-video multiplier of each primitive
    # Timing: action start in [0, action_start_max] of the clip, duration a fraction of the clip.
    action_start_max: float = 0.3
    action_duration_range: tuple[float, float] = (0.5, 0.9)
    warp_strength_max: float = 0.7  # 0 = constant speed; mixes a random piecewise-linear warp with identity
    # Nuisances.
    max_distractors: int = 2
    distractor_radius_range: tuple[float, float] = (0.07, 0.12)  # fraction of min(H, W)
    camera_jitter: int = 2  # max absolute global shift per frame (integer pixels)
    bright_actor: bool = False  # actor always brighter than the background (hues stay random)
    noise_std_range: tuple[float, float] = (2.0, 6.0)  # Gaussian pixel noise, grey levels
    # Encoding.
    codec: str = "libx264"  # or "mpeg4"
    crf: int = 18  # libx264 quality (mpeg4 uses an equivalent fixed quantiser)

    def __post_init__(self) -> None:
        # JSON round trips give lists; store tuples so configs compare and hash consistently.
        for name in (
            "split_counts",
            "primitives",
            "actor_radius_range",
            "primitive_strength_range",
            "action_duration_range",
            "distractor_radius_range",
            "noise_std_range",
        ):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        def bad(key: str, msg: str) -> ValueError:
            return ValueError(f"SynthConfig.{key}: {msg}")

        if len(self.split_counts) != 3 or min(self.split_counts) < 1:
            raise bad("split_counts", f"need three counts >= 1 (train, val, test), got {self.split_counts}")
        if sum(self.split_counts) != self.num_classes:
            raise bad(
                "split_counts",
                f"{self.split_counts} sums to {sum(self.split_counts)} but num_classes is {self.num_classes}; "
                "use scaled_split_counts(num_classes, ...) to derive them",
            )
        if self.videos_per_class < 1:
            raise bad("videos_per_class", f"must be >= 1, got {self.videos_per_class}")
        unknown = [p for p in self.primitives if p not in PRIMITIVE_NAMES]
        if unknown or len(set(self.primitives)) != len(self.primitives):
            raise bad(
                "primitives",
                f"unknown or repeated names {unknown or list(self.primitives)}; valid: {list(PRIMITIVE_NAMES)}",
            )
        if not 1 <= self.min_primitives <= self.max_primitives <= len(self.primitives):
            raise bad(
                "min_primitives/max_primitives",
                f"need 1 <= min ({self.min_primitives}) <= max ({self.max_primitives}) <= number of primitives "
                f"({len(self.primitives)})",
            )
        if self.max_primitives < 2 and self.twin_fraction > 0:
            raise bad("twin_fraction", "reversed-order twins need max_primitives >= 2; set twin_fraction=0")
        if not 0.0 <= self.twin_fraction <= 1.0:
            raise bad("twin_fraction", f"must be in [0, 1], got {self.twin_fraction}")
        if self.num_frames < 2 * self.max_primitives:
            raise bad("num_frames", f"must be >= 2 * max_primitives = {2 * self.max_primitives}")
        for key in ("height", "width"):
            v = getattr(self, key)
            if v < 16 or v % 2:
                raise bad(key, f"must be an even number >= 16 (yuv420p video), got {v}")
        if self.fps < 1:
            raise bad("fps", f"must be >= 1, got {self.fps}")
        if self.num_points < 1:
            raise bad("num_points", f"must be >= 1, got {self.num_points}")
        for key in (
            "actor_radius_range",
            "primitive_strength_range",
            "action_duration_range",
            "distractor_radius_range",
            "noise_std_range",
        ):
            lo, hi = getattr(self, key)
            if not 0 <= lo <= hi:
                raise bad(key, f"need 0 <= low <= high, got ({lo}, {hi})")
        lo, hi = self.action_duration_range
        if not (lo > 0 and hi <= 1):
            raise bad("action_duration_range", f"must lie in (0, 1], got ({lo}, {hi})")
        if not 0 <= self.action_start_max < 1:
            raise bad("action_start_max", f"must be in [0, 1), got {self.action_start_max}")
        if not 0 <= self.warp_strength_max <= 1:
            raise bad("warp_strength_max", f"must be in [0, 1], got {self.warp_strength_max}")
        if self.max_distractors < 0 or self.camera_jitter < 0:
            raise bad("max_distractors/camera_jitter", "must be >= 0")
        if self.codec not in ("libx264", "mpeg4"):
            raise bad("codec", f"must be 'libx264' or 'mpeg4', got {self.codec!r}")
        if not 0 <= self.crf <= 51:
            raise bad("crf", f"must be in [0, 51], got {self.crf}")

    # ---------------------------------------------------------------- helpers
    @property
    def frame_size(self) -> tuple[int, int]:
        return self.height, self.width

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (tuples become lists)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SynthConfig keys {unknown}; valid keys: {sorted(known)}")
        return cls(**data)

    def with_num_classes(self, num_classes: int) -> SynthConfig:
        """This config with ``num_classes`` classes, split in the same train/val/test ratio."""
        return dataclasses.replace(
            self, num_classes=num_classes, split_counts=scaled_split_counts(num_classes, self.split_counts)
        )

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SynthConfig:
        """``default``: 100 classes (64/12/24), 30 videos each, 32 frames at 64x64, calibrated so that a small
        CNN learns motion on a laptop CPU in minutes: no camera jitter, little pixel noise, at most one
        distractor, a larger actor that is always brighter than the background (hues stay random, so single
        frames still say nothing about the class). ``benchmarks/synthetic_oracles.py`` checks that motion is
        required and order matters.
        ``cluttered``: the first version of the benchmark: 20 videos per class, 32 frames at 112x112, camera
        jitter, pixel noise, up to two distractors, actors of any contrast. Harder; nothing learns it quickly.
        ``tiny``: 15 classes (5/5/5, enough for 5-way episodes in every split), 6 videos each, 16 frames at 64x64.
        ``overrides`` replace fields (e.g. ``seed=3``)."""
        if name == "default":
            base = cls(
                videos_per_class=30,
                height=64,
                width=64,
                actor_radius_range=(0.14, 0.2),
                max_distractors=1,
                camera_jitter=0,
                noise_std_range=(0.0, 2.0),
                bright_actor=True,
                # shake aliases at 8 sampled frames and a circle's velocity is ambiguous there: without them,
                # and with milder speed changes, DTW on true velocities tells >= 95% of test queries apart
                primitives=tuple(p for p in PRIMITIVE_NAMES if p not in ("shake", "circle")),
                warp_strength_max=0.5,
            )
        elif name == "cluttered":
            base = cls()
        elif name == "tiny":
            base = cls(
                num_classes=15,
                split_counts=(5, 5, 5),
                videos_per_class=6,
                num_frames=16,
                height=64,
                width=64,
                num_points=32,
            )
        else:
            raise ValueError(f"unknown synthetic preset {name!r}; choose 'default', 'cluttered' or 'tiny'")
        return dataclasses.replace(base, **overrides) if overrides else base
