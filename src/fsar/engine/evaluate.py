"""Episode-by-episode evaluation (every video of every episode is encoded afresh, as the original code bases do)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from fsar.data.batch import ClipBatch
from fsar.data.episodes import Episode
from fsar.engine.episode_data import to_device
from fsar.engine.protocol import EpisodeResult


@torch.no_grad()
def evaluate_episode(
    model: nn.Module, episode: Episode, support: ClipBatch, query: ClipBatch, device: torch.device
) -> EpisodeResult:
    support, query = to_device(support, device), to_device(query, device)
    s_feat = model.encode(support)
    q_feat = model.encode(query)
    logits = model.episode_logits(s_feat, support.labels, q_feat)
    pred = logits.argmax(dim=-1)
    return EpisodeResult(
        episode=episode.index,
        correct=int((pred == query.labels).sum().item()),
        queries=int(query.labels.numel()),
        classes=tuple(episode.classes),
        predictions=tuple(int(p) for p in pred.tolist()),
        labels=tuple(int(x) for x in query.labels.tolist()),
    )


def evaluate_naive(
    model: nn.Module,
    batches: Iterable[tuple[Episode, ClipBatch, ClipBatch]],
    device: torch.device,
    progress=None,
) -> list[EpisodeResult]:
    """Evaluate each ``(episode, support, query)`` in eval mode; restores the model's mode afterwards."""
    was_training = model.training
    model.eval()
    results: list[EpisodeResult] = []
    try:
        for episode, support, query in batches:
            results.append(evaluate_episode(model, episode, support, query, device))
            if progress is not None:
                progress.update(1)
    finally:
        model.train(was_training)
    return results


def accuracies(results: Sequence[EpisodeResult]) -> list[float]:
    return [r.accuracy for r in results]
