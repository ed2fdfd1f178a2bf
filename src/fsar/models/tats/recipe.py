"""The TATs optimisation recipe: AdamW parameter groups and the per-epoch learning-rate schedule.

Kumar et al., ECCV 2024; values from the reference configs (tats.md section 6): AdamW, betas (0.9, 0.999),
weight decay 0.5, base LR 1e-4, linear warm-up from 1e-6 over 5 epochs, LR x0.1 at epochs 20 and 40,
50 epochs, the LR set once at the start of each epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

POSITIONAL_NAMES = ("cls_token", "space_pos", "time_pos")
_NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)


def tats_param_groups(
    model: nn.Module, weight_decay: float = 0.5, faithful: bool = True
) -> list[dict[str, Any]]:
    """Two AdamW groups ``[{"params": decayed, "weight_decay": wd}, {"params": not decayed, "weight_decay": 0}]``.

    Only parameters with ``requires_grad`` are included (a frozen backbone is left out).

    - ``faithful=True`` (the reference): decay everything except parameters named ``cls_token`` (the only
      name of the reference's ``no_weight_decay()`` that matches a real parameter). Biases, LayerNorms and
      positional embeddings are decayed with 0.5.
    - ``faithful=False``: no decay on biases and any other 1-d parameter, normalisation layers
      (LayerNorm/GroupNorm/BatchNorm) and the learned embeddings ``cls_token``, ``space_pos``, ``time_pos``.
    """
    norm_params = {id(p) for m in model.modules() if isinstance(m, _NORM_TYPES) for p in m.parameters()}
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        leaf = name.rsplit(".", 1)[-1]
        if faithful:
            skip = leaf == "cls_token"
        else:
            skip = leaf in POSITIONAL_NAMES or param.ndim <= 1 or id(param) in norm_params
        (no_decay if skip else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def tats_lr(
    epoch: float,
    base_lr: float = 1e-4,
    warmup_epochs: float = 5,
    warmup_start_lr: float = 1e-6,
    steps: Sequence[float] = (0, 20, 40),
    multipliers: Sequence[float] = (1.0, 0.1, 0.01),
    max_epoch: float = 50,
) -> float:
    """Learning rate at ``epoch`` (0-based): steps with relative LRs and a linear warm-up.

    ``lr(e) = base_lr * multipliers[k]`` with ``k`` the last step ``<= e``; during ``e < warmup_epochs``
    it is ``warmup_start_lr + (lr(warmup_epochs) - warmup_start_lr) * e / warmup_epochs``. Defaults give
    1e-6, 2.08e-5, 4.06e-5, 6.04e-5, 8.02e-5 for epochs 0-4, 1e-4 for 5-19, 1e-5 for 20-39, 1e-6 for 40-49.
    """
    if len(steps) != len(multipliers) or not steps or steps[0] != 0:
        raise ValueError(f"steps {list(steps)} must start at 0 and match multipliers {list(multipliers)}")
    if not 0 <= epoch < max_epoch:
        raise ValueError(f"epoch {epoch} is outside the schedule [0, {max_epoch})")

    def stepped(e: float) -> float:
        k = max(i for i, s in enumerate(steps) if s <= e)
        return base_lr * multipliers[k]

    if epoch < warmup_epochs:
        target = stepped(warmup_epochs)
        return warmup_start_lr + (target - warmup_start_lr) * epoch / warmup_epochs
    return stepped(epoch)


def tats_lr_lambda(epoch: float, base_lr: float = 1e-4, **schedule: Any) -> float:
    """``tats_lr(epoch) / base_lr``: the multiplier for ``torch.optim.lr_scheduler.LambdaLR`` (stepped per epoch)."""
    return tats_lr(epoch, base_lr=base_lr, **schedule) / base_lr


tats_lr_multiplier = tats_lr_lambda  # the name used by fsar.engine.build.lr_multiplier (schedule "tats")
