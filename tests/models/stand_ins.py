"""Small stand-ins shared by the classifier tests: a one-conv backbone and random clip batches."""

import torch
from torch import nn

from fsar.data.batch import ClipBatch


class StandInBackbone(nn.Module):
    """Frames [N, 3, 32, 32] -> maps [N, channels, 4, 4] (one strided conv)."""

    default_normalization = "none"

    def __init__(self, channels: int):
        super().__init__()
        self.out_channels = channels
        self.conv = nn.Conv2d(3, channels, 8, stride=8)

    def forward(self, frames):
        return self.conv(frames)


def random_batch(labels, seed: int, t: int = 8) -> ClipBatch:
    """Random 32x32 clips of ``t`` frames with these labels (``seed`` fixes the pixels)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.as_tensor(labels)
    frames = torch.rand(len(labels), t, 3, 32, 32, generator=g)
    video_ids = [f"v{i}" for i in range(len(labels))]
    return ClipBatch(frames=frames, labels=labels, global_labels=labels.clone(), video_ids=video_ids)
