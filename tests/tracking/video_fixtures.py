"""Tiny synthetic videos for the tracking tests: a smooth random texture translating by a known step per frame,
written on the fly with PyAV, and a minimal PyAV reader (used until/unless ``fsar.data.video`` is available)."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class TinyVideo:
    """Decodes everything at open; ``frames(indices)`` returns uint8 [len, H, W, 3]."""

    all_frames: np.ndarray
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.all_frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.all_frames.shape[1]), int(self.all_frames.shape[2])

    def frames(self, indices) -> np.ndarray:
        return self.all_frames[np.asarray(indices, dtype=np.int64)]


def open_tiny_video(path: Path) -> TinyVideo:
    """A minimal reader for test videos: PyAV for files, cv2 for frame folders (fps unknown = None)."""
    import av

    path = Path(path)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not images:
            raise ValueError(f"{path}: no images")
        return TinyVideo(
            np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in images]), None
        )
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        fps = float(stream.average_rate) if stream.average_rate else None
    if not frames:
        raise ValueError(f"{path}: no frames decoded")
    return TinyVideo(np.stack(frames), fps)
