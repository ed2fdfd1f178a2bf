"""Strict YAML configuration for training and evaluation.

A config file has the sections ``data``, ``episodes``, ``model``, ``optim``, ``train``, ``eval`` and ``pretrain``
(all optional; every key has a default). Unknown keys are errors that name the key, the file and the valid keys: nothing is
silently ignored. Command-line overrides use dotted keys, ``train.tasks=2000 model.kwargs.metric=l2``, with values
parsed as YAML.

A config may start with ``base: other.yaml`` (a path relative to the file, or a preset name) whose values it
overrides section by section.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fsar.errors import ConfigError

PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"


@dataclass
class DataConfig:
    """Which videos, and how clips are made from them."""

    benchmark: str = "synthetic"
    root: str | None = None  # videos root; for `synthetic`, the `fsar synth --out` folder
    splits: str | None = None  # folder holding trainlistNN.txt etc.; derived for `synthetic`
    split_id: str | None = None  # NN of the split files when several are present
    num_frames: int = 8
    frame_sampler: str = "uniform"  # uniform | ta2n | segment
    resize_short: int | None = 256
    resize_to: list[int] | None = None  # [H, W]: resize without keeping the aspect ratio (TATs)
    crop: int | None = 224
    flip: bool | None = None  # None: the benchmark's default (never for SSv2)
    normalization: str = "imagenet"  # imagenet | clip | none
    rand_augment: bool = False  # photometric RandAugment drawn once per training video (TATs)
    augment_on: str = "loader"  # loader | device: where RandAugment, resize, crop, flip, normalisation run
    modality: str = "rgb"  # rgb | rgb_diff (frames + differences to the previous frame: 6 channels)
    tracks: str | None = None  # folder of track files (TATs), mirroring the video layout
    num_points: int = 256
    point_sampling: str = (
        "fixed"  # fixed (the track file's subset, TATs) | cluster (Trokens, per load; needs cluster ids)
    )
    workers: int = 0  # data-loading worker processes
    feature_cache: str | None = None  # folder from `fsar extract-features` (frozen backbones)
    cache_clips: int = 0  # decoded clips kept in memory per process (pays off with deterministic sampling)
    twins: str | None = None  # JSON {class: reversed-order twin class}; synthetic: the benchmark's meta.json
    clip_store: str | None = None  # folder from `fsar data prepare`: pre-decoded clips, no decoding at all
    allow_missing: bool = False  # skip videos missing from disk (listed in the run folder) instead of failing


@dataclass
class EpisodeConfig:
    way: int = 5
    shot: int = 1
    train_queries: int = 5  # per class
    test_queries: int = 1  # per class, validation and test


@dataclass
class ModelConfig:
    name: str = "protonet"
    backbone: str = "small_cnn"
    backbone_weights: str | None = None  # local file or Hugging Face folder; never downloaded
    require_weights: bool = False  # refuse to start without backbone_weights (presets of pretrained recipes)
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)  # the method's constructor arguments


@dataclass
class OptimConfig:
    name: str = "adam"  # sgd | adam | adamw
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    schedule: str = "constant"  # constant | step | multistep | cosine | tats
    step_every: int = 1000  # tasks, for `step`
    gamma: float = 0.1  # for `step`, and `multistep` without lr_factors (gamma ** k after the k-th milestone)
    milestones: list[int] = field(default_factory=list)  # tasks, for `multistep` (increasing)
    lr_factors: list[float] = field(default_factory=list)  # `multistep`: lr multiplier from each milestone on
    warmup_tasks: int = 0
    warmup_start: float | None = None  # multiplier at task 0 of the linear warm-up (None: 1 / warmup_tasks)
    grad_clip: float | None = None


@dataclass
class TrainConfig:
    tasks: int = 2000  # training episodes
    tasks_per_update: int = 1  # episodes whose gradients are accumulated per optimiser step
    val_every: int = 500  # tasks
    val_episodes: int = 500
    log_every: int = 50
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "fp32"  # fp32 | bf16 | fp16
    select_on: str = "val"  # val | test (test only to reproduce the originals' optimistic protocol)
    threads: int | None = None  # torch intra-op threads on CPU
    checkpoint_every: int | None = None  # tasks between `last.pt` saves (default: val_every)
    tensorboard: bool = True
    wandb: bool = False  # needs the optional extra `fsar[wandb]`
    find_unused_parameters: bool = False  # DDP: set for methods with parameters unused in some episodes


@dataclass
class EvalConfig:
    split: str = "test"
    episodes: int = 10_000
    episode_file: str | None = None  # fixed episodes (created on first use when it does not exist)
    seed: int = 1234
    batch_videos: int = 32  # videos per batch for the per-video (cached) part
    order_episodes: int = (
        1000  # order episodes (two twin pairs each) reported beside the standard ones; 0: off
    )
    mode: str = "cached"  # cached: encode each video once | naive: re-encode every episode's videos


@dataclass
class PretrainConfig:
    """``fsar pretrain``: supervised classification of the train split's classes to initialise the backbone."""

    epochs: int = 15
    batch_videos: int = 32
    lr: float = 2e-3  # AdamW
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.15  # one-cycle: linear warm-up over this part of the steps, then cosine to 0
    head: str = "temporal_conv"  # temporal_conv | temporal_linear (both see frame order)
    label_smoothing: float = 0.0
    seed: int = 0
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    val_episodes: int = 300  # frozen-feature 5-way 1-shot episodes on the val split at the end; 0: none


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    episodes: EpisodeConfig = field(default_factory=EpisodeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    name: str = "run"
    notes: str = ""  # where the recipe's numbers come from

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _type_ok(value: Any, annotation: Any) -> tuple[bool, Any]:
    """Check (and lightly coerce) ``value`` against a field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            ok, coerced = _type_ok(value, arg)
            if ok:
                return True, coerced
        return False, value
    if annotation is type(None):
        return value is None, value
    if annotation is Any:
        return True, value
    if origin is list:
        return isinstance(value, list), value
    if origin is dict:
        return isinstance(value, dict), value
    if annotation is float:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, (int, float)):
            return True, float(value)
        return False, value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is str:
        return isinstance(value, str), value
    return isinstance(value, annotation), value


def _build(cls: type, values: dict[str, Any], where: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields_by_name = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields_by_name:
            valid = ", ".join(sorted(fields_by_name))
            raise ConfigError(f"{source}: unknown key {where}{key!r}; valid keys here: {valid}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {where}{key} must be a mapping, got {value!r}")
            kwargs[key] = _build(hint, value, f"{where}{key}.", source)
            continue
        ok, coerced = _type_ok(value, hint)
        if not ok:
            type_name = getattr(hint, "__name__", str(hint))
            raise ConfigError(f"{source}: {where}{key} must be {type_name}, got {value!r}")
        kwargs[key] = coerced
    return cls(**kwargs)


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if (
            isinstance(value, dict)
            and isinstance(out.get(key), dict)
            and key not in ("kwargs", "backbone_kwargs")
        ):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_config_path(path_or_preset: str | Path) -> Path:
    """A config file path, or the name of a preset shipped with fsar (``ta2n_ucf101_1shot``)."""
    p = Path(path_or_preset)
    if p.is_file():
        return p
    candidate = PRESETS_DIR / (p.name if p.suffix else f"{p.name}.yaml")
    if candidate.is_file():
        return candidate
    available = ", ".join(sorted(x.stem for x in PRESETS_DIR.glob("*.yaml")))
    raise ConfigError(f"{path_or_preset}: no such config file or preset; presets: {available}")


def _load_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        raise ConfigError(f"{path}: circular `base:` chain {' -> '.join(map(str, seen + (path,)))}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of sections")
    base = raw.pop("base", None)
    if base is not None:
        base_path = path.parent / base if (path.parent / str(base)).is_file() else resolve_config_path(base)
        raw = _deep_merge(_load_raw(base_path, seen + (path,)), raw)
    return raw


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, value = text.split("=", 1)
    try:
        parsed = yaml.safe_load(value) if value != "" else None
    except yaml.YAMLError:
        parsed = value
    return key.strip().split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    raw = _deep_merge(raw, {})
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for k in keys[:-1]:
            nxt = node.get(k)
            if not isinstance(nxt, dict):
                nxt = {}
                node[k] = nxt
            node = nxt
        node[keys[-1]] = value
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a config file (or the defaults when ``path`` is None) and apply ``key=value`` overrides."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        resolved = resolve_config_path(path)
        raw = _load_raw(resolved)
        source = str(resolved)
    if overrides:
        raw = apply_overrides(raw, overrides)
        source += " + overrides"
    return config_from_dict(raw, source)


def config_from_dict(raw: dict[str, Any], source: str = "config") -> Config:
    cfg = _build(Config, raw, "", source)
    validate_config(cfg, source)
    return cfg


def validate_config(cfg: Config, source: str) -> None:
    choices = {
        "data.frame_sampler": (cfg.data.frame_sampler, ("uniform", "ta2n", "segment")),
        "data.normalization": (cfg.data.normalization, ("imagenet", "clip", "none")),
        "data.modality": (cfg.data.modality, ("rgb", "rgb_diff")),
        "data.augment_on": (cfg.data.augment_on, ("loader", "device")),
        "data.point_sampling": (cfg.data.point_sampling, ("fixed", "cluster")),
        "optim.name": (cfg.optim.name, ("sgd", "adam", "adamw")),
        "optim.schedule": (cfg.optim.schedule, ("constant", "step", "multistep", "cosine", "tats")),
        "train.precision": (cfg.train.precision, ("fp32", "bf16", "fp16")),
        "train.select_on": (cfg.train.select_on, ("val", "test")),
        "eval.split": (cfg.eval.split, ("train", "val", "test")),
        "eval.mode": (cfg.eval.mode, ("cached", "naive")),
        "pretrain.head": (cfg.pretrain.head, ("temporal_conv", "temporal_linear")),
        "pretrain.precision": (cfg.pretrain.precision, ("fp32", "bf16")),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"{source}: {key} must be one of {', '.join(allowed)}; got {value!r}")
    positive = {
        "data.num_frames": cfg.data.num_frames,
        "episodes.way": cfg.episodes.way,
        "episodes.shot": cfg.episodes.shot,
        "episodes.train_queries": cfg.episodes.train_queries,
        "episodes.test_queries": cfg.episodes.test_queries,
        "train.tasks_per_update": cfg.train.tasks_per_update,
        "train.val_every": cfg.train.val_every,
        "eval.episodes": cfg.eval.episodes,
        "pretrain.epochs": cfg.pretrain.epochs,
        "pretrain.batch_videos": cfg.pretrain.batch_videos,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{source}: {key} must be >= 1; got {value}")
    if cfg.model.require_weights and not cfg.model.backbone_weights:
        raise ConfigError(
            f"{source}: this recipe needs pretrained {cfg.model.backbone} weights; set model.backbone_weights=PATH "
            "(a local checkpoint file or Hugging Face folder; nothing is downloaded), or model.require_weights=false "
            "to train from random initialisation on purpose"
        )
    opt = cfg.optim
    if opt.schedule == "multistep" and (
        not opt.milestones
        or (opt.lr_factors and len(opt.milestones) != len(opt.lr_factors))
        or any(b <= a for a, b in zip(opt.milestones, opt.milestones[1:], strict=False))
        or min(opt.milestones) < 0
    ):
        raise ConfigError(
            f"{source}: optim.schedule=multistep needs increasing optim.milestones (tasks >= 0) and, if given, one "
            f"optim.lr_factors entry per milestone; got {opt.milestones} and {opt.lr_factors}"
        )
    if opt.warmup_start is not None and not 0 <= opt.warmup_start <= 1:
        raise ConfigError(f"{source}: optim.warmup_start must be in [0, 1]; got {opt.warmup_start}")
    if cfg.train.tasks < 0:
        raise ConfigError(f"{source}: train.tasks must be >= 0; got {cfg.train.tasks}")
    if cfg.data.augment_on == "device" and cfg.data.feature_cache:
        raise ConfigError(
            f"{source}: data.augment_on=device augments pixels on the model's device, but data.feature_cache feeds "
            "cached features (no pixels); set data.augment_on=loader"
        )
    pre = cfg.pretrain
    if not (
        0 <= pre.warmup_fraction < 1 and 0 <= pre.label_smoothing < 1 and pre.lr > 0 and pre.val_episodes >= 0
    ):
        raise ConfigError(
            f"{source}: need 0 <= pretrain.warmup_fraction < 1, 0 <= pretrain.label_smoothing < 1, pretrain.lr > 0 "
            f"and pretrain.val_episodes >= 0; got {pre.warmup_fraction}, {pre.label_smoothing}, {pre.lr} and "
            f"{pre.val_episodes}"
        )


# The config keys a resumed run (``fsar train`` in a folder holding ``last.pt``) may change; a key naming a section
# covers all of its keys. They say how far the run goes, how it is evaluated at the end, where and how fast it runs
# and what it logs: never what the weights trained so far were trained with. Everything else (data, episodes,
# model, optimiser, seed, precision, validation and selection, paths) makes a different run: a resume with a change
# there is refused unless ``fsar train --allow-config-change`` accepts it on purpose (recorded in the run folder's
# ``config_history.jsonl`` and in ``results.json``). Moved the data? Changed paths need that flag too.
RESUMABLE_KEYS: dict[str, str] = {
    "train.tasks": "more (or fewer, not below those done) training episodes",
    "eval": "the final evaluation: split, episodes, episode file, seed, batch size, order episodes, mode",
    "train.device": "the device",
    "train.threads": "CPU threads",
    "data.workers": "data-loading processes",
    "data.cache_clips": "clips kept in memory",
    "train.find_unused_parameters": "a DDP setting for speed, not numbers",
    "train.log_every": "logging",
    "train.tensorboard": "logging",
    "train.wandb": "logging",
    "train.checkpoint_every": "how often last.pt is written",
    "name": "the run's name",
    "notes": "notes",
}


def is_resumable_key(key: str) -> bool:
    """Whether the dotted config ``key`` may change when a run is resumed (see ``RESUMABLE_KEYS``)."""
    return any(key == k or key.startswith(k + ".") for k in RESUMABLE_KEYS)


def resume_changes(saved: dict[str, Any], cfg: Config) -> tuple[list[tuple], list[tuple]]:
    """Compare a run's saved config (a dict, as in its ``config.yaml``) with the config it is resumed with; returns
    ``(resumable, refused)`` lists of ``(dotted key, old value, new value)``. The saved config is completed with
    today's defaults first, so a key added to fsar since the run started is not a change."""
    import contextlib

    from fsar.data.keys import changed_keys

    with contextlib.suppress(ConfigError):  # else compared as it is: a key fsar no longer knows is a change
        saved = config_from_dict(saved, "saved config").to_dict()
    changes = changed_keys(saved, cfg.to_dict())
    return [c for c in changes if is_resumable_key(c[0])], [c for c in changes if not is_resumable_key(c[0])]


def dump_config(cfg: Config, path: str | Path) -> None:
    """Write ``cfg`` as YAML to ``path`` atomically (a reader sees the old file or the new one)."""
    import os

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    os.replace(tmp, path)
