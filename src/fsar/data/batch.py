"""The tensors of a set of clips, as they enter a model."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor


@dataclass
class ClipBatch:
    """A batch of B clips of T frames.

    frames:        [B, T, 3, H, W] float, already transformed and normalised.
    labels:        [B] long. Episode-local labels (0..way-1) inside an episode.
    global_labels: [B] long. Class index within the split (0..num_classes-1), or -1 if unknown.
    video_ids:     B strings naming the videos (for logs and caches).
    class_names:   B strings: each clip's class as its split file names it (``global_labels`` indexes the split's
                   class list); empty when unknown. Methods that read class names (CLIP-FSAR's text prompts)
                   use it; the others ignore it.
    tracks:        [B, T, N, 2] float, point positions (x, y) in [-1, 1] (TATs), or None.
    query_mask:    [B, T, N] bool, True where the point exists (frame >= its query frame), or None.
    visibility:    [B, T, N] bool, tracker visibility, or None.
    short:         [B] bool, True where the video had fewer than T frames (last frame repeated), or None.
    """

    frames: Tensor
    labels: Tensor
    global_labels: Tensor
    video_ids: list[str] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    tracks: Tensor | None = None
    query_mask: Tensor | None = None
    visibility: Tensor | None = None
    short: Tensor | None = None

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ClipBatch:
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                changes[f.name] = value.to(device, non_blocking=non_blocking)
        return replace(self, **changes)

    def pin_memory(self) -> ClipBatch:
        """A copy with every tensor in page-locked memory (``DataLoader(pin_memory=True)`` calls this), so that
        ``.to("cuda", non_blocking=True)`` overlaps the copy with compute. Needs an accelerator."""
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                changes[f.name] = value.pin_memory()
        return replace(self, **changes)

    def select(self, index: Tensor | list[int]) -> ClipBatch:
        """Rows ``index`` of every tensor (and of ``video_ids`` and ``class_names``)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                changes[f.name] = value.index_select(0, idx.to(value.device))
        changes["video_ids"] = [self.video_ids[i] for i in idx.tolist()] if self.video_ids else []
        changes["class_names"] = [self.class_names[i] for i in idx.tolist()] if self.class_names else []
        return replace(self, **changes)

    @staticmethod
    def cat(batches: list[ClipBatch]) -> ClipBatch:
        """Concatenate batches along the clip axis."""
        if not batches:
            raise ValueError("ClipBatch.cat needs at least one batch")
        out = {}
        for f in fields(ClipBatch):
            values = [getattr(b, f.name) for b in batches]
            if f.name == "video_ids":
                out[f.name] = [v for vs in values for v in vs]
            elif f.name == "class_names":
                if any(values) and not all(values):
                    raise ValueError("cannot concatenate ClipBatch: 'class_names' is missing in some batches")
                out[f.name] = [v for vs in values for v in vs]
            elif all(v is None for v in values):
                out[f.name] = None
            elif any(v is None for v in values):
                raise ValueError(f"cannot concatenate ClipBatch: {f.name!r} is missing in some batches")
            else:
                out[f.name] = torch.cat(values, dim=0)
        return ClipBatch(**out)
