"""Pictures of what TA2N aligned in one episode: TTM's time warps, ACM's attention and spatial offsets.

Liu et al., "TA2N: Two-Stage Action Alignment Network for Few-shot Action Recognition", AAAI 2022
(cf. its alignment visualisations). Input: :class:`fsar.models.ta2n.TA2NDiagnostics` from
``TA2N(..., return_diagnostics=True)`` or ``TA2NClassifier.last_diagnostics``.

ACM pools the support with a box shifted so that, for an offset o > 0 along x, it keeps the left part, and the
query with the opposite shift: the pooling window centres move by -o (support) and +o (query) in normalised
map coordinates. The frame strips draw exactly these moves as arrows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fsar.models.ta2n.module import TA2NDiagnostics


def _to_numpy_frames(clip: object) -> np.ndarray:
    """One clip [T, H, W, 3] or [T, 3, H, W] (tensor or array, values in [0, 1] or [0, 255]) -> [T, H, W, 3]."""
    arr = (
        clip.detach().cpu().float().numpy()
        if isinstance(clip, torch.Tensor)
        else np.asarray(clip, dtype=float)
    )
    if arr.ndim != 4:
        raise ValueError(f"each clip of `frames` must be [T, H, W, 3] or [T, 3, H, W]; got shape {arr.shape}")
    if arr.shape[-1] != 3 and arr.shape[1] == 3:
        arr = arr.transpose(0, 2, 3, 1)
    if arr.shape[-1] != 3:
        raise ValueError(f"each clip of `frames` must have 3 colour channels; got shape {arr.shape}")
    if arr.max() > 1.0:
        arr = arr / 255.0
    lo, hi = arr.min(), arr.max()
    if lo < 0:  # normalised frames: rescale for display only
        arr = (arr - lo) / max(hi - lo, 1e-8)
    return np.clip(arr, 0.0, 1.0)


def plot_episode_alignment(
    diagnostics: TA2NDiagnostics,
    out_png: str | os.PathLike[str],
    video_ids: Sequence[str] | None = None,
    frames: Sequence[object] | None = None,
    *,
    query_index: int = 0,
    class_index: int = 0,
    dpi: int = 100,
) -> Path:
    """Write one PNG describing the alignment of one episode; returns its path.

    Panels: (1) TTM's warp per video: source frame u_i read by target frame i (support solid, queries dashed;
    the grey band is outside the clip, where the faithful zero padding applies); (2) ACM's temporal attention
    of query ``query_index`` against every class; (3) ACM's offsets (dx solid, dy dashed) of that query against
    every class over the frames; (4) with ``frames``, the frames of class ``class_index``'s first support video
    and of the query with arrows for the moves of their pooling windows.

    Args:
        diagnostics: one episode's diagnostics.
        out_png: output path (parent folders are created).
        video_ids: names of the videos, support (class-major) then queries; used in legends.
        frames: clips of the same videos in the same order, each [T, H, W, 3] or [T, 3, H, W].
        query_index / class_index: which pair the detailed panels show.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend state is touched

    d = diagnostics
    t = d.num_frames
    u_support = d.source_frames("support")
    u_query = d.source_frames("query")
    num_support = None if d.theta_support is None else int(d.theta_support.shape[0])
    num_queries = None
    if d.theta_query is not None:
        num_queries = int(d.theta_query.shape[0])
    elif d.attention is not None:
        num_queries = int(d.attention.shape[1])
    num_classes = int(d.attention.shape[0]) if d.attention is not None else None
    if num_support is None and num_classes is not None:
        num_support = num_classes * d.shot
    total = (num_support or 0) + (num_queries or 0)
    if video_ids is not None and total and len(video_ids) != total:
        raise ValueError(
            f"video_ids has {len(video_ids)} names; the episode has {total} videos (support then query)"
        )
    if num_queries is not None and not 0 <= query_index < num_queries:
        raise ValueError(f"query_index {query_index} out of range for {num_queries} queries")
    if num_classes is not None and not 0 <= class_index < num_classes:
        raise ValueError(f"class_index {class_index} out of range for {num_classes} classes")
    if frames is not None and len(frames) != total:
        raise ValueError(
            f"frames has {len(frames)} clips; the episode has {total} videos (support then query)"
        )

    def name(i: int) -> str:
        if video_ids is not None:
            return str(video_ids[i])
        return (
            f"support {i}"
            if num_support is not None and i < num_support
            else f"query {i - (num_support or 0)}"
        )

    rows = 3 + (2 if frames is not None and d.offsets is not None else 0)
    fig = Figure(figsize=(max(8.0, 1.6 * t), 3.2 * rows))
    grid = fig.add_gridspec(rows, max(1, num_classes or 1))

    ax = fig.add_subplot(grid[0, :])
    target = np.arange(t)
    if u_support is None and u_query is None:
        ax.text(0.5, 0.5, "TTM disabled", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.axhspan(-1.5, -0.0001, color="0.9")
        ax.axhspan(t - 1 + 0.0001, t + 0.5, color="0.9")
        ax.plot(target, target, ":", color="0.5", label="identity")
        for i, u in enumerate([] if u_support is None else u_support.float().cpu().numpy()):
            ax.plot(target, u, "-o", ms=3, label=name(i))
        for j, u in enumerate([] if u_query is None else u_query.float().cpu().numpy()):
            ax.plot(target, u, "--x", ms=3, label=name((num_support or 0) + j))
        ax.set_ylim(-1.5, t + 0.5)
        ax.legend(fontsize=6, ncol=4, loc="upper left")
    ax.set_xlabel("target frame i")
    ax.set_ylabel("source frame u_i")
    ax.set_title("TTM time warp per video")

    for c in range(num_classes or 0):
        ax = fig.add_subplot(grid[1, c])
        ax.imshow(d.attention[c, query_index].float().cpu().numpy(), vmin=0, vmax=1, cmap="viridis")
        ax.set_title(f"attention class {c}", fontsize=8)
        ax.set_xlabel("query frame y", fontsize=7)
        ax.set_ylabel("support frame x", fontsize=7)
    if num_classes is None:
        ax = fig.add_subplot(grid[1, :])
        ax.text(0.5, 0.5, "ACM disabled", ha="center", va="center", transform=ax.transAxes)

    ax = fig.add_subplot(grid[2, :])
    if d.offsets is None:
        ax.text(0.5, 0.5, "ACM disabled", ha="center", va="center", transform=ax.transAxes)
    else:
        offsets = d.offsets.reshape(num_classes, num_queries, t, 2).float().cpu().numpy()
        for c in range(num_classes):
            (line,) = ax.plot(target, offsets[c, query_index, :, 0], "-", label=f"class {c} dx")
            ax.plot(
                target, offsets[c, query_index, :, 1], "--", color=line.get_color(), label=f"class {c} dy"
            )
        ax.axhline(0, color="0.5", lw=0.5)
        ax.legend(fontsize=6, ncol=5)
    ax.set_xlabel("frame")
    ax.set_ylabel("offset (map units)")
    ax.set_title(f"ACM spatial offsets of query {query_index} vs each class")

    if frames is not None and d.offsets is not None:
        offsets = (
            d.offsets.reshape(num_classes, num_queries, t, 2)[class_index, query_index].float().cpu().numpy()
        )
        clips = [
            (_to_numpy_frames(frames[class_index * d.shot]), -1.0, name(class_index * d.shot)),
            (_to_numpy_frames(frames[num_support + query_index]), 1.0, name(num_support + query_index)),
        ]
        for row, (clip, sign, label) in enumerate(clips):
            strip = fig.add_subplot(grid[3 + row, :])
            strip.axis("off")
            strip.set_title(
                f"{label}: pooling-window moves for pair (class {class_index}, query {query_index})"
            )
            h, w = clip.shape[1:3]
            for i in range(min(t, clip.shape[0])):
                sub = strip.inset_axes([i / t, 0.0, 1.0 / t * 0.95, 1.0])
                sub.imshow(clip[i])
                sub.axis("off")
                dx, dy = sign * offsets[i, 0] * w / 2, sign * offsets[i, 1] * h / 2
                sub.annotate(
                    "",
                    xy=(w / 2 + dx, h / 2 + dy),
                    xytext=(w / 2, h / 2),
                    arrowprops={"arrowstyle": "->", "color": "red", "lw": 1.5},
                )
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, format="png")
    return out
