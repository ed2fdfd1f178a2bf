"""Classification heads for base-class pretraining (``fsar pretrain``), and the backbone + head classifier.

A head maps per-frame features ``[B, T, C]`` (the backbone's maps, spatially mean-pooled) to class logits
``[B, K]``. Both heads keep frame order: they flatten over time instead of averaging, so the classifier can
only separate classes that differ in motion (as on the synthetic benchmark, where a single frame says nothing
about the class) if the per-frame features carry what changes from frame to frame.

- ``temporal_conv``: ``Conv1d(C, C, 3, padding=1)`` over time -> ReLU -> flatten (order kept) -> ``Linear(T*C, K)``;
- ``temporal_linear``: flatten -> ``Linear(T*C, K)``.
"""

from __future__ import annotations

from torch import Tensor, nn

HEADS = ("temporal_conv", "temporal_linear")


class TemporalHead(nn.Module):
    """``[B, T, C]`` -> logits ``[B, num_classes]``; ``kind`` is ``temporal_conv`` or ``temporal_linear``."""

    def __init__(self, kind: str, channels: int, num_frames: int, num_classes: int) -> None:
        super().__init__()
        if kind not in HEADS:
            raise ValueError(f"pretrain head must be one of {', '.join(HEADS)}; got {kind!r}")
        if min(channels, num_frames, num_classes) < 1:
            raise ValueError(
                f"head needs channels, num_frames and num_classes >= 1; got {channels}, {num_frames}, {num_classes}"
            )
        self.kind = kind
        self.channels = channels
        self.num_frames = num_frames
        self.temporal = (
            nn.Sequential(nn.Conv1d(channels, channels, kernel_size=3, padding=1), nn.ReLU())
            if kind == "temporal_conv"
            else None
        )
        self.classifier = nn.Linear(num_frames * channels, num_classes)

    def forward(self, features: Tensor) -> Tensor:
        if features.dim() != 3 or features.shape[1:] != (self.num_frames, self.channels):
            raise ValueError(
                f"{self.kind} head expects features [B, {self.num_frames}, {self.channels}]; "
                f"got {tuple(features.shape)}"
            )
        if self.temporal is not None:
            features = self.temporal(features.transpose(1, 2)).transpose(1, 2)  # Conv1d wants [B, C, T]
        return self.classifier(features.flatten(1))


class FrameClassifier(nn.Module):
    """Backbone on every frame, spatial mean-pooling, then a :class:`TemporalHead`: ``[B, T, C, H, W]`` -> ``[B, K]``."""

    def __init__(self, backbone: nn.Module, head: TemporalHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def frame_features(self, frames: Tensor) -> Tensor:
        """``[B, T, C_in, H, W]`` -> per-frame features ``[B, T, C]`` (maps mean-pooled over space)."""
        if frames.dim() != 5:
            raise ValueError(f"frames must have shape [B, T, C, H, W]; got {tuple(frames.shape)}")
        b, t = frames.shape[:2]
        out = self.backbone(frames.flatten(0, 1))
        if out.dim() == 4:
            out = out.mean(dim=(2, 3))
        elif out.dim() != 2:
            raise ValueError(
                f"the backbone must return [N, C, h, w] maps or [N, C] vectors; got {tuple(out.shape)}"
            )
        return out.reshape(b, t, -1)

    def forward(self, frames: Tensor) -> Tensor:
        return self.head(self.frame_features(frames))
