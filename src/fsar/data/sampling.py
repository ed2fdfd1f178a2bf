"""Frame samplers: which ``T`` frame indices of an ``n``-frame video make a clip.

Every sampler has the signature ``sampler(num_frames, T, train, rng) -> np.ndarray[int64]`` of length ``T`` and
draws its random choices from ``rng`` only (a ``numpy.random.Generator``), so a seed fixes the clip.

- ``uniform``: ``floor(linspace(0, n-1, T))`` at train and test. TATs (Kumar et al., ECCV 2024) samples this way
  so pixels line up with the point tracks (tats.md §2).
- ``ta2n``: the TRX / TA2N ``get_seq`` rule (Perrett et al., CVPR 2021; Li et al., AAAI 2022; ta2n.md §6).
  Train: ``excess = n-T``, ``pad = int(min(max_jitter, excess/2))``; ``pad < 1`` gives ``start=0, end=n-1``,
  otherwise ``start ~ U{0..pad}``, ``end ~ U{n-1-pad..n-1}``. Test: ``start=1, end=n-2``. Both: if
  ``end-start < T`` then ``start=0, end=n-1``. Indices ``floor(linspace(start, end, T))``.
  Golden values: ``n=100`` at test gives ``[1,14,28,42,56,70,84,98]``; ``n=10`` gives ``[0,1,2,3,5,6,7,9]``.
- ``segment``: TSN (Wang et al., ECCV 2016) segment sampling. Segment ``k`` is the frame range
  ``[floor(k*n/T), floor((k+1)*n/T))``; train takes a uniformly random frame of each segment, test its centre
  ``floor((k+0.5)*n/T)``.

**Which frames a sampler can pick.** Every built-in sampler has a ``support(num_frames, T)`` attribute: the sorted
set of frame indices it can return for an ``n``-frame video, at train (any ``rng``) or test. ``sampler_support``
reads it (all ``n`` frames for a sampler without one). The clip store (``fsar.data.clip_store``) stores exactly
these frames, so train-time jitter works from the store as from the video: ``uniform`` needs ``T`` frames, ``ta2n``
at most ``(2 * max_jitter + 2) * T``-ish (the union over every start/end choice, bounded independently of ``n``),
``segment`` every frame (its train draw is any frame of each segment).

**Short videos** (``n < T``), the one policy of every sampler, "repeat the last frame": all ``n`` frames in order,
then index ``n-1`` until the length is ``T`` (``apply_short_video_policy``). Such clips are flagged by the clip
loader (``LoadedClip.short``) and counted by ``data check``. ``n == 0`` is an error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fsar.registry import Registry

FrameSampler = Callable[[int, int, bool, np.random.Generator], np.ndarray]

FRAME_SAMPLERS: Registry[FrameSampler] = Registry("frame sampler")


def build_frame_sampler(name: str, **kwargs) -> FrameSampler:
    """The registered sampler ``name`` (``uniform``, ``ta2n``, ``segment``), configured by ``kwargs``."""
    return FRAME_SAMPLERS.create(name, **kwargs)


def keeps_every_frame(name: str) -> bool:
    """Whether the registered sampler ``name`` may pick any frame of a video (its ``support`` is every frame, as
    ``segment``'s, or it declares none), so that a clip store of it keeps every frame."""
    sampler = build_frame_sampler(name)
    return getattr(sampler, "keeps_every_frame", False) or getattr(sampler, "support", None) is None


def _check(num_frames: int, T: int) -> None:
    if int(T) < 1:
        raise ValueError(f"the number of frames per clip T must be >= 1, got {T}")
    if int(num_frames) < 1:
        raise ValueError(f"cannot sample frames from a video with {num_frames} frames; the video is empty")


def is_short(num_frames: int, T: int) -> bool:
    """True when the video has fewer frames than the clip length and the short-video policy applies."""
    return int(num_frames) < int(T)


def apply_short_video_policy(num_frames: int, T: int) -> np.ndarray:
    """Indices for a video shorter than the clip: ``0..n-1`` then ``n-1`` repeated up to length ``T``."""
    _check(num_frames, T)
    if num_frames >= T:
        raise ValueError(f"the short-video policy is for n < T; got n={num_frames}, T={T}")
    return np.minimum(np.arange(T, dtype=np.int64), num_frames - 1)


def sampler_support(sampler: FrameSampler, num_frames: int, T: int) -> np.ndarray:
    """Sorted unique int64 indices that ``sampler`` can return for an ``num_frames``-frame video (train or test).

    Uses the sampler's ``support`` attribute; a sampler without one may pick any frame, so all are returned."""
    _check(num_frames, T)
    support = getattr(sampler, "support", None)
    if support is None:
        return np.arange(int(num_frames), dtype=np.int64)
    return np.unique(np.asarray(support(int(num_frames), int(T)), dtype=np.int64))


def linspace_indices(start: int, end: int, T: int) -> np.ndarray:
    """``floor(linspace(start, end, T))`` as int64."""
    return np.floor(np.linspace(start, end, T)).astype(np.int64)


@FRAME_SAMPLERS.register("uniform")
def uniform_sampler() -> FrameSampler:
    def sample(num_frames: int, T: int, train: bool, rng: np.random.Generator) -> np.ndarray:
        _check(num_frames, T)
        if is_short(num_frames, T):
            return apply_short_video_policy(num_frames, T)
        return linspace_indices(0, num_frames - 1, T)

    sample.support = lambda n, T: sample(n, T, False, None)  # deterministic: train == test
    return sample


@FRAME_SAMPLERS.register("ta2n")
def ta2n_sampler(max_jitter: int = 5) -> FrameSampler:
    if max_jitter < 0:
        raise ValueError(f"max_jitter must be >= 0, got {max_jitter}")

    def sample(num_frames: int, T: int, train: bool, rng: np.random.Generator) -> np.ndarray:
        _check(num_frames, T)
        n = int(num_frames)
        if is_short(n, T):
            return apply_short_video_policy(n, T)
        if train:
            pad = int(min(max_jitter, (n - T) / 2))
            if pad < 1:
                start, end = 0, n - 1
            else:
                start = int(rng.integers(0, pad, endpoint=True))
                end = int(rng.integers(n - 1 - pad, n - 1, endpoint=True))
        else:
            start, end = 1, n - 2
        if end - start < T:
            start, end = 0, n - 1
        return linspace_indices(start, end, T)

    def support(n: int, T: int) -> np.ndarray:
        if is_short(n, T):
            return apply_short_video_policy(n, T)
        pad = int(min(max_jitter, (n - T) / 2))
        ranges = [(0, n - 1), (1, n - 2)]  # the fallback and the test window
        if pad >= 1:
            ranges += [(s, e) for s in range(pad + 1) for e in range(n - 1 - pad, n)]
        parts = [linspace_indices(*(r if r[1] - r[0] >= T else (0, n - 1)), T) for r in ranges]
        return np.unique(np.concatenate(parts))

    sample.support = support
    return sample


@FRAME_SAMPLERS.register("segment")
def segment_sampler() -> FrameSampler:
    def sample(num_frames: int, T: int, train: bool, rng: np.random.Generator) -> np.ndarray:
        _check(num_frames, T)
        n = int(num_frames)
        if is_short(n, T):
            return apply_short_video_policy(n, T)
        k = np.arange(T)
        lo = (k * n) // T
        hi = ((k + 1) * n) // T  # hi > lo because n >= T
        if train:
            return rng.integers(lo, hi).astype(np.int64)
        return np.floor((k + 0.5) * n / T).astype(np.int64)

    def support(n: int, T: int) -> np.ndarray:
        return apply_short_video_policy(n, T) if is_short(n, T) else np.arange(n, dtype=np.int64)

    sample.support = support
    sample.keeps_every_frame = True  # support is every frame of the video (a short video's are all used too)
    return sample
