"""Tiny synthetic videos for the tracking tests: a smooth random texture translating by a known step per frame,
written on the fly with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np


def translating_texture(
    num_frames: int, height: int, width: int, step: tuple[float, float], seed: int = 0, blur: float = 1.5
) -> np.ndarray:
    """uint8 [T, H, W, 3]: content at (x, y) in frame t is at (x + t*dx, y + t*dy) in frame t (sub-pixel)."""
    rng = np.random.default_rng(seed)
    margin = int(np.ceil(max(abs(step[0]), abs(step[1])) * num_frames)) + 8
    base = rng.random((height + 2 * margin, width + 2 * margin, 3)).astype(np.float32)
    base = cv2.GaussianBlur(base, (0, 0), blur)
    base = (base - base.min()) / (base.max() - base.min()) * 255.0
    frames = []
    for t in range(num_frames):
        shift = np.float32([[1, 0, step[0] * t], [0, 1, step[1] * t]])
        moved = cv2.warpAffine(
            base, shift, base.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        frames.append(np.clip(moved[margin : margin + height, margin : margin + width] + 0.5, 0, 255))
    return np.stack(frames).astype(np.uint8)


def write_video(path: Path, frames: np.ndarray, fps: int = 10, codec: str = "mpeg4") -> Path:
    """Encode uint8 [T, H, W, 3] frames (H, W even) with PyAV."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "mpeg4":
            stream.options = {"qscale": "2"}
        for frame in frames:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def moving_square(
    num_frames: int,
    height: int,
    width: int,
    size: int,
    start: tuple[int, int],
    step: tuple[int, int],
    seed: int = 0,
    noise: float = 2.0,
) -> np.ndarray:
    """uint8 [T, H, W, 3]: a bright ``size`` x ``size`` square (grey 200) whose top-left corner is at
    ``start + t * step`` (integer pixels, x then y) over a dark smooth texture (grey 20-80), plus seeded Gaussian
    noise of std ``noise``. :func:`square_mask` gives the square's pixels."""
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 3.0)
    background = 20 + 60 * (background - background.min()) / (background.max() - background.min())
    frames = np.repeat(background[None], num_frames, axis=0)
    frames[square_mask(num_frames, height, width, size, start, step)] = 200.0
    frames = frames + rng.normal(0.0, noise, frames.shape).astype(np.float32)
    return np.repeat(np.clip(frames + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=3)


def square_mask(
    num_frames: int, height: int, width: int, size: int, start: tuple[int, int], step: tuple[int, int]
) -> np.ndarray:
    """bool [T, H, W]: the pixels of :func:`moving_square`'s square."""
    mask = np.zeros((num_frames, height, width), dtype=bool)
    for t in range(num_frames):
        x, y = start[0] + t * step[0], start[1] + t * step[1]
        mask[t, max(y, 0) : max(y + size, 0), max(x, 0) : max(x + size, 0)] = True
    return mask
