"""Photometric RandAugment drawn once per video, as the TATs recipe uses it (Kumar et al., ECCV 2024; RandAugment:
Cubuk et al., CVPRW 2020).

The original applies the ``rand-m20-mstd0.5-inc1`` policy with every geometric op commented out, so only
photometric ops remain and point tracks stay valid (tats.md §2). Its seeding makes the choice all-or-none per video
and can differ on frame 0 (a quirk); here the whole draw — two ops, whether each applies (p = 0.5), their
magnitudes and signs — is made **once per video** from the caller's generator and applied to every frame.

Magnitudes follow the policy: mean 20 with std 0.5, clipped to the maximum level 10, so in practice level 10.

The ops are batched torch code on uint8 ``[..., H, W, 3]`` tensors, so the same functions run per clip in a loader
worker and over a whole episode on the model's device (``fsar.data.augment``). ``equalize`` is OpenCV's
``equalizeHist`` per frame and channel, ``sharpness`` blends with OpenCV's 3x3 ``blur`` (border reflect-101); the
enhance ops follow PIL's ``ImageEnhance`` (``b + factor * (a - b)`` in float32, clipped, truncated to uint8).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

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
GREY_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class AugmentDraw:
    ops: tuple[str, ...]
    applied: tuple[bool, ...]
    levels: tuple[float, ...]  # in [0, 1]
    signs: tuple[int, ...]

    def steps(self) -> list[tuple[str, float, int]]:
        """The ``(op, level, sign)`` actually applied, in order."""
        return [(o, lv, s) for o, a, lv, s in zip(self.ops, self.applied, self.levels, self.signs) if a]


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


def _blend(a: torch.Tensor, b: torch.Tensor, factor: float) -> torch.Tensor:
    """PIL ImageEnhance semantics: b + factor * (a - b) in float32, clipped, truncated to uint8."""
    a, b = a.to(torch.float32), b.to(torch.float32)
    return (b + factor * (a - b)).clamp_(0, 255).to(torch.uint8)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """Luma (ITU-R 601) of uint8 ``[..., 3]`` as float32 ``[...]``."""
    f = x.to(torch.float32)
    r, g, b = GREY_WEIGHTS
    return f[..., 0] * r + f[..., 1] * g + f[..., 2] * b


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """OpenCV ``equalizeHist`` on every ``[H, W]`` plane of uint8 ``[..., H, W, 3]``, all planes at once."""
    lead, (h, w) = x.shape[:-3], x.shape[-3:-1]
    planes = x.movedim(-1, -3).reshape(-1, h * w).to(torch.long)  # [M, H*W]
    hist = torch.zeros(planes.shape[0], 256, dtype=torch.long, device=x.device)
    hist.scatter_add_(1, planes, torch.ones_like(planes))
    first = (hist > 0).to(torch.uint8).argmax(dim=1, keepdim=True)  # lowest value present
    at_first = hist.gather(1, first)
    # lut[j] = round((cumsum[j] - hist[first]) * 255 / (total - hist[first])) for j >= first (float32, as OpenCV)
    denom = (h * w - at_first).to(torch.float32)
    scale = torch.full_like(denom, 255.0) / denom  # a true division (``255.0 / t`` multiplies by 1 / t)
    lut = ((hist.cumsum(1) - at_first).to(torch.float32) * scale).round_().clamp_(0, 255)
    constant = at_first == h * w  # a one-value plane stays as it is
    lut = torch.where(constant, first.to(torch.float32), lut).to(torch.uint8)
    out = lut.gather(1, planes)
    return out.reshape(*lead, 3, h, w).movedim(-3, -1)


def _box_blur(x: torch.Tensor) -> torch.Tensor:
    """OpenCV ``blur(frame, (3, 3))`` (border reflect-101, rounded to uint8) on uint8 ``[..., H, W, 3]``."""
    lead, (h, w) = x.shape[:-3], x.shape[-3:-1]
    f = x.reshape(-1, h, w, 3).permute(0, 3, 1, 2).to(torch.float32)
    f = F.pad(f, (1, 1, 1, 1), mode="reflect")  # torch's "reflect" is OpenCV's BORDER_REFLECT_101
    s = F.avg_pool2d(f, 3, stride=1, divisor_override=1)  # exact integer sums of 9 pixels
    out = (s / 9.0).round_().clamp_(0, 255).to(torch.uint8)
    return out.permute(0, 2, 3, 1).reshape(*lead, h, w, 3)


def apply_op(x: torch.Tensor, op: str, level: float, sign: int) -> torch.Tensor:
    """One op on uint8 ``[..., H, W, 3]`` (any leading dims: frames, clips); every plane gets the same parameters.
    Per-frame statistics (equalize's histogram, contrast's mean) are taken over each ``[H, W]`` frame."""
    if op == "equalize":
        return _equalize(x)
    if op == "invert":
        return 255 - x
    if op == "posterize":
        bits = max(1, 4 - int(level * 4))
        return x & ((0xFF << (8 - bits)) & 0xFF)
    if op == "solarize":
        threshold = 256 - int(level * 256)
        return torch.where(x >= threshold, 255 - x, x)
    if op == "solarize_add":
        add = int(level * 110)
        return torch.where(x < 128, (x.to(torch.int16) + add).clamp_(max=255).to(torch.uint8), x)
    factor = 1.0 + sign * level * 0.9
    if op == "color":
        return _blend(x, _grey(x).unsqueeze(-1).expand(x.shape), factor)
    if op == "contrast":
        mean = _grey(x).mean(dim=(-2, -1))  # per frame
        return _blend(x, mean[..., None, None, None].expand(x.shape), factor)
    if op == "brightness":
        return _blend(x, torch.zeros_like(x), factor)
    if op == "sharpness":
        return _blend(x, _box_blur(x), factor)
    raise ValueError(f"unknown RandAugment op {op!r}; choose one of {', '.join(OPS)}")


def apply_draws(x: torch.Tensor, draws: Sequence[AugmentDraw | None]) -> torch.Tensor:
    """Each clip of uint8 ``[B, T, H, W, 3]`` augmented with its own draw (``None``: left as is). Clips that apply
    the same op with the same parameters at the same step go through it together."""
    if len(draws) != x.shape[0]:
        raise ValueError(f"apply_draws: {x.shape[0]} clips but {len(draws)} draws")
    steps = [d.steps() if d is not None else [] for d in draws]
    out = x
    for k in range(max((len(s) for s in steps), default=0)):
        groups: dict[tuple[str, float, int], list[int]] = {}
        for i, s in enumerate(steps):
            if k < len(s):
                groups.setdefault(s[k], []).append(i)
        for (op, level, sign), members in groups.items():
            if out is x:
                out = x.clone()
            # python indices only: no index tensor to copy to the device (and no stream sync)
            if len(members) == len(draws):
                out = apply_op(out, op, level, sign)
                continue
            done = apply_op(torch.stack([out[i] for i in members]), op, level, sign)
            for j, i in enumerate(members):
                out[i] = done[j]
    return out


def rand_augment_video(
    frames: np.ndarray | torch.Tensor, rng: np.random.Generator
) -> np.ndarray | torch.Tensor:
    """One photometric RandAugment draw applied identically to all frames of a clip (uint8 [T, H, W, 3]); returns
    the input's type."""
    d = draw(rng)
    x = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    out = apply_draws(x.unsqueeze(0), [d])[0]
    return out.numpy() if isinstance(frames, np.ndarray) else out


def _apply_op(frames: np.ndarray, op: str, level: float, sign: int) -> np.ndarray:
    """``apply_op`` on numpy uint8 ``[T, H, W, 3]``."""
    return apply_op(torch.from_numpy(np.ascontiguousarray(frames)), op, level, sign).numpy()


class RandAugment:
    """The TATs policy as a loader's ``train_augment``: ``draw(rng)`` makes a clip's draw (the loader defers the
    work to ``fsar.data.augment.realize_clips``, in the worker or on the device); calling it draws and applies."""

    def draw(self, rng: np.random.Generator) -> AugmentDraw:
        return draw(rng)

    def __call__(
        self, frames: np.ndarray | torch.Tensor, rng: np.random.Generator
    ) -> np.ndarray | torch.Tensor:
        return rand_augment_video(frames, rng)

    def __repr__(self) -> str:
        return "RandAugment(rand-m20-mstd0.5-inc1, photometric ops only)"
