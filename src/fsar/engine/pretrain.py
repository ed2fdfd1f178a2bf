"""Base-class pretraining of the backbone: ``fsar pretrain CONFIG --out DIR``.

A small CNN meta-trained from scratch for a few hundred episodes learns little; the published recipes start from
ImageNet or DINOv2 weights instead. This is the same idea on the benchmark's own training classes: the backbone of
``model.backbone`` / ``model.backbone_kwargs`` (continuing from ``model.backbone_weights`` when set) and a head that
sees frame order (:mod:`fsar.engine.pretrain_heads`) are trained to classify the train split's videos, so the
per-frame features must carry motion. Every few-shot method then starts from these weights with
``model.backbone_weights=DIR/backbone.safetensors``.

Training: ``pretrain.epochs`` passes over a seeded permutation of the train videos (one per epoch), batches of
``pretrain.batch_videos`` clips loaded in ``data.workers`` processes with train-time sampling and augmentation, each
clip's random choices drawn from a generator seeded with ``(pretrain.seed, epoch, video index)`` (so the worker
count never changes the result); AdamW with a one-cycle schedule (linear warm-up over ``pretrain.warmup_fraction``
of the steps, then cosine to 0); cross-entropy with ``pretrain.label_smoothing``; optional bf16 autocast. The same
config and seed give the same weights. **The final epoch's weights are the result**: nothing is selected.

At the end the frozen backbone (eval mode) is measured on ``pretrain.val_episodes`` 5-way 1-shot episodes of the
**val** split, one query per class: cosine ProtoNet on time-averaged features and OTAM on per-frame features. These
numbers are reported only; they choose nothing.

Outputs in ``DIR``, each written atomically, ``pretrain.json`` last (it marks the run as finished):
``backbone.safetensors`` (the backbone's state dict), ``head.safetensors``, ``config.yaml``, ``pretrain_log.csv``
(one row per epoch) and ``pretrain.json`` (config, the key compared on reuse, per-epoch rows, val accuracies,
seconds, classes, videos). A finished folder made with the same pretraining inputs is reused as it is; one made
with different inputs is an error naming the keys that differ, unless ``force``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fsar.data.episodes import EpisodeSampler
from fsar.data.keys import diff_keys, write_json_atomic
from fsar.engine.build import build_backbone, resolve_device
from fsar.engine.cached_eval import encode_videos, evaluate_cached
from fsar.engine.config import Config
from fsar.engine.episode_data import SplitClips, loader_generator, pin_memory_for
from fsar.engine.evaluate import accuracies
from fsar.engine.pretrain_heads import FrameClassifier, TemporalHead
from fsar.engine.protocol import summarize_accuracies
from fsar.engine.run_logging import RunLogger
from fsar.errors import ConfigError, EpisodeError, FsarError
from fsar.procs import loader_worker_init
from fsar.progress import progress_bar

BACKBONE_FILE = "backbone.safetensors"
HEAD_FILE = "head.safetensors"
SUMMARY_FILE = "pretrain.json"
VAL_WAY, VAL_SHOT, VAL_QUERIES = 5, 1, 1
# data keys that change how fast clips load, not which clips: not part of the reuse key
_SPEED_ONLY_DATA_KEYS = ("workers", "cache_clips")


def one_cycle_multiplier(step: int, total_steps: int, warmup_fraction: float) -> float:
    """Learning-rate multiplier of optimiser step ``step`` (0-based) of ``total_steps``: linear warm-up over the
    first ``round(warmup_fraction * total_steps)`` steps up to 1, then a cosine decay towards 0."""
    warmup = round(warmup_fraction * total_steps)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def pretrain_key(cfg: Config) -> dict:
    """What the pretrained weights depend on: the data (except loading speed), the backbone and ``pretrain``."""
    data = {k: v for k, v in dataclasses.asdict(cfg.data).items() if k not in _SPEED_ONLY_DATA_KEYS}
    model = {
        "backbone": cfg.model.backbone,
        "backbone_kwargs": dict(cfg.model.backbone_kwargs),
        "backbone_weights": cfg.model.backbone_weights,
    }
    return {"data": data, "model": model, "pretrain": dataclasses.asdict(cfg.pretrain)}


def video_rng(seed: int, epoch: int, video: int) -> np.random.Generator:
    """The generator of one clip's random choices (frame jitter, crop, flip) in one epoch."""
    return np.random.default_rng([int(seed), int(epoch), int(video)])


