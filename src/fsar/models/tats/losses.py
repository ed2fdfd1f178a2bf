"""The TATs training loss (Kumar et al., ECCV 2024; tats.md section 5, item 4).

``L = class_weight * LS_CE(cls_logits of all support + query videos, global labels; smoothing 0.1)
    + q2s_weight * CE(few-shot logits, query labels)`` (both means over videos), with
``LS_CE = (1 - s) * NLL + s * mean_k(-log p_k)``. There is no trajectory or contrastive loss.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def label_smoothed_cross_entropy(logits: Tensor, target: Tensor, smoothing: float = 0.1) -> Tensor:
    """``(1 - s) * NLL + s * mean_k(-log softmax_k)``, mean over rows. ``logits [B, K]``, ``target [B]``."""
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1); got {smoothing}")
    return F.cross_entropy(logits, target, label_smoothing=smoothing)


def check_global_labels(global_labels: Tensor, num_classes: int) -> None:
    """Global labels must lie in ``[0, num_classes)`` (the split's base classes)."""
    bad = (global_labels < 0) | (global_labels >= num_classes)
    if bool(bad.any()):
        raise ValueError(
            f"TATs class loss: global labels must lie in [0, {num_classes}) (the training split's classes); "
            f"got {sorted(set(global_labels[bad].tolist()))}. Set num_classes to the number of training "
            "classes and make sure the batches carry global_labels"
        )


def tats_loss(
    cls_logits: Tensor,
    global_labels: Tensor,
    few_shot_logits: Tensor,
    query_labels: Tensor,
    class_weight: float = 1.0,
    q2s_weight: float = 1.0,
    smoothing: float = 0.1,
) -> Tensor:
    """The episode loss. ``cls_logits [B, C]`` with ``global_labels [B]`` (support and query videos),
    ``few_shot_logits [Q, way]`` with ``query_labels [Q]``."""
    if cls_logits.shape[0] != global_labels.shape[0]:
        raise ValueError(f"{cls_logits.shape[0]} class logits but {global_labels.shape[0]} global labels")
    check_global_labels(global_labels, cls_logits.shape[1])
    class_term = label_smoothed_cross_entropy(cls_logits, global_labels.long(), smoothing)
    q2s_term = F.cross_entropy(few_shot_logits, query_labels.long())
    return class_weight * class_term + q2s_weight * q2s_term
