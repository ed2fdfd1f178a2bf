"""Draw point tracks over a video's frames (a PNG grid of frames with trajectories), for checking trackers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def plot_tracks(
    frames: np.ndarray,
    tracks: np.ndarray,
    visibility: np.ndarray,
    out_png: str | os.PathLike[str],
    *,
    frame_numbers: list[int] | None = None,
    tail: int = 3,
    max_points: int = 256,
    title: str = "",
    dpi: int = 100,
) -> Path:
    """One panel per frame: the frame, each visible point as a dot (colour = point id) and its last ``tail``
    positions as a line. ``frames`` uint8 [T, H, W, 3]; ``tracks`` [T, N, 2] pixel (x, y); ``visibility`` [T, N]."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    t = frames.shape[0]
    if tracks.shape[0] != t or visibility.shape[:2] != tracks.shape[:2]:
        raise ValueError(
            f"frames ({t}), tracks {tuple(tracks.shape)} and visibility {tuple(visibility.shape)} disagree on T or N"
        )
    n = min(tracks.shape[1], max_points)
    colours = colormaps["hsv"](np.linspace(0, 1, n, endpoint=False))
    cols = min(t, 4)
    rows = (t + cols - 1) // cols
    h, w = frames.shape[1:3]
    fig = Figure(figsize=(3 * cols, 3 * rows * h / w + 0.4))
    for i in range(t):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(frames[i])
        vis = visibility[i, :n]
        ax.scatter(tracks[i, :n, 0][vis], tracks[i, :n, 1][vis], s=6, c=colours[vis], linewidths=0)
        start = max(0, i - tail)
        for p in np.flatnonzero(vis):
            seg = tracks[start : i + 1, p]
            ax.plot(seg[:, 0], seg[:, 1], color=colours[p], linewidth=0.6)
        label = frame_numbers[i] if frame_numbers is not None else i
        ax.set_title(f"frame {label}: {int(vis.sum())}/{n} visible", fontsize=8)
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out
