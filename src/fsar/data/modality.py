"""Input modalities built from a transformed clip.

``rgb``: the frames as they are, [T, 3, H, W].
``rgb_diff``: each frame stacked with its difference to the previous sampled frame, [T, 6, H, W] (the first
frame's difference is zero). This is TSN's RGB-difference modality (Wang et al., "Temporal Segment Networks",
ECCV 2016): a cheap motion cue that lets a per-frame backbone see which way things move. It matters on fsar's
synthetic benchmark, where appearance is random and only motion identifies a class.
"""

from __future__ import annotations

import torch

MODALITIES = {"rgb": 3, "rgb_diff": 6}


def apply_modality(frames: torch.Tensor, modality: str) -> torch.Tensor:
    """``frames`` ``[..., T, 3, H, W]`` (one clip, or a batch of clips) -> ``[..., T, C, H, W]``."""
    if modality == "rgb":
        return frames
    if modality == "rgb_diff":
        diff = torch.zeros_like(frames)
        diff[..., 1:, :, :, :] = frames[..., 1:, :, :, :] - frames[..., :-1, :, :, :]
        return torch.cat([frames, diff], dim=-3)
    raise ValueError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
