"""Evaluation that does each piece of work once.

The protocol evaluates thousands of episodes over a few hundred or thousand test videos; the original code bases
decode and encode every video of every episode again. In eval mode a method's ``encode`` depends on one clip only
(backbone features, TA2N's first stage, TATs' transformer tokens), so this evaluator:

1. collects the distinct videos of all episodes,
2. loads each clip once (test-mode sampling and transforms are deterministic) and encodes it in batches,
3. runs only the pairwise part (``process_support_set`` + ``forward``) per episode on the cached features.

It gives the same per-episode predictions as :func:`fsar.engine.evaluate.evaluate_naive` on the same episodes
(tested), and is much faster (see BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from fsar.data.episodes import Episode
from fsar.engine.episode_data import SplitClips
from fsar.engine.protocol import EpisodeResult
from fsar.models.base import Features, cat_features, select_features
from fsar.progress import progress_bar


@torch.no_grad()
def encode_videos(
    model: nn.Module,
    clips: SplitClips,
    video_indices: Sequence[int],
    device: torch.device,
    batch_videos: int = 32,
    progress: bool = True,
) -> Features:
    """Encode ``clips.records[i]`` for each ``i`` (in eval mode), in batches; features stay on ``device``."""
    rng = np.random.default_rng(0)  # unused by test-mode loading, which is deterministic
    parts: list[Features] = []
    with progress_bar(len(video_indices), "encode", "videos", leave=False, enabled=progress) as bar:
        for start in range(0, len(video_indices), batch_videos):
            chunk = list(video_indices[start : start + batch_videos])
            batch = clips.batch(chunk, [0] * len(chunk), train=False, rngs=[rng] * len(chunk)).to(device)
            parts.append(model.encode(batch))
            bar.update(len(chunk))
    return cat_features(parts)


@torch.no_grad()
def evaluate_cached(
    model: nn.Module,
    clips: SplitClips,
    episodes: Sequence[Episode],
    device: torch.device,
    batch_videos: int = 32,
    features: Features | None = None,
    progress: bool = True,
) -> list[EpisodeResult]:
    """Evaluate ``episodes`` with per-video features computed once (or given in ``features``, indexed by the
    split's video index)."""
    was_training = model.training
    model.eval()
    try:
        videos = sorted({v for ep in episodes for v in (*ep.support, *ep.query)})
        position = torch.full((len(clips.records),), -1, dtype=torch.long)
        if features is None:
            feats = encode_videos(model, clips, videos, device, batch_videos, progress)
            position[torch.as_tensor(videos)] = torch.arange(len(videos))
        else:
            feats = features
            position = torch.arange(len(clips.records))
        results = []
        with progress_bar(len(episodes), "episodes", "ep", leave=False, enabled=progress) as bar:
            for ep in episodes:
                s_idx = position[torch.as_tensor(ep.support)]
                q_idx = position[torch.as_tensor(ep.query)]
                support_labels = torch.as_tensor(ep.support_labels, device=device)
                query_labels = torch.as_tensor(ep.query_labels, device=device)
                logits = model.episode_logits(
                    select_features(feats, s_idx), support_labels, select_features(feats, q_idx)
                )
                pred = logits.argmax(dim=-1)
                results.append(
                    EpisodeResult(
                        episode=ep.index,
                        correct=int((pred == query_labels).sum().item()),
                        queries=len(ep.query),
                        classes=tuple(ep.classes),
                        predictions=tuple(int(p) for p in pred.tolist()),
                        labels=tuple(ep.query_labels),
                    )
                )
                bar.update(1)
        return results
    finally:
        model.train(was_training)
