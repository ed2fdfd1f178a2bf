"""Random textures of the synthetic benchmark: backgrounds (smoothed noise, stripes, checker) and the actor's
surface pattern (two-colour stripes in the actor's own frame plus an orientation marker, so rotation is visible).

All values are float32 RGB in grey levels [0, 255]; every random choice comes from the ``numpy.random.Generator``
passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BACKGROUND_KINDS: tuple[str, ...] = ("noise", "stripes", "checker")


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Noise in [0, 1] that varies over about ``cells`` cells across the image (bicubic upsampling)."""
    gh = max(2, int(round(cells * height / max(height, width))))
    gw = max(2, int(round(cells * width / max(height, width))))
    low = rng.random((gh, gw), dtype=np.float32)
    up = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    lo, hi = float(up.min()), float(up.max())
    return (up - lo) / max(hi - lo, 1e-6)


def random_background(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, str]:
    """A background ``[height, width, 3]`` and its kind (one of ``BACKGROUND_KINDS``)."""
    kind = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    size = float(min(height, width))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "noise":
        field = _smooth_noise(rng, height, width, int(rng.integers(4, 12)))
    else:
        angle = rng.uniform(0, np.pi)
        cycles = rng.uniform(2.0, 6.0)  # per min(H, W)
        phase = rng.uniform(0, 2 * np.pi)
        along = (xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi * cycles / size) + phase
        if kind == "stripes":
            field = 0.5 + 0.5 * np.sin(along)
        else:
            across = (-xx * np.sin(angle) + yy * np.cos(angle)) * (2 * np.pi * cycles / size)
            field = (np.sin(along) * np.sin(across) > 0).astype(np.float32)
            field = cv2.GaussianBlur(field, (0, 0), sigmaX=0.8)
    fine = _smooth_noise(rng, height, width, max(8, int(min(height, width) // 4)))
    field = (0.8 * field + 0.2 * fine).astype(np.float32)
    base = rng.uniform(30, 225, size=3)
    other = shifted_colour(rng, base, 50.0, 110.0)
    image = base[None, None, :] + (other - base)[None, None, :] * field[..., None]
    return image.astype(np.float32), kind


def contrasting_colour(rng: np.random.Generator, against: np.ndarray, candidates: int = 8) -> np.ndarray:
    """Of ``candidates`` random colours, the farthest (Euclidean) from ``against``."""
    cand = rng.uniform(0, 255, size=(candidates, 3))
    return cand[int(np.argmax(np.linalg.norm(cand - against, axis=1)))]


def shifted_colour(rng: np.random.Generator, colour: np.ndarray, low: float, high: float) -> np.ndarray:
    """``colour`` moved by a random distance in ``[low, high]`` in a random RGB direction (then clipped)."""
    direction = rng.normal(size=3)
    direction /= max(float(np.linalg.norm(direction)), 1e-9)
    return np.clip(colour + direction * rng.uniform(low, high), 0, 255)


@dataclass(frozen=True)
class ActorTexture:
    """Stripes between ``colour_a`` and ``colour_b`` in the actor's frame, plus a marker disc of
    ``marker_colour`` centred at local (0.45, 0) with radius ``MARKER_RADIUS``."""

    colour_a: np.ndarray
    colour_b: np.ndarray
    marker_colour: np.ndarray
    stripe_angle: float
    stripe_cycles: float
    stripe_phase: float

    MARKER_CENTRE = (0.45, 0.0)
    MARKER_RADIUS = 0.28

    @classmethod
    def random(cls, rng: np.random.Generator, background_mean: np.ndarray) -> ActorTexture:
        a = contrasting_colour(rng, background_mean)
        b = shifted_colour(rng, a, 60.0, 110.0)
        marker = contrasting_colour(rng, a)
        return cls(
            colour_a=a,
            colour_b=b,
            marker_colour=marker,
            stripe_angle=float(rng.uniform(0, np.pi)),
            stripe_cycles=float(rng.uniform(1.0, 2.5)),
            stripe_phase=float(rng.uniform(0, 2 * np.pi)),
        )

    def colour(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """RGB ``[..., 3]`` at local coordinates ``(u, v)``."""
        along = u * np.cos(self.stripe_angle) + v * np.sin(self.stripe_angle)
        t = (0.5 + 0.5 * np.sin(np.pi * self.stripe_cycles * along + self.stripe_phase)).astype(np.float32)
        a = self.colour_a.astype(np.float32)
        b = self.colour_b.astype(np.float32)
        out = a + (b - a) * t[..., None]
        mu, mv = self.MARKER_CENTRE
        marker = (u - mu) ** 2 + (v - mv) ** 2 <= self.MARKER_RADIUS**2
        out[marker] = self.marker_colour.astype(np.float32)
        return out
