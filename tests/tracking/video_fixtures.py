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
