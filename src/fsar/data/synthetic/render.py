"""Rasterising a synthetic video in numpy, and its ground-truth point trajectories.

Each pixel centre ``(x, y)`` (pixel ``(0, 0)`` has centre ``(0.0, 0.0)``) is mapped back into the actor's and each
distractor's local frame, ``local = R(-angle) (p - centre) / radius``, and the shape's inside test decides
coverage; the actor's colour comes from its texture at the local coordinate. All T frames are computed at once.
The actor's ground-truth points are the forward map of fixed local points,
``p = centre + radius * scale * R(angle) local``, so they follow exactly what is drawn. A point is invisible when
a distractor covers it or it lies outside the frame ``[-0.5, W - 0.5) x [-0.5, H - 0.5)``.

``render_video(config, class_def, video_idx)`` is a pure function of ``(config.seed, class index, video index)``:
its only randomness is ``np.random.default_rng([seed, class_idx, video_idx])``.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from fsar.data.synthetic.classes import ClassDef
from fsar.data.synthetic.config import SynthConfig
from fsar.data.synthetic.scene import Distractor, Scene, sample_scene
from fsar.data.synthetic.shapes import inside_shape


@dataclass(frozen=True)
class RenderedVideo:
    frames: np.ndarray  # uint8 [T, H, W, 3] RGB
    points: np.ndarray  # float32 [T, P, 2] pixel (x, y)
    visible: np.ndarray  # bool [T, P]
    actor_mask: np.ndarray  # bool [T, H, W]: pixels showing the actor (after occlusion)
    scene: Scene


def video_rng(seed: int, class_idx: int, video_idx: int) -> np.random.Generator:
    """The only random stream of video ``video_idx`` of class ``class_idx``."""
    return np.random.default_rng([seed, class_idx, video_idx])


def _local_coords(
    xs: np.ndarray, ys: np.ndarray, centres: np.ndarray, angles: np.ndarray, radii: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Local coordinates ``[T, ...]`` of image points ``xs, ys`` (broadcastable to ``[T, ...]``) for a body with
    image-space ``centres [T, 2]``, ``angles [T]`` and ``radii [T]``."""
    extra = (1,) * (np.ndim(xs) - 1)
    cx = centres[:, 0].reshape(-1, *extra).astype(np.float32)
    cy = centres[:, 1].reshape(-1, *extra).astype(np.float32)
    cos = np.cos(angles).reshape(-1, *extra).astype(np.float32)
    sin = np.sin(angles).reshape(-1, *extra).astype(np.float32)
    inv_r = (1.0 / radii).reshape(-1, *extra).astype(np.float32)
    dx, dy = xs - cx, ys - cy
    return (cos * dx + sin * dy) * inv_r, (-sin * dx + cos * dy) * inv_r


def actor_points(scene: Scene) -> np.ndarray:
    """Image-space positions ``[T, P, 2]`` of the actor's local points (camera offset included)."""
    pose = scene.pose
    cos, sin = np.cos(pose[:, 2])[:, None], np.sin(pose[:, 2])[:, None]
    r = (scene.actor_radius * pose[:, 3])[:, None]
    u, v = scene.local_points[None, :, 0], scene.local_points[None, :, 1]
    x = pose[:, 0:1] + scene.camera[:, 0:1] + r * (cos * u - sin * v)
    y = pose[:, 1:2] + scene.camera[:, 1:2] + r * (sin * u + cos * v)
    return np.stack([x, y], axis=-1)


def _distractor_cover(d: Distractor, camera: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    radii = np.full(len(d.angles), d.radius)
    u, v = _local_coords(xs, ys, d.centres + camera, d.angles, radii)
    return inside_shape(d.shape, u, v)


def rasterise(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free float32 frames ``[T, H, W, 3]`` and the actor's visible-pixel mask ``[T, H, W]``."""
    T, H, W, J = scene.num_frames, scene.height, scene.width, scene.margin
    frames = np.empty((T, H, W, 3), dtype=np.float32)
    for t in range(T):  # camera shift: pixel p shows the scene at p - camera
        ox, oy = J - int(scene.camera[t, 0]), J - int(scene.camera[t, 1])
        frames[t] = scene.background[oy : oy + H, ox : ox + W]
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    xs, ys = xs[None], ys[None]

    pose = scene.pose
    u, v = _local_coords(xs, ys, pose[:, :2] + scene.camera, pose[:, 2], scene.actor_radius * pose[:, 3])
    actor = inside_shape(scene.actor_shape, u, v)
    frames[actor] = scene.actor_texture.colour(u[actor], v[actor])

    for d in scene.distractors:
        cover = _distractor_cover(d, scene.camera, xs, ys)
        frames[cover] = d.colour.astype(np.float32)
        actor &= ~cover
    return frames, actor


def point_visibility(scene: Scene, points: np.ndarray) -> np.ndarray:
    """``[T, P]``: inside the frame and not covered by any distractor."""
    x, y = points[..., 0], points[..., 1]
    visible = (x >= -0.5) & (x < scene.width - 0.5) & (y >= -0.5) & (y < scene.height - 0.5)
    for d in scene.distractors:
        visible &= ~_distractor_cover(d, scene.camera, x.astype(np.float32), y.astype(np.float32))
    return visible


# Standard-normal quantiles at 256 equiprobable levels: gaussian pixel noise from random bytes by table look-up,
# several times faster than drawing normals and indistinguishable at 8-bit precision.
_NORMAL_LEVELS = np.array([NormalDist().inv_cdf((k + 0.5) / 256.0) for k in range(256)], dtype=np.float32)


def gaussian_pixel_noise(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """float32 noise of standard deviation about ``std`` (a 256-level quantised normal)."""
    levels = _NORMAL_LEVELS * np.float32(std / float(_NORMAL_LEVELS.std()))
    return levels[rng.integers(0, 256, size=shape, dtype=np.uint8)]


def render_scene(scene: Scene, rng: np.random.Generator) -> RenderedVideo:
    frames, actor = rasterise(scene)
    if scene.noise_std > 0:
        frames += gaussian_pixel_noise(rng, frames.shape, scene.noise_std)
    frames += 0.5
    np.clip(frames, 0.0, 255.0, out=frames)
    frames = frames.astype(np.uint8)  # truncation of x + 0.5: rounding to nearest
    points = actor_points(scene)
    visible = point_visibility(scene, points)
    return RenderedVideo(
        frames=frames, points=points.astype(np.float32), visible=visible, actor_mask=actor, scene=scene
    )


def render_clip(config: SynthConfig, class_def: ClassDef, video_idx: int) -> RenderedVideo:
    """Everything about one video (frames, points, visibility, actor mask, the scene it was drawn from)."""
    rng = video_rng(config.seed, class_def.index, video_idx)
    scene = sample_scene(config, class_def, rng)
    return render_scene(scene, rng)


def render_video(
    config: SynthConfig, class_def: ClassDef, video_idx: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frames uint8 [T, H, W, 3], points float32 [T, P, 2], visible bool [T, P])`` of one video, without
    writing anything."""
    clip = render_clip(config, class_def, video_idx)
    return clip.frames, clip.points, clip.visible
