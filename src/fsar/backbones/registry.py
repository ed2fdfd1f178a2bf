"""The backbone registry ``BACKBONES`` and :func:`create_backbone`."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from fsar.registry import Registry

BACKBONES: Registry[nn.Module] = Registry("backbone")


def create_backbone(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    pretrained_folder: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build backbone ``name``.

    ``weights``: None (random initialisation), a local checkpoint file or a local Hugging Face folder; a
    relative path is looked up in ``pretrained_folder`` first. Nothing is ever downloaded. Other keyword
    arguments are the backbone's options (see each factory).
    """
    return BACKBONES.create(name, weights=weights, pretrained_folder=pretrained_folder, **kwargs)
