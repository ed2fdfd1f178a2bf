"""Planar shapes of the synthetic benchmark as vectorised inside tests in a shape's local frame.

Local coordinates ``(u, v)`` are pixel offsets from the shape's centre divided by its radius and rotated into the
shape's frame (``v`` points down, like image y). Every shape fits in the unit disc and contains the point
``(0.45, 0)``, where the actor's orientation marker sits.
"""

from __future__ import annotations

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "hexagon", "star", "cross", "diamond")


def _regular_polygon(u: np.ndarray, v: np.ndarray, sides: int, apothem: float, phase: float) -> np.ndarray:
    inside = np.ones(np.broadcast(u, v).shape, dtype=bool)
    for k in range(sides):
        theta = phase + 2 * np.pi * k / sides
        inside &= u * np.cos(theta) + v * np.sin(theta) <= apothem
    return inside


def inside_shape(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask: which local points ``(u, v)`` lie inside ``shape``."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return (np.abs(u) <= 0.7) & (np.abs(v) <= 0.7)
    if shape == "triangle":  # pointing up (towards -v), circumradius 1
        return _regular_polygon(u, v, 3, 0.5, np.pi / 2)
    if shape == "hexagon":
        return _regular_polygon(u, v, 6, np.cos(np.pi / 6), 0.0)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.93) & (av <= 0.34)) | ((au <= 0.34) & (av <= 0.93))
    if shape == "star":  # five points, one pointing up
        r = np.sqrt(u * u + v * v)
        phase = np.mod(np.arctan2(v, u) * 5 / (2 * np.pi) + 0.25, 1.0)
        tip = np.abs(phase - 0.5) * 2  # 1 at a tip, 0 between tips
        return r <= 0.45 + 0.55 * tip
    raise KeyError(f"unknown shape {shape!r}; valid: {list(SHAPES)}")


def sample_points_in_shape(shape: str, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` local points ``[count, 2]`` drawn uniformly inside ``shape`` (rejection sampling), kept at
    least 0.1 radius away from the boundary so a rendered point's pixel shows the actor."""
    out = np.empty((0, 2))
    while len(out) < count:
        cand = rng.uniform(-1.0, 1.0, size=(4 * count, 2))
        ok = np.ones(len(cand), dtype=bool)
        for du, dv in ((0, 0), (0.1, 0), (-0.1, 0), (0, 0.1), (0, -0.1)):
            ok &= inside_shape(shape, cand[:, 0] + du, cand[:, 1] + dv)
        out = np.concatenate([out, cand[ok]])
    return out[:count]
