"""Motion primitives of the synthetic benchmark and their composition into an action.

A primitive maps local progress ``u in [0, 1]`` to a pose offset ``(dx, dy, dangle, dlogscale)``: translations
in units of ``min(H, W)``, angles in radians (positive = clockwise on screen, since image y points down) and the
log of the scale factor. Every primitive is 0 at ``u = 0``. An action is an ordered sequence of K primitives,
each taking 1/K of the action's progress; the pose offset at progress ``p`` is the sum of the finished primitives'
full offsets plus the current one's partial offset (``compose_offsets``). Inside a primitive the progress is eased
(smoothstep), so the actor briefly slows between primitives and each segment reads clearly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

TRANSLATION = 0.30  # of min(H, W), per translation primitive
ROTATION = 0.75 * np.pi  # radians per rotation primitive
LOG_SCALE = float(np.log(1.6))  # grow / shrink factor 1.6
CIRCLE_RADIUS = 0.14  # of min(H, W)
SHAKE_AMPLITUDE = 0.07  # of min(H, W)
SHAKE_CYCLES = 3


@dataclass(frozen=True)
class Primitive:
    name: str
    description: str
    offset: Callable[[np.ndarray], np.ndarray]  # eased progress [N] -> [N, 4] (dx, dy, dangle, dlogscale)


def _stack(n: int, dx=0.0, dy=0.0, da=0.0, ds=0.0) -> np.ndarray:
    out = np.zeros((n, 4), dtype=np.float64)
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = dx, dy, da, ds
    return out


def _translate(ux: float, uy: float):
    return lambda u: _stack(len(u), dx=ux * TRANSLATION * u, dy=uy * TRANSLATION * u)


def _circle(u: np.ndarray) -> np.ndarray:
    # One full turn starting and ending at the current position, going right-and-up first.
    phase = 2 * np.pi * u
    return _stack(len(u), dx=CIRCLE_RADIUS * np.sin(phase), dy=-CIRCLE_RADIUS * (1 - np.cos(phase)))


def _shake(u: np.ndarray) -> np.ndarray:
    return _stack(len(u), dx=SHAKE_AMPLITUDE * np.sin(2 * np.pi * SHAKE_CYCLES * u))


PRIMITIVES: dict[str, Primitive] = {
    p.name: p
    for p in (
        Primitive("left", "move left", _translate(-1, 0)),
        Primitive("right", "move right", _translate(1, 0)),
        Primitive("up", "move up", _translate(0, -1)),
        Primitive("down", "move down", _translate(0, 1)),
        Primitive("rotcw", "rotate clockwise by 135 degrees", lambda u: _stack(len(u), da=ROTATION * u)),
        Primitive(
            "rotccw", "rotate counter-clockwise by 135 degrees", lambda u: _stack(len(u), da=-ROTATION * u)
        ),
        Primitive("grow", "grow by a factor 1.6", lambda u: _stack(len(u), ds=LOG_SCALE * u)),
        Primitive("shrink", "shrink by a factor 1.6", lambda u: _stack(len(u), ds=-LOG_SCALE * u)),
        Primitive("circle", "move once around a circle and back to the start", _circle),
        Primitive("shake", f"shake left-right {SHAKE_CYCLES} times", _shake),
    )
}
PRIMITIVE_NAMES: tuple[str, ...] = tuple(PRIMITIVES)


def smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def compose_offsets(
    sequence: Sequence[str], progress: np.ndarray, strengths: Sequence[float] | None = None
) -> np.ndarray:
    """Pose offsets ``[N, 4]`` (dx, dy in units of min(H, W); dangle; dlogscale) of the action ``sequence`` at
    action progress ``progress [N]`` in [0, 1]. ``strengths[k]`` scales primitive ``k``'s offset (default 1)."""
    progress = np.asarray(progress, dtype=np.float64)
    k_total = len(sequence)
    if k_total == 0:
        raise ValueError("an action needs at least one primitive")
    strengths = np.ones(k_total) if strengths is None else np.asarray(strengths, dtype=np.float64)
    if strengths.shape != (k_total,):
        raise ValueError(f"need one strength per primitive ({k_total}), got shape {strengths.shape}")
    out = np.zeros((progress.size, 4), dtype=np.float64)
    for k, name in enumerate(sequence):
        if name not in PRIMITIVES:
            raise KeyError(f"unknown motion primitive {name!r}; valid: {list(PRIMITIVE_NAMES)}")
        local = smoothstep(progress.reshape(-1) * k_total - k)
        out += strengths[k] * PRIMITIVES[name].offset(local)
    return out
