"""Shared helpers of the TA2N tests (small sizes only)."""

from __future__ import annotations

import torch

from fsar.models.ta2n import TA2N


def randomise_final_layers(model: TA2N, seed: int = 0) -> None:
    """Give TTM's and ACM's zero-initialised final layers random values (else theta is constant and o = 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in (model.ttm.fc2 if model.ttm else None, model.acm.offset_net.fc2 if model.acm else None):
            if layer is None:
                continue
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g, dtype=layer.weight.dtype) * 0.5)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g, dtype=layer.bias.dtype) * 0.3)


def episode(
    n: int, shot: int, m: int, c: int, t: int = 8, h: int = 7, w: int = 7, seed: int = 0, dtype=torch.float64
):
    g = torch.Generator().manual_seed(seed)
    support = torch.randn(n * shot, c, t, h, w, generator=g, dtype=dtype)
    query = torch.randn(m, c, t, h, w, generator=g, dtype=dtype)
    return support, query


def assert_grads_close(
    a: torch.Tensor | None, b: torch.Tensor | None, name: str, rtol: float = 1e-4, atol: float = 1e-10
) -> None:
    """Relative to the gradient's own scale, plus a small absolute floor for float64 round-off (e.g. the
    gradient of a conv bias followed by a train-mode BatchNorm is mathematically zero, numerically ~1e-14)."""
    if a is None or b is None:
        assert a is None and b is None or (a if a is not None else b).abs().max() == 0, name
        return
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-12)
    err = float((a - b).abs().max())
    assert err <= rtol * scale + atol, f"{name}: max |diff| {err:.3g} > {rtol} * {scale:.3g} + {atol}"
