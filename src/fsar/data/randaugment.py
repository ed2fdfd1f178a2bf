"""Photometric RandAugment drawn once per video, as the TATs recipe uses it (Kumar et al., ECCV 2024; RandAugment:
Cubuk et al., CVPRW 2020).

The original applies the ``rand-m20-mstd0.5-inc1`` policy with every geometric op commented out, so only
photometric ops remain and point tracks stay valid (tats.md §2). Its seeding makes the choice all-or-none per video
and can differ on frame 0 (a quirk); here the whole draw — two ops, whether each applies (p = 0.5), their
magnitudes and signs — is made **once per video** from the caller's generator and applied to every frame.

Magnitudes follow the policy: mean 20 with std 0.5, clipped to the maximum level 10, so in practice level 10.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

OPS = (
    "equalize",
    "invert",
    "posterize",
    "solarize",
    "solarize_add",
    "color",
    "contrast",
    "brightness",
    "sharpness",
)
MAX_LEVEL = 10.0


@dataclass(frozen=True)
class AugmentDraw:
    ops: tuple[str, ...]
    applied: tuple[bool, ...]
    levels: tuple[float, ...]  # in [0, 1]
    signs: tuple[int, ...]


def draw(
    rng: np.random.Generator,
    num_ops: int = 2,
    magnitude: float = 20.0,
    magnitude_std: float = 0.5,
    p: float = 0.5,
) -> AugmentDraw:
    ops = tuple(str(o) for o in rng.choice(OPS, size=num_ops, replace=True))
    applied = tuple(bool(x) for x in rng.random(num_ops) < p)
    levels = tuple(
        float(np.clip(rng.normal(magnitude, magnitude_std), 0, MAX_LEVEL) / MAX_LEVEL) for _ in ops
    )
    signs = tuple(int(s) for s in rng.choice([-1, 1], size=num_ops))
    return AugmentDraw(ops, applied, levels, signs)


def _blend(a: np.ndarray, b: np.ndarray, factor: float) -> np.ndarray:
    """PIL ImageEnhance semantics: b + factor * (a - b), clipped to uint8."""
    return np.clip(
        b.astype(np.float32) + factor * (a.astype(np.float32) - b.astype(np.float32)), 0, 255
    ).astype(np.uint8)


def _apply_op(frames: np.ndarray, op: str, level: float, sign: int) -> np.ndarray:
    """``frames`` uint8 [T, H, W, 3]; the same op and parameters on every frame."""
    if op == "equalize":
        out = np.empty_like(frames)
        for t in range(frames.shape[0]):
            for c in range(3):
                out[t, :, :, c] = cv2.equalizeHist(np.ascontiguousarray(frames[t, :, :, c]))
        return out
    if op == "invert":
        return 255 - frames
    if op == "posterize":
        bits = max(1, 4 - int(level * 4))
        mask = np.uint8((0xFF << (8 - bits)) & 0xFF)
        return frames & mask
    if op == "solarize":
        threshold = 256 - int(level * 256)
        return np.where(frames >= threshold, 255 - frames, frames).astype(np.uint8)
    if op == "solarize_add":
        add = int(level * 110)
        return np.where(frames < 128, np.minimum(frames.astype(np.int32) + add, 255), frames).astype(np.uint8)
    factor = 1.0 + sign * level * 0.9
    if op == "color":
        grey = (frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
        return _blend(frames, np.repeat(grey, 3, axis=-1), factor)
    if op == "contrast":
        grey = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        mean = grey.reshape(frames.shape[0], -1).mean(axis=1).reshape(-1, 1, 1, 1)
        return _blend(frames, np.broadcast_to(mean, frames.shape), factor)
    if op == "brightness":
        return _blend(frames, np.zeros_like(frames), factor)
    if op == "sharpness":
        smooth = np.stack([cv2.blur(f, (3, 3)) for f in frames])
        return _blend(frames, smooth, factor)
    raise ValueError(f"unknown RandAugment op {op!r}")


def rand_augment_video(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One photometric RandAugment draw applied identically to all frames of a clip (uint8 [T, H, W, 3])."""
    d = draw(rng)
    out = np.asarray(frames)
    for op, applied, level, sign in zip(d.ops, d.applied, d.levels, d.signs):
        if applied:
            out = _apply_op(out, op, level, sign)
    return out
