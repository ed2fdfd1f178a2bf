"""Tiny synthetic videos for tests, made on the fly.

- ``make_frames(T, H, W, seed)``: smooth RGB frames (gradient background, a moving soft blob) whose **blue channel
  mean encodes the frame index** (``BLUE_BASE + BLUE_STEP * i`` before the blob), so a test can tell which source
  frame a decoded frame came from, even after lossy compression.
- ``write_encoded_video(path, frames, codec="mpeg4" | "libx264" | "libvpx-vp9", fps=...)``: encode with PyAV
  (the container follows the suffix: .mp4, .webm, .mkv, .avi). mpeg4 is written at a high bit rate, libx264 at
  crf 0, VP9 lossless; with yuv420p chroma all give a mean absolute error of about 1.5 grey levels on
  ``make_frames``.
- ``write_frame_folder(dir, frames, pattern="img_{i}.jpg", start=1)``: one image per frame with OpenCV (JPEG
  quality 95; PNG is lossless), numbered from ``start`` without zero padding, so natural sort matters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BLUE_BASE = 20
BLUE_STEP = 7


def make_frames(num_frames: int, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """uint8 RGB frames ``[T, H, W, 3]``; frame ``i`` has a blue level of about ``BLUE_BASE + BLUE_STEP * i``."""
    if BLUE_BASE + BLUE_STEP * (num_frames - 1) > 235:
        raise ValueError(f"make_frames supports at most {(235 - BLUE_BASE) // BLUE_STEP + 1} frames")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    x0, y0 = rng.uniform(0.2, 0.4) * width, rng.uniform(0.3, 0.7) * height
    out = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for i in range(num_frames):
        cx, cy = x0 + 1.5 * i, y0 + 0.5 * np.sin(i)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (0.12 * height) ** 2))
        red = 30 + 180 * xx / width + 40 * blob
        green = 40 + 150 * yy / height
        blue = np.full_like(xx, BLUE_BASE + BLUE_STEP * i)
        out[i] = np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8)
    return out


def frame_index_from_blue(frames: np.ndarray) -> np.ndarray:
    """Recover the source frame index of each ``make_frames`` frame from its blue channel."""
    blue = np.asarray(frames)[..., 2].reshape(len(frames), -1).astype(np.float64)
    return np.rint((np.median(blue, axis=1) - BLUE_BASE) / BLUE_STEP).astype(np.int64)


def write_encoded_video(
    path: str | Path,
    frames: np.ndarray,
    codec: str = "mpeg4",
    fps: int = 25,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
) -> Path:
    """Encode uint8 RGB ``frames [T, H, W, 3]`` (H and W even) into ``path`` with PyAV; returns the path.
    ``options`` replaces the codec options chosen here (e.g. ``{"crf": "18"}`` for x264 with B-frames)."""
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T,H,W,3], got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"H and W must be even for {pix_fmt}, got {frames.shape[1:3]}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if options is None:
        options = {"libx264": {"crf": "0"}, "libvpx-vp9": {"lossless": "1"}}.get(codec, {})
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if codec == "mpeg4":
            stream.bit_rate = 20_000_000
        for frame in frames:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(
    directory: str | Path, frames: np.ndarray, pattern: str = "img_{i}.jpg", start: int = 1
) -> Path:
    """Write one image per frame as ``directory / pattern.format(i=start + k)``; returns the folder."""
    import cv2

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(np.asarray(frames)):
        file = directory / pattern.format(i=start + k)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if file.suffix.lower() in (".jpg", ".jpeg") else []
        if not cv2.imwrite(str(file), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params):
            raise OSError(f"cv2.imwrite failed for {file}")
    return directory
