"""Build models, optimisers and schedules from a config, and pick the device."""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn

from fsar.engine.config import Config, ModelConfig, OptimConfig
from fsar.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"train.device: unknown device {name!r} (use auto, cpu, cuda, cuda:N, mps)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r} but CUDA is not available on this machine; use cpu or auto")
    return device


def _call_with_context(factory, kwargs: dict[str, Any], context: dict[str, Any], what: str):
    """Call ``factory(**kwargs)`` adding the ``context`` values that it accepts and the user did not set.

    An argument that the factory does not accept is an error naming it (nothing is silently ignored)."""
    params = inspect.signature(factory).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in kwargs if k not in params and not accepts_any]
    if unknown:
        valid = [k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
        raise ConfigError(f"{what}: unknown argument(s) {unknown}; valid: {valid}")
    full = dict(kwargs)
    for key, value in context.items():
        if key not in full and key in params:
            full[key] = value
    try:
        return factory(**full)
    except TypeError as exc:
        raise ConfigError(f"{what}: {exc}") from None


def build_backbone(model: ModelConfig) -> nn.Module:
    from fsar.backbones import BACKBONES

    factory = BACKBONES.get(model.backbone)
    kwargs = dict(model.backbone_kwargs)
    if model.backbone_weights is not None:
        kwargs["weights"] = model.backbone_weights
    return _call_with_context(factory, kwargs, {}, f"model.backbone_kwargs for {model.backbone!r}")


def build_model(
    cfg: Config,
    num_train_classes: int,
    backbone: nn.Module | None = None,
    train_class_names: list[str] | None = None,
) -> nn.Module:
    """The few-shot method of ``cfg.model`` on its backbone. Episode-shape arguments (``num_frames``, ``shot``,
    ``way``, ``num_classes``) and the train split's class names (``train_class_names``, by split label) are
    passed when the method takes them and the config does not set them."""
    from fsar.models import MODELS

    if backbone is None:
        backbone = build_backbone(cfg.model)
    factory = MODELS.get(cfg.model.name)
    context = {
        "num_frames": cfg.data.num_frames,
        "T": cfg.data.num_frames,
        "shot": cfg.episodes.shot,
        "way": cfg.episodes.way,
        "num_classes": num_train_classes,
        "train_class_names": train_class_names,
        "backbone_weights": cfg.model.backbone_weights,
    }
    return _build_method(factory, backbone, dict(cfg.model.kwargs), context, cfg.model.name)


def _build_method(factory, backbone: nn.Module, kwargs: dict, context: dict, name: str) -> nn.Module:
    target = factory
    if inspect.isclass(factory):
        target = factory.__init__
    params = dict(inspect.signature(target).parameters)
    params.pop("self", None)
    params.pop("backbone", None)

    def call(**kw):
        return factory(backbone=backbone, **kw)

    call.__signature__ = inspect.Signature(list(params.values()))  # type: ignore[attr-defined]
    return _call_with_context(call, kwargs, context, f"model.kwargs for {name!r}")


def build_optimizer(model: nn.Module, optim: OptimConfig) -> torch.optim.Optimizer:
    param_groups = getattr(model, "param_groups", None)
    if callable(param_groups):
        groups = param_groups(weight_decay=optim.weight_decay)
    else:
        groups = [
            {"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": optim.weight_decay}
        ]
    if not any(len(list(g["params"])) for g in groups):
        raise ConfigError("the model has no trainable parameters")
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum)
    if optim.name == "adam":
        return torch.optim.Adam(groups, lr=optim.lr)
    return torch.optim.AdamW(groups, lr=optim.lr)


def lr_multiplier(optim: OptimConfig, tasks_done: int, total_tasks: int) -> float:
    """The learning-rate multiplier after ``tasks_done`` training episodes."""
    warm = 1.0
    if optim.warmup_tasks > 0 and tasks_done < optim.warmup_tasks:
        if optim.warmup_start is None:
            warm = (tasks_done + 1) / optim.warmup_tasks
        else:  # linear from warmup_start at task 0 (HyRSM / MoLo: WARMUP_START_LR / BASE_LR)
            warm = optim.warmup_start + (1 - optim.warmup_start) * tasks_done / optim.warmup_tasks
    if optim.schedule == "constant":
        return warm
    if optim.schedule == "step":
        return warm * optim.gamma ** (tasks_done // optim.step_every)
    if optim.schedule == "multistep":
        factors = optim.lr_factors or [optim.gamma ** (k + 1) for k in range(len(optim.milestones))]
        passed = [f for m, f in zip(optim.milestones, factors, strict=True) if tasks_done >= m]
        return warm * (passed[-1] if passed else 1.0)
    if optim.schedule == "cosine":
        progress = min(1.0, tasks_done / max(1, total_tasks))
        return warm * 0.5 * (1 + math.cos(math.pi * progress))
    # tats: the original's per-epoch schedule over 50 "epochs" spread across the run
    from fsar.models.tats.recipe import tats_lr_multiplier

    epoch = int(50 * tasks_done / max(1, total_tasks))
    return tats_lr_multiplier(epoch)
