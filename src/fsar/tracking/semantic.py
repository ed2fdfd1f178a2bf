"""Semantic query points (Trokens, Kumar et al., ICCV 2025; trokens.md section 4): clusters of a backbone's patch
features, then per cluster a peak frame and k-means query points.

For one video (uint8 frames on the tracker timeline):

1. **Clustering frames**: ``cluster_frames`` rows ``int(linspace(0, T - 1, cluster_frames))`` (unique; the original
   uses 32 frames).
2. **Patch features**: each frame resized to ``image_size`` x ``image_size`` (bilinear), scaled to [0, 1] and
   normalised (``imagenet`` statistics, as the original's offline step; ``clip``; ``none``), then the backbone
   (:func:`load_patch_encoder`; DINOv2 ViT-B/14 in the original) gives a patch grid ``[h, w, D]`` per frame.
3. **Clusters**: k-means with ``clusters`` centres (``scipy.cluster.vq.kmeans2``, k-means++ initialisation, seeded)
   on the L2-normalised patch features of all clustering frames together (cosine geometry), giving one label per
   patch and frame. *Difference from the original*: it merges tokens ToMe-style per frame (11 bipartite rounds)
   and across frames (cosine threshold 0.2), which gives a video-dependent number of clusters; fsar uses plain
   k-means with a fixed number, from a well-kept library. Empty clusters are dropped.
4. **Peak frame and points**, per cluster (in label order): the clustering frame where the cluster has the most
   patches (ties: the earliest); the cluster's patch mask on that frame is upsampled (nearest) to the video size,
   and k-means with ``points_per_cluster`` centres (seeded) on the coordinates of its pixel centres gives the query
   points: for each centre, the nearest mask pixel (duplicates removed); all pixels if the mask has at most
   ``points_per_cluster`` of them. The query frame is the peak frame's timeline row. *Difference*: the original
   queries CoTracker at the wrong frame (the rank of the peak frame among peak frames, trokens.md §4 "Bug");
   fsar uses the peak frame itself.
5. **Cluster ids**: ``Queries.cluster`` (int32, the cluster's rank among the non-empty clusters) is stored in the
   track file (``cluster_id``) for the cluster-proportional sampling at load time
   (:func:`fsar.data.trackfile.cluster_sample`).

Randomness: the k-means seeds come from the ``rng`` the caller passes (the runner uses
:func:`fsar.tracking.filtering.video_rng` with stream 2: seeded per (seed, video id)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fsar.tracking.queries import Queries

NORMALIZATIONS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}

# frames uint8 [K, H, W, 3] -> patch features float32 [K, h, w, D]
PatchEncoder = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SemanticRule:
    """Settings of the ``semantic`` query points (module docstring).

    ``backbone`` / ``weights`` / ``backbone_kwargs``: the patch-feature backbone (a name of
    :mod:`fsar.backbones`, a local weights path; ``dinov2_*`` needs weights: random ViT features carry no
    semantics). ``image_size``: square input side (224 -> a 16x16 DINOv2 grid). ``normalization``: imagenet,
    clip or none. ``cluster_frames``: frames used for clustering (32). ``clusters``: k-means centres on the patch
    features (16). ``points_per_cluster``: k-means query points per cluster (16, as the original).
    """

    backbone: str = "dinov2_vitb14"
    weights: str | None = None
    backbone_kwargs: tuple[tuple[str, Any], ...] = ()
    image_size: int = 224
    normalization: str = "imagenet"
    cluster_frames: int = 32
    clusters: int = 16
    points_per_cluster: int = 16

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"semantic queries: unknown normalization {self.normalization!r}; use one of "
                f"{', '.join(NORMALIZATIONS)}"
            )
        for name in ("image_size", "cluster_frames", "clusters", "points_per_cluster"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"semantic queries: {name} must be an integer >= 1, got {value!r}")
        if isinstance(self.backbone_kwargs, dict):
            object.__setattr__(self, "backbone_kwargs", tuple(sorted(self.backbone_kwargs.items())))

    def params(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "weights": self.weights,
            "backbone_kwargs": dict(self.backbone_kwargs),
            "image_size": int(self.image_size),
            "normalization": self.normalization,
            "cluster_frames": int(self.cluster_frames),
            "clusters": int(self.clusters),
            "points_per_cluster": int(self.points_per_cluster),
            "kmeans": "scipy.cluster.vq.kmeans2(minit='++')",
        }


def load_patch_encoder(rule: SemanticRule, device: str = "cpu") -> PatchEncoder:
    """The backbone of ``rule`` as a function ``frames uint8 [K, H, W, 3] -> float32 [K, h, w, D]`` (eval mode,
    no autograd). The backbone must map ``[K, 3, S, S]`` to a patch grid ``[K, D, h, w]``."""
    import torch
    import torch.nn.functional as F

    from fsar.backbones import create_backbone  # the patch features come from fsar's backbones

    if rule.backbone.startswith("dinov2") and not rule.weights:
        raise ValueError(
            f"semantic queries: {rule.backbone} needs local weights (--semantic-option weights=PATH); random ViT "
            "features carry no semantics and nothing is downloaded"
        )
    backbone = (
        create_backbone(rule.backbone, weights=rule.weights, **dict(rule.backbone_kwargs)).eval().to(device)
    )
    mean, std = (
        torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1) for v in NORMALIZATIONS[rule.normalization]
    )

    @torch.no_grad()
    def encode(frames: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=(rule.image_size, rule.image_size), mode="bilinear", align_corners=False)
        grid = backbone(((x - mean) / std).to(device))
        if grid.dim() != 4:
            raise ValueError(
                f"semantic queries: backbone {rule.backbone} gives {tuple(grid.shape)}, not a patch grid [K, D, h, w]"
            )
        return grid.permute(0, 2, 3, 1).float().cpu().numpy()

    return encode


def _kmeans(data: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """scipy's k-means (k-means++ init) seeded from ``rng``: (centres [k', d], labels [n])."""
    from scipy.cluster.vq import kmeans2

    seed = int(rng.integers(0, 2**32 - 1))
    centres, labels = kmeans2(data.astype(np.float64), k, minit="++", seed=np.random.default_rng(seed))
    return centres, labels


def cluster_patches(features: np.ndarray, clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Labels int64 [K, h, w] of k-means on the L2-normalised patch features ``[K, h, w, D]``, relabelled
    0..C-1 in order of first appearance (row-major over frames), empty clusters dropped."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 4:
        raise ValueError(f"patch features must be [K, h, w, D], got shape {features.shape}")
    flat = features.reshape(-1, features.shape[-1])
    flat = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)
    k = min(int(clusters), len(flat))
    _, labels = _kmeans(flat, k, rng)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))  # label -> order of first appearance
    return rank[inverse].reshape(features.shape[:3]).astype(np.int64)


def cluster_query_points(
    labels: np.ndarray,
    rows: np.ndarray,
    frame_size: tuple[int, int],
    points_per_cluster: int,
    rng: np.random.Generator,
) -> Queries:
    """Steps 4-5 of the module docstring. ``labels`` int [K, h, w] on the clustering frames at timeline ``rows``
    [K]; returns the queries (pixel centres, query frames = peak rows) with ``cluster`` ids, cluster by cluster."""
    labels = np.asarray(labels)
    rows = np.asarray(rows, dtype=np.int64)
    if labels.ndim != 3 or labels.shape[0] != rows.shape[0]:
        raise ValueError(f"labels must be [K, h, w] with K = len(rows); got {labels.shape} and {rows.shape}")
    H, W = int(frame_size[0]), int(frame_size[1])
    h, w = labels.shape[1:]
    # nearest upsampling of a patch index to pixels: pixel (y, x) -> patch (floor(y * h / H), floor(x * w / W))
    patch_y = np.minimum((np.arange(H) * h) // H, h - 1)
    patch_x = np.minimum((np.arange(W) * w) // W, w - 1)
    all_frames, all_xy, all_ids = [], [], []
    for cid in np.unique(labels):
        counts = (labels == cid).reshape(labels.shape[0], -1).sum(axis=1)
        peak = int(np.argmax(counts))  # ties: the earliest frame
        mask = (labels[peak] == cid)[patch_y[:, None], patch_x[None, :]]  # [H, W]
        ys, xs = np.nonzero(mask)
        pixels = np.stack([xs, ys], axis=1).astype(np.float64)
        if len(pixels) > points_per_cluster:
            centres, _ = _kmeans(pixels, points_per_cluster, rng)
            nearest = np.argmin(((pixels[:, None, :] - centres[None]) ** 2).sum(-1), axis=0)
            pixels = pixels[np.unique(nearest)]
        all_frames.append(np.full(len(pixels), rows[peak], dtype=np.int32))
        all_xy.append(pixels.astype(np.float32))
        all_ids.append(np.full(len(pixels), len(all_ids), dtype=np.int32))
    return Queries(
        query_frame=np.concatenate(all_frames),
        xy=np.concatenate(all_xy),
        cluster=np.concatenate(all_ids),
    )


def build_semantic_queries(
    frames: np.ndarray, encoder: PatchEncoder, rule: SemanticRule, rng: np.random.Generator
) -> Queries:
    """Semantic query points of one video's frames (uint8 [T, H, W, 3] on the tracker timeline)."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be uint8 [T, H, W, 3] RGB, got {frames.dtype} {frames.shape}")
    T, H, W = frames.shape[:3]
    rows = np.unique(np.linspace(0, T - 1, min(rule.cluster_frames, T)).astype(np.int64))
    features = np.asarray(encoder(frames[rows]), dtype=np.float32)
    if features.ndim != 4 or features.shape[0] != len(rows) or not np.isfinite(features).all():
        raise ValueError(
            f"semantic queries: the encoder must give finite patch features [{len(rows)}, h, w, D], got "
            f"{features.shape}"
        )
    labels = cluster_patches(features, rule.clusters, rng)
    return cluster_query_points(labels, rows, (H, W), rule.points_per_cluster, rng)


__all__ = [
    "NORMALIZATIONS",
    "PatchEncoder",
    "SemanticRule",
    "build_semantic_queries",
    "cluster_patches",
    "cluster_query_points",
    "load_patch_encoder",
]