def epoch_order(seed: int, epoch: int, num_videos: int) -> np.ndarray:
    """The seeded order in which an epoch visits the train videos."""
    return np.random.default_rng([int(seed), int(epoch), num_videos, 0x5E]).permutation(num_videos)


class PretrainVideos(Dataset):
    """Item ``(epoch, video)``: the train-mode clip of ``clips.records[video]`` in that epoch, as
    ``(frames [T, C, H, W], class index)``; ``class_index`` maps split labels to ``0..K-1``."""

    def __init__(self, clips: SplitClips, class_index: dict[int, int], seed: int) -> None:
        self.clips, self.class_index, self.seed = clips, class_index, seed

    def __len__(self) -> int:
        return len(self.clips.records)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, video = item
        record = self.clips.records[video]
        loaded = self.clips.load_video(record, True, video_rng(self.seed, epoch, video))
        return loaded.frames, self.class_index[int(record.label)]


def batch_plan(num_videos: int, batch_videos: int, epochs: int, seed: int) -> list[list[tuple[int, int]]]:
    """Every optimiser step's ``(epoch, video)`` items: each epoch a fresh permutation cut into batches (the last
    one may be smaller); no batch spans two epochs."""
    plan = []
    for epoch in range(epochs):
        order = epoch_order(seed, epoch, num_videos).tolist()
        plan += [
            [(epoch, v) for v in order[i : i + batch_videos]] for i in range(0, num_videos, batch_videos)
        ]
    return plan


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _save_safetensors(path: Path, module: nn.Module, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _finished(out: Path) -> bool:
    return all((out / name).is_file() for name in (SUMMARY_FILE, BACKBONE_FILE, HEAD_FILE))


def _reuse(cfg: Config, out: Path, log: Callable[..., None]) -> dict:
    """The summary of the finished pretrain in ``out`` when it was made with ``cfg``'s inputs; an error naming
    the differing keys otherwise."""
    try:
        previous = json.loads((out / SUMMARY_FILE).read_text())
        have = previous["key"]
    except (ValueError, KeyError, TypeError) as exc:
        raise FsarError(
            f"{out / SUMMARY_FILE}: unreadable ({exc}); use --force to redo the pretraining"
        ) from None
    diffs = diff_keys(have, pretrain_key(cfg), have_name=str(out), want_name="this config")
    if diffs:
        raise FsarError(
            f"{out} holds a finished pretrain made with a different config ({'; '.join(diffs)}); "
            "use --force to overwrite it, or another --out"
        )
    log(f"{out} already holds a finished pretrain with the same config; reusing {out / BACKBONE_FILE}")
    return previous | {"reused": True, "out": str(out)}


def frozen_feature_accuracy(
    backbone: nn.Module,
    clips: SplitClips,
    episodes: int,
    seed: int,
    device: torch.device,
    precision: str,
    batch_videos: int,
) -> dict:
    """5-way 1-shot accuracy (one query per class) of the frozen ``backbone`` on ``episodes`` episodes of
    ``clips``: cosine ProtoNet on time-averaged features and OTAM on per-frame features. Every video is encoded
    once (eval mode). Returns ``{"protonet": summary, "otam": summary}``, or ``{"skipped": reason}`` when the split
    cannot make such episodes."""
    from fsar.models import MODELS

    try:
        eps = EpisodeSampler(clips.labels, VAL_WAY, VAL_SHOT, VAL_QUERIES, seed=seed).take(episodes)
    except EpisodeError as exc:
        return {"skipped": str(exc)}
    otam = MODELS.create("otam", backbone=backbone).to(device).eval()
    protonet = MODELS.create("protonet", backbone=backbone, metric="cosine").to(device).eval()
    with _autocast(device, precision):
        # per-frame features [N, T, C] of every video of the split, in split order
        frames = encode_videos(otam, clips, range(len(clips.records)), device, batch_videos).float()
    out = {}
    for name, model, feats in (("protonet", protonet, frames.mean(dim=1)), ("otam", otam, frames)):
        results = evaluate_cached(model, clips, eps, device, features=feats)
        out[name] = summarize_accuracies(accuracies(results)).to_dict()
    return out


def pretrain_backbone(
    cfg: Config,
    out_dir: str | Path,
    log: Callable[..., None] = print,
    force: bool = False,
    clips: dict[str, SplitClips] | None = None,
) -> dict:
    """Pretrain ``cfg``'s backbone on its train split's classes into ``out_dir`` (see the module docstring) and
    return the summary (also in ``out_dir/pretrain.json``; ``reused`` says whether an earlier result was kept).
    The final epoch's weights are the result; the val accuracies are reported, not used for selection.
    ``clips``: pre-built splits (tests, notebooks); default: from ``cfg.data``."""
    pre = cfg.pretrain
    out = Path(out_dir)
    if _finished(out) and not force:
        return _reuse(cfg, out, log)
    if cfg.data.feature_cache:
        raise ConfigError(
            "data.feature_cache is set: pretraining trains the backbone, it needs pixels; unset it"
        )
    out.mkdir(parents=True, exist_ok=True)
    # until the new run finishes, the folder is not a finished one
    (out / SUMMARY_FILE).unlink(missing_ok=True)
    device = resolve_device(cfg.train.device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    splits = ("train", "val") if pre.val_episodes > 0 else ("train",)
    if clips is None:
        from fsar.engine.data_setup import build_split_clips

        clips = build_split_clips(cfg.data, splits, run_dir=out)
    train = clips["train"]
    for name in splits:
        if clips[name].skipped:
            log(f"{name}: {len(clips[name].skipped)} missing videos left out (listed in skipped_{name}.txt)")
    classes = sorted(set(train.labels))
    if len(classes) < 2 or len(train.records) < 2:
        raise FsarError(
            f"train split: pretraining needs at least 2 classes and 2 videos; got {len(classes)} and "
            f"{len(train.records)}"
        )

    torch.manual_seed(pre.seed)  # backbone and head initialisation
    backbone = build_backbone(cfg.model)
    if not any(p.requires_grad for p in backbone.parameters()):
        raise ConfigError(
            f"model.backbone {cfg.model.backbone!r} is frozen (no trainable parameters): nothing to pretrain; "
            "remove `frozen` from model.backbone_kwargs"
        )
    channels = getattr(backbone, "out_channels", None)
    if not isinstance(channels, int):
        raise ConfigError(
            f"model.backbone {cfg.model.backbone!r} has no integer `out_channels`; cannot size the head"
        )
    head = TemporalHead(pre.head, channels, cfg.data.num_frames, len(classes))
    model = FrameClassifier(backbone, head).to(device)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=pre.lr, weight_decay=pre.weight_decay
    )

    dataset = PretrainVideos(train, {c: i for i, c in enumerate(classes)}, pre.seed)
    plan = batch_plan(len(dataset), pre.batch_videos, pre.epochs, pre.seed)
    steps_per_epoch = len(plan) // pre.epochs
    loader = DataLoader(
        dataset,
        batch_sampler=plan,
        num_workers=cfg.data.workers,
        prefetch_factor=2 if cfg.data.workers > 0 else None,
        pin_memory=pin_memory_for(device),
        worker_init_fn=loader_worker_init,  # workers die with this process (fsar.procs)
        generator=loader_generator(pre.seed),  # never the global generator
    )
    logger = RunLogger(out, tensorboard=False)
    logger.rewrite("pretrain_log", [])
    log(
        f"pretraining {cfg.model.backbone} + {pre.head} head on {len(dataset)} train videos of {len(classes)} "
        f"classes for {pre.epochs} epochs ({len(plan)} steps of {pre.batch_videos} videos) on {device}"
    )
    rows: list[dict] = []
    totals = [0.0, 0, 0]  # loss sum over batches, correct, videos (this epoch)
    start = epoch_start = time.perf_counter()
    model.train()
    bar = progress_bar(len(plan), "pretrain", "steps")
    for step, (frames, labels) in enumerate(loader):
        lr = pre.lr * one_cycle_multiplier(step, len(plan), pre.warmup_fraction)
        for group in optimizer.param_groups:
            group["lr"] = lr
        frames = frames.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        with _autocast(device, pre.precision):
            logits = model(frames)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=pre.label_smoothing)
        if not torch.isfinite(loss):
            raise FsarError(f"non-finite pretraining loss {loss.item()} at step {step}; lower pretrain.lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = float(loss.detach())
        totals[0] += loss_value * len(labels)
        totals[1] += int((logits.argmax(-1) == labels).sum())
        totals[2] += len(labels)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}")
        if (step + 1) % steps_per_epoch:
            continue
        seconds = time.perf_counter() - epoch_start
        row = {
            "epoch": (step + 1) // steps_per_epoch,
            "loss": totals[0] / totals[2],
            "train_acc": 100.0 * totals[1] / totals[2],
            "lr": lr,
            "videos_per_s": totals[2] / max(1e-9, seconds),
            "seconds": seconds,
        }
        rows.append(row)
        logger.log("pretrain_log", row, row["epoch"])
        log(
            f"epoch {row['epoch']}/{pre.epochs}: loss {row['loss']:.4f}, train accuracy {row['train_acc']:.1f}%, "
            f"lr {lr:.2e}, {row['videos_per_s']:.1f} videos/s"
        )
        totals = [0.0, 0, 0]
        epoch_start = time.perf_counter()
    bar.close()
    train_seconds = time.perf_counter() - start

    val: dict = {}
    if pre.val_episodes > 0:
        val = frozen_feature_accuracy(
            backbone, clips["val"], pre.val_episodes, pre.seed + 1, device, pre.precision, pre.batch_videos
        )
        if "skipped" in val:
            log(f"val few-shot check skipped: {val['skipped']}")
        else:
            log(
                f"val, frozen features, {pre.val_episodes} {VAL_WAY}-way {VAL_SHOT}-shot episodes (reported, not "
                f"used for selection): ProtoNet {val['protonet']['mean']:.2f} ± {val['protonet']['ci95']:.2f}, "
                f"OTAM {val['otam']['mean']:.2f} ± {val['otam']['ci95']:.2f}"
            )

    meta = {"backbone": cfg.model.backbone, "backbone_kwargs": json.dumps(cfg.model.backbone_kwargs)}
    _save_safetensors(out / BACKBONE_FILE, backbone, meta)
    _save_safetensors(out / HEAD_FILE, head, meta | {"head": pre.head, "num_classes": str(len(classes))})
    _write_text_atomic(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    summary = {
        "config": cfg.to_dict(),
        "key": pretrain_key(cfg),
        "backbone_weights": str(out / BACKBONE_FILE),
        "head_weights": str(out / HEAD_FILE),
        "num_classes": len(classes),
        "videos": len(dataset),
        "steps": len(plan),
        "device": str(device),
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - start,
        "epochs": rows,
        "val": val,
    }
    write_json_atomic(out / SUMMARY_FILE, summary, indent=2)
    return summary | {"reused": False, "out": str(out)}
