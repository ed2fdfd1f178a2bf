"""Small models and random inputs shared by the TATs tests (seeded generators only)."""

from __future__ import annotations

import torch

from fsar.models.tats import TATs

B, T, G, N, D, HEADS, CLASSES = 2, 4, 4, 12, 32, 4, 5


def make_inputs(seed: int = 0, b: int = B, t: int = T, g: int = G, n: int = N, d: int = D):
    """Features [b,t,g,g,d], tracks [b,t,n,2] in [-1.1, 1.1], query mask with random query frames.

    The first 3 points of each video exist from frame 0; the others start at a random frame in 0..t-2.
    """
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(b, t, g, g, d, generator=gen)
    tracks = torch.rand(b, t, n, 2, generator=gen) * 2.2 - 1.1
    query_frame = torch.randint(0, t - 1, (b, n), generator=gen)
    query_frame[:, :3] = 0
    query_mask = torch.arange(t).view(1, t, 1) >= query_frame.view(b, 1, n)
    return features, tracks, query_mask


def build_model(**overrides) -> TATs:
    """A small TATs in eval mode; keyword arguments override the small defaults."""
    kwargs = dict(feat_dim=D, num_frames=T, num_points=N, num_classes=CLASSES, num_heads=HEADS, grid_size=G)
    kwargs.update(overrides)
    return TATs(**kwargs).eval()
