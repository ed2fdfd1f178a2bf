"""Reader for the original TATs track pickles (Kumar et al., ECCV 2024, `point_tracking/`; tats.md §1).

Each ``<vid>.pkl`` is a pickled dict:

=====================  ==========================================  ===========================================
key                    type / shape                                meaning
=====================  ==========================================  ===========================================
``pred_tracks``        torch.float16 [1, T, N', 2]                 (x, y) pixels of the original frames
``pred_visibility``    torch.bool [1, T, N']                       False before each point's query frame
``per_point_queries``  int array [N']                              query frame (tracker timeline row)
``total_points``       int                                         tracks before the redundancy filter
``random``             {256: {'sampled_indices': int64 [256]}}     the fixed subset
=====================  ==========================================  ===========================================

**Security.** Pickles execute code when loaded. Only read files you trust (e.g. those you produced yourself);
prefer converting them once to fsar's ``.npz`` format (:meth:`fsar.tracking.trackfile.TrackFile.save`), which
loads without pickle.

The pickle holds neither the frame size nor the timeline, so they are arguments: ``frame_size`` (H, W) of the
decoded video, and the video's frame count, from which the timeline follows TATs' alignment rule
``int(linspace(0, num_video_frames - 1, T))`` (tats.md §2); without it the timeline is ``0..T-1``. Tensors saved
on a GPU are mapped to the CPU.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fsar.errors import TrackFileError
from fsar.tracking.trackfile import TrackFile

REFERENCE_TRACKER = "cotracker_reference_pickle"


def _load_bytes_on_cpu(data: bytes) -> Any:
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


class _CpuUnpickler(pickle.Unpickler):
    """Unpickler that maps storages serialised from a GPU to the CPU."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch.storage" and name == "_load_from_bytes":
            return _load_bytes_on_cpu
        return super().find_class(module, name)


def _read_pickle(path: Path) -> Any:
    """Plain pickles (``pickle.dump``) and ``torch.save`` archives are both accepted."""
    if zipfile.is_zipfile(path):
        import torch

        return torch.load(path, map_location="cpu", weights_only=False)
    with open(path, "rb") as handle:
        return _CpuUnpickler(handle).load()


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch for numpy-only files
        value = value.detach().cpu()
        if str(value.dtype) in ("torch.float16", "torch.bfloat16"):
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def read_reference_pickle(
    path: str | os.PathLike[str],
    frame_size: tuple[int, int],
    *,
    num_video_frames: int | None = None,
    fps: float = math.nan,
    subset_size: int = 256,
    video_id: str | None = None,
) -> TrackFile:
    """Convert one TATs pickle to a :class:`TrackFile` (tracker name ``cotracker_reference_pickle``).

    Only load trusted files (see the module docstring). ``video_id`` defaults to the file's stem.
    """
    path = Path(path)
    if not path.is_file():
        raise TrackFileError(path, "no such pickle file")
    try:
        data = _read_pickle(path)
    except ModuleNotFoundError as exc:
        raise TrackFileError(
            path, f"the pickle needs the module {exc.name!r}; install it to read this file"
        ) from None
    except Exception as exc:
        raise TrackFileError(path, f"cannot unpickle the file ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise TrackFileError(path, f"expected a dict at the top level, got {type(data).__name__}")
    missing = [
        k
        for k in ("pred_tracks", "pred_visibility", "per_point_queries", "total_points", "random")
        if k not in data
    ]
    if missing:
        raise TrackFileError(path, f"missing key(s) {', '.join(missing)}; not a TATs track pickle")

    tracks = _to_numpy(data["pred_tracks"])
    vis = _to_numpy(data["pred_visibility"])
    if tracks.ndim == 4 and tracks.shape[0] == 1:
        tracks = tracks[0]
    if vis.ndim == 4 and vis.shape[-1] == 1:
        vis = vis[..., 0]
    if vis.ndim == 3 and vis.shape[0] == 1:
        vis = vis[0]
    if tracks.ndim != 3 or tracks.shape[2] != 2:
        raise TrackFileError(path, f"key 'pred_tracks': expected shape [1, T, N, 2], got {tracks.shape}")
    T, N = tracks.shape[:2]
    if vis.shape != (T, N):
        raise TrackFileError(path, f"key 'pred_visibility': expected shape [1, {T}, {N}], got {vis.shape}")
    query_frame = _to_numpy(data["per_point_queries"]).reshape(-1)
    if query_frame.shape != (N,):
        raise TrackFileError(path, f"key 'per_point_queries': expected {N} values, got {query_frame.shape}")
    if not np.issubdtype(query_frame.dtype, np.integer) and not np.all(np.mod(query_frame, 1) == 0):
        raise TrackFileError(path, "key 'per_point_queries': expected integer frame indices")

    subsets = data["random"]
    if not isinstance(subsets, dict) or subset_size not in subsets:
        available = sorted(subsets) if isinstance(subsets, dict) else type(subsets).__name__
        raise TrackFileError(path, f"key 'random': no subset of size {subset_size} (available: {available})")
    entry = subsets[subset_size]
    if not isinstance(entry, dict) or "sampled_indices" not in entry:
        raise TrackFileError(path, f"key 'random'[{subset_size}]: expected a dict with 'sampled_indices'")
    sampled = np.sort(_to_numpy(entry["sampled_indices"]).reshape(-1).astype(np.int64))

    if num_video_frames is None:
        timeline = np.arange(T, dtype=np.int64)
    else:
        if num_video_frames < T:
            raise TrackFileError(
                path,
                f"the video has {num_video_frames} frames but the pickle has {T} track rows; wrong video?",
            )
        timeline = np.linspace(0, num_video_frames - 1, T).astype(np.int64)
        if T > 1 and np.any(np.diff(timeline) <= 0):
            raise TrackFileError(path, f"cannot align {T} track rows with {num_video_frames} video frames")

    result = TrackFile(
        tracks=tracks.astype(np.float32),
        visibility=vis.astype(bool),
        query_frame=query_frame.astype(np.int32),
        frame_size=frame_size,
        timeline=timeline,
        fps=fps,
        tracker=REFERENCE_TRACKER,
        params={"source": "tats_pickle", "subset_size": subset_size},
        sampled_indices=sampled,
        num_points_total=int(data["total_points"]),
        video_id=path.stem if video_id is None else video_id,
    )
    result.validate(path)
    return result
