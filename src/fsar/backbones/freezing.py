"""``FreezableBackbone``: the attributes every fsar backbone has, and freezing (no gradients, always eval)."""

from __future__ import annotations

import torch
from torch import nn


class FreezableBackbone(nn.Module):
    """Base of fsar backbones: maps frames ``[N, 3, H, W]`` to feature maps ``[N, C, h, w]``.

    Attributes: ``out_channels`` (C), ``default_normalization`` (``"imagenet" | "clip" | "none"``: the input
    statistics the weights expect) and ``frozen``. A frozen backbone has ``requires_grad=False`` everywhere,
    stays in eval mode whatever ``train()`` is asked (BatchNorm statistics and dropout never change), and its
    subclasses run their forward under ``torch.no_grad``.
    """

    out_channels: int
    default_normalization: str

    def __init__(self) -> None:
        super().__init__()
        self.frozen = False

    def freeze(self) -> FreezableBackbone:
        """Stop gradients and keep the module in eval mode from now on."""
        self.frozen = True
        for p in self.parameters():
            p.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> FreezableBackbone:
        return super().train(mode and not self.frozen)

    def grad_context(self) -> torch.autograd.grad_mode.set_grad_enabled:
        """``no_grad`` when frozen, otherwise the caller's grad mode; subclasses wrap their forward in it."""
        return torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen)
