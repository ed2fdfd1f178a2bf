"""Writing uint8 RGB frames as an mp4 file with PyAV (yuv420p; libx264 by default, mpeg4 as the fallback).

The encoder runs single-threaded (generation already runs one process per core) and, for libx264, without
macroblock-tree rate control, which made the output vary between calls with the same frames; so the encoded bytes
are a deterministic function of the frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CODECS: tuple[str, ...] = ("libx264", "mpeg4")


def mpeg4_quantiser(crf: int) -> int:
    """A fixed mpeg4 quantiser of roughly the quality of x264's ``crf`` (2 is near-lossless, 31 the worst)."""
    return max(2, min(31, 2 + crf // 8))


def encoder_options(codec: str, crf: int) -> dict[str, str]:
    if codec == "libx264":
        # mbtree off: with it, this x264 build gave different bytes for the same frames from one call to the
        # next (measured: 11 of 16 clips at 112x112); without it the output is reproducible.
        return {"crf": str(crf), "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0"}
    if codec == "mpeg4":
        return {
            "threads": "1"
        }  # quality: a fixed quantiser, qmin = qmax = mpeg4_quantiser(crf), in write_mp4
    raise ValueError(f"unknown codec {codec!r}; choose one of {list(CODECS)}")


def write_mp4(path: str | Path, frames: np.ndarray, fps: int, codec: str = "libx264", crf: int = 18) -> None:
    """Encode ``frames`` (uint8 ``[T, H, W, 3]`` RGB, H and W even) to ``path`` as mp4. The container format is
    given explicitly, so ``path`` may carry a temporary suffix."""
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{path}: need uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
    _, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise ValueError(f"{path}: yuv420p needs even frame sizes, got {height}x{width}")
    if codec not in av.codecs_available:
        others = [c for c in CODECS if c in av.codecs_available]
        raise ValueError(f"{path}: codec {codec!r} is not in this PyAV build; available here: {others}")
    options = encoder_options(codec, crf)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        if codec == "mpeg4":  # a fixed quantiser: qmin = qmax
            q = mpeg4_quantiser(crf)
            stream.codec_context.qmin = q
            stream.codec_context.qmax = q
        stream.options = options
        for frame in frames:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
