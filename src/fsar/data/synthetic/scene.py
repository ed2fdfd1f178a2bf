"""Random scene of one synthetic video: background, actor (shape, texture, pose per frame), distractors, camera
jitter, timing and pixel noise level.

Timing models the two misalignments of few-shot action recognition named by TA2N (Li et al., AAAI 2022):
*duration* misalignment (the action occupies a random sub-window ``[s, s + d]`` of the clip) and *evolution*
misalignment (inside the window, progress follows a random monotone time warp: a piecewise-linear map with
Dirichlet increments, mixed with the identity).

Positions are in scene pixels; the camera offset of frame ``t`` is added to everything at render time (the
image at pixel ``p`` shows the scene at ``p - camera[t]``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from fsar.data.synthetic.classes import ClassDef
from fsar.data.synthetic.config import SynthConfig
from fsar.data.synthetic.primitives import compose_offsets
from fsar.data.synthetic.shapes import SHAPES, sample_points_in_shape
from fsar.data.synthetic.textures import ActorTexture, contrasting_colour, random_background

WARP_SEGMENTS = 4
DISTRACTOR_SHAPES: tuple[str, ...] = ("circle", "square", "diamond", "triangle")


@dataclass(frozen=True)
class Distractor:
    shape: str
    radius: float  # pixels
    colour: np.ndarray  # RGB
    centres: np.ndarray  # [T, 2] scene (x, y)
    angles: np.ndarray  # [T] radians


@dataclass(frozen=True)
class Scene:
    height: int
    width: int
    background: np.ndarray  # [H + 2J, W + 2J, 3] float32, J = margin
    background_kind: str
    margin: int  # camera jitter bound J
    camera: np.ndarray  # [T, 2] integer (dx, dy)
    actor_shape: str
    actor_texture: ActorTexture
    actor_radius: float  # pixels at scale 1
    pose: np.ndarray  # [T, 4]: x, y (scene pixels), angle (radians, clockwise), scale (multiplier)
    progress: np.ndarray  # [T] warped action progress in [0, 1]
    action_window: tuple[float, float]  # (start, end) in frames (fractional)
    local_points: np.ndarray  # [P, 2] on the actor, local coordinates
    distractors: tuple[Distractor, ...]
    noise_std: float

    @property
    def num_frames(self) -> int:
        return len(self.pose)


def action_timing(
    num_frames: int, rng: np.random.Generator, config: SynthConfig
) -> tuple[np.ndarray, tuple[float, float]]:
    """Warped progress ``[T]`` of the action and its window ``(start, end)`` in frames."""
    start = rng.uniform(0.0, config.action_start_max)
    lo, hi = config.action_duration_range
    hi = min(hi, 1.0 - start)
    duration = rng.uniform(min(lo, hi), hi)
    times = np.arange(num_frames) / (num_frames - 1)
    tau = np.clip((times - start) / duration, 0.0, 1.0)
    increments = rng.dirichlet(np.full(WARP_SEGMENTS, 2.0))
    knots_y = np.concatenate([[0.0], np.cumsum(increments)])
    knots_y[-1] = 1.0
    knots_x = np.linspace(0.0, 1.0, WARP_SEGMENTS + 1)
    strength = rng.uniform(0.0, config.warp_strength_max)
    progress = (1.0 - strength) * tau + strength * np.interp(tau, knots_x, knots_y)
    window = (start * (num_frames - 1), (start + duration) * (num_frames - 1))
    return progress, window


def _start_range(low_offset: float, high_offset: float, margin: float, extent: float) -> tuple[float, float]:
    """Start coordinates keeping ``[start + low_offset, start + high_offset]`` inside ``[margin, extent-1-margin]``;
    when the path is too long for that, the single start that centres it."""
    lo = margin - low_offset
    hi = extent - 1 - margin - high_offset
    if lo > hi:
        mid = 0.5 * (lo + hi)
        return mid, mid
    return lo, hi


def _bright_actor(background: np.ndarray, texture: ActorTexture) -> tuple[np.ndarray, ActorTexture]:
    """The same random colours squeezed so that the actor (grey levels 155-255) is always brighter than the
    background (0-100) and its marker dark (0-75): frame differences then show the actor's leading edge as a
    brightening and its trailing edge as a darkening, whatever the hues. Draws nothing from the generator."""
    squeeze = np.float32(100.0 / 255.0)
    bright = dataclasses.replace(
        texture,
        colour_a=155.0 + texture.colour_a * squeeze,
        colour_b=155.0 + texture.colour_b * squeeze,
        marker_colour=texture.marker_colour * np.float32(75.0 / 255.0),
    )
    return background * squeeze, bright


def sample_scene(config: SynthConfig, class_def: ClassDef, rng: np.random.Generator) -> Scene:
    """Draw every random choice of one video from ``rng``, in a fixed order."""
    T, H, W = config.num_frames, config.height, config.width
    size = float(min(H, W))
    J = config.camera_jitter

    background, bg_kind = random_background(rng, H + 2 * J, W + 2 * J)
    bg_mean = background.reshape(-1, 3).mean(axis=0)

    # Actor appearance and points.
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    texture = ActorTexture.random(rng, bg_mean)
    if config.bright_actor:
        background, texture = _bright_actor(background, texture)
    radius = rng.uniform(*config.actor_radius_range) * size
    local_points = sample_points_in_shape(shape, config.num_points, rng)

    # Motion: timing, primitive strengths, offsets, start pose.
    progress, window = action_timing(T, rng, config)
    strengths = rng.uniform(*config.primitive_strength_range, size=len(class_def.primitives))
    offsets = compose_offsets(class_def.primitives, progress, strengths)
    path = compose_offsets(class_def.primitives, np.linspace(0.0, 1.0, 257), strengths)
    margin = 0.8 * radius
    x_lo, x_hi = _start_range(path[:, 0].min() * size, path[:, 0].max() * size, margin, W)
    y_lo, y_hi = _start_range(path[:, 1].min() * size, path[:, 1].max() * size, margin, H)
    x0, y0 = rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi)
    angle0 = rng.uniform(0.0, 2 * np.pi)
    pose = np.stack(
        [
            x0 + offsets[:, 0] * size,
            y0 + offsets[:, 1] * size,
            angle0 + offsets[:, 2],
            np.exp(offsets[:, 3]),
        ],
        axis=1,
    )

    # Distractors: straight lines at constant speed with a slow spin, drawn over the actor.
    n_distractors = int(rng.integers(0, config.max_distractors + 1))
    distractors = []
    t = np.arange(T, dtype=np.float64)
    for _ in range(n_distractors):
        d_shape = DISTRACTOR_SHAPES[int(rng.integers(len(DISTRACTOR_SHAPES)))]
        d_radius = rng.uniform(*config.distractor_radius_range) * size
        colour = contrasting_colour(rng, bg_mean)
        start = rng.uniform([0.0, 0.0], [W - 1.0, H - 1.0])
        heading = rng.uniform(0.0, 2 * np.pi)
        travel = rng.uniform(0.3, 1.0) * size  # over the whole clip
        velocity = travel / max(T - 1, 1) * np.array([np.cos(heading), np.sin(heading)])
        spin = rng.uniform(-np.pi, np.pi) / max(T - 1, 1)
        angle = rng.uniform(0.0, 2 * np.pi)
        distractors.append(
            Distractor(
                shape=d_shape,
                radius=d_radius,
                colour=colour,
                centres=start[None, :] + t[:, None] * velocity[None, :],
                angles=angle + spin * t,
            )
        )

    # Camera jitter: small integer global shifts, independent per frame.
    if J > 0:
        camera = np.clip(np.rint(rng.normal(0.0, J / 2.0, size=(T, 2))), -J, J).astype(np.int64)
    else:
        camera = np.zeros((T, 2), dtype=np.int64)

    noise_std = float(rng.uniform(*config.noise_std_range))
    return Scene(
        height=H,
        width=W,
        background=background,
        background_kind=bg_kind,
        margin=J,
        camera=camera,
        actor_shape=shape,
        actor_texture=texture,
        actor_radius=float(radius),
        pose=pose,
        progress=progress,
        action_window=(float(window[0]), float(window[1])),
        local_points=local_points,
        distractors=tuple(distractors),
        noise_std=noise_std,
    )
