"""``small_cnn``: a 4-block conv net trained from scratch, for the synthetic benchmark and fast CPU tests.

Each block is conv3x3 (no bias) -> BatchNorm -> ReLU -> 2x2 max-pool, so with the default 4 blocks the map shrinks
16x: 112 px -> 7x7, 64 px -> 4x4 (the "Conv-4" of few-shot image classification, Vinyals et al. 2016 / Snell et
al. 2017). ``num_blocks`` changes the depth (3 blocks: 32 px -> 4x4). ``final_relu=False`` drops the last block's
ReLU, so features can be negative: after a ReLU every channel is >= 0 and the cosine of any two pooled features is
squashed towards 1 (measured at initialisation on the demo: 0.63-0.99), which leaves a softmax over cosines or
alignment costs nearly flat.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from fsar.backbones.freezing import FreezableBackbone
from fsar.backbones.registry import BACKBONES
from fsar.backbones.weights import load_state_dict_strictly, read_state_dict_file, resolve_weights_path


class SmallCNN(FreezableBackbone):
    """Frames ``[N, 3, H, W]`` -> ``[N, out_channels, H // 16, W // 16]``.

    ``width``: channels of every block but the last; ``out_channels``: channels of the last block.
    """

    default_normalization = "none"

    def __init__(
        self,
        width: int = 64,
        out_channels: int = 128,
        in_channels: int = 3,
        num_blocks: int = 4,
        final_relu: bool = True,
    ) -> None:
        super().__init__()
        if width < 1 or out_channels < 1 or num_blocks < 1:
            raise ValueError(
                f"small_cnn: width, out_channels and num_blocks must be >= 1, got {width}, {out_channels} and "
                f"{num_blocks}"
            )
        chans = [in_channels] + [width] * (num_blocks - 1) + [out_channels]
        blocks: list[nn.Module] = []
        for k, (c_in, c_out) in enumerate(zip(chans[:-1], chans[1:])):
            blocks += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(c_out)]
            if final_relu or k < num_blocks - 1:
                blocks.append(nn.ReLU(inplace=True))
            blocks.append(nn.MaxPool2d(2))
        self.layers = nn.Sequential(*blocks)
        self.min_size = 2**num_blocks
        self.out_channels = out_channels
        self.in_channels = in_channels

    def forward(self, frames: Tensor) -> Tensor:
        if frames.dim() != 4 or frames.shape[1] != self.in_channels:
            raise ValueError(
                f"small_cnn expects frames [N, {self.in_channels}, H, W]; got {tuple(frames.shape)}"
            )
        if min(frames.shape[-2:]) < self.min_size:
            raise ValueError(
                f"small_cnn with {self.min_size.bit_length() - 1} blocks needs frames of at "
                f"least {self.min_size}x{self.min_size} pixels; got {tuple(frames.shape[-2:])}"
            )
        with self.grad_context():
            if frames.device.type == "cpu":
                # Channels-last on the CPU: oneDNN's NHWC convolutions and pooling; fp32 training of the demo's
                # 3-block net at 32 px took 89 vs 134 ms per step of 200 frames (2026-12-04, AMD Zen 3, alone).
                frames = frames.contiguous(memory_format=torch.channels_last)
                return self.layers(frames).contiguous()
            return self.layers(frames)


@BACKBONES.register("small_cnn")
def small_cnn(
    weights: str | os.PathLike[str] | None = None,
    pretrained_folder: str | os.PathLike[str] | None = None,
    width: int = 64,
    out_channels: int = 128,
    in_channels: int = 3,
    num_blocks: int = 4,
    final_relu: bool = True,
    frozen: bool = False,
) -> SmallCNN:
    """``weights``: a state dict of this module saved by ``torch.save`` / safetensors (``fsar pretrain`` writes
    one), or None."""
    model = SmallCNN(
        width=width,
        out_channels=out_channels,
        in_channels=in_channels,
        num_blocks=num_blocks,
        final_relu=final_relu,
    )
    if weights is not None:
        path = resolve_weights_path(weights, pretrained_folder)
        load_state_dict_strictly(model, read_state_dict_file(path), source=str(path))
    if frozen:
        model.freeze()
    return model
