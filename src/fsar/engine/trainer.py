"""The episodic trainer: config-driven, single process or ``torchrun`` DDP, mixed precision, exact resume.

Training draws ``train.tasks`` seeded episodes from the train split and accumulates gradients over
``train.tasks_per_update`` episodes per optimiser step. In a distributed run of W processes each update's episodes
are split across the ranks (rank r takes the episodes r, r + W, ... of the update), so no episode is duplicated and
an update sees exactly the episodes a single process would: the parameters equal a one-process run's up to float
round-off (tested). BatchNorm running statistics (used only in eval mode) follow rank 0's episodes, as DDP
broadcasts buffers from rank 0. Every ``train.val_every`` episodes the model is evaluated on fixed validation episodes, split
across the ranks and gathered, and the best checkpoint *on validation* is kept (``train.select_on=test``
reproduces the originals' optimistic protocol and is labelled as such). Finally the selected checkpoint is evaluated
on the test split with the field's protocol.

``last.pt`` (model, optimiser, grad scaler, every rank's RNG state, the episode position, the logs) is written
atomically at update boundaries; a run restarted in the same folder after a crash or ``kill -9`` resumes from it and
ends with bit-identical weights to an uninterrupted run (tested).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from fsar.data.episodes import (
    EpisodeSampler,
    OrderEpisodeSampler,
    load_episodes,
    save_episodes,
    shard_episodes,
)
from fsar.data.keys import write_json_atomic
from fsar.engine.build import build_model, build_optimizer, lr_multiplier, resolve_device
from fsar.engine.cached_eval import evaluate_cached
from fsar.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from fsar.engine.config import (
    RESUMABLE_KEYS,
    Config,
    apply_overrides,
    config_from_dict,
    dump_config,
    resume_changes,
)
from fsar.engine.distributed import DistContext, all_gather_objects, barrier
from fsar.engine.episode_data import EpisodeDataset, SplitClips, episode_loader, to_device
from fsar.engine.evaluate import accuracies, evaluate_naive
from fsar.engine.protocol import (
    AccuracySummary,
    summarize_accuracies,
    summarize_twin_accuracy,
    twin_counts,
    write_episode_csv,
)
from fsar.engine.run_logging import RunLogger
from fsar.errors import ConfigError, EpisodeError, FsarError
from fsar.procs import lock_folder
from fsar.progress import progress_bar

# one line per resume that changed the config: what changed (key, old, new, resumable or forced), at which task
CONFIG_HISTORY = "config_history.jsonl"

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class EpisodeStep(nn.Module):
    """One training episode (encode, logits, loss) as a module, so that DDP can wrap it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, support, query):
        s_feat = self.model.encode(support)
        q_feat = self.model.encode(query)
        logits = self.model.episode_logits(s_feat, support.labels, q_feat)
        loss = self.model.loss(
            logits, query.labels, support=s_feat, query=q_feat, support_batch=support, query_batch=query
        )
        return loss, logits


def test_episodes(cfg: Config, clips: SplitClips, way: int, shot: int, queries: int) -> list:
    """The evaluation episodes: from ``eval.episode_file`` (written on first use) or drawn with ``eval.seed``."""
    labels = clips.labels
    if cfg.eval.episode_file:
        path = Path(cfg.eval.episode_file)
        if path.exists():
            episodes, _ = load_episodes(path, labels=labels)
            if len(episodes) < cfg.eval.episodes:
                raise FsarError(
                    f"{path}: holds {len(episodes)} episodes, eval.episodes asks for {cfg.eval.episodes}"
                )
            return episodes[: cfg.eval.episodes]
        episodes = EpisodeSampler(labels, way, shot, queries, seed=cfg.eval.seed).take(cfg.eval.episodes)
        meta = {
            "benchmark": cfg.data.benchmark,
            "split": clips.name,
            "way": way,
            "shot": shot,
            "queries": queries,
        }
        save_episodes(path, episodes, labels=labels, meta=meta | {"seed": cfg.eval.seed})
        return episodes
    return EpisodeSampler(labels, way, shot, queries, seed=cfg.eval.seed).take(cfg.eval.episodes)


def order_episodes(cfg: Config, clips: SplitClips, path: Path | None) -> list:
    """``eval.order_episodes`` order episodes of ``clips`` (two reversed-order twin pairs each), drawn with
    ``eval.seed``; written as an episode file to ``path`` when given."""
    ep = cfg.episodes
    sampler = OrderEpisodeSampler(
        clips.labels, clips.twins, ep.way, ep.shot, ep.test_queries, seed=cfg.eval.seed
    )
    episodes = sampler.take(cfg.eval.order_episodes)
    if path is not None:
        meta = {"benchmark": cfg.data.benchmark, "split": clips.name, "way": ep.way, "shot": ep.shot}
        meta |= {
            "queries": ep.test_queries,
            "seed": cfg.eval.seed,
            "kind": "order (2 twin pairs per episode)",
        }
        save_episodes(path, episodes, labels=clips.labels, meta=meta)
    return episodes


def order_sensitive_report(
    standard: EvalOutcome, order: EvalOutcome | None, twins: dict[int, int]
) -> dict[str, float | int | None]:
    """results.json entries: twin-query accuracy of the standard episodes, and the order episodes' accuracy
    (all queries and twin queries), each with its interval; empty without twin classes."""
    if not twins:
        return {}
    out: dict[str, float | int | None] = {}
    for prefix, outcome in (("test", standard), ("order", order)):
        if outcome is None:
            continue
        if prefix == "order":
            out |= {f"order_{k}": v for k, v in outcome.summary.to_dict().items()}
        twin = summarize_twin_accuracy(outcome.results, twins)
        if twin is not None:
            out |= {f"{prefix}_twin_{k}": v for k, v in twin.to_dict().items()}
            out[f"{prefix}_twin_queries"] = sum(twin_counts(r, twins)[1] for r in outcome.results)
    return out


def format_order_sensitive(result: dict) -> list[str]:
    """Human-readable lines for the entries of :func:`order_sensitive_report` present in ``result``."""
    lines = []
    if "test_twin_mean" in result:
        lines.append(
            f"twin queries {result['test_twin_mean']:.2f} ± {result['test_twin_ci95']:.2f} "
            f"({result['test_twin_queries']} queries in {result['test_twin_episodes']} episodes)"
        )
    if "order_mean" in result:
        lines.append(
            f"order episodes {result['order_mean']:.2f} ± {result['order_ci95']:.2f} over "
            f"{result['order_episodes']} episodes (twin queries {result['order_twin_mean']:.2f} ± "
            f"{result['order_twin_ci95']:.2f})"
        )
    return lines


@dataclass
class EvalOutcome:
    summary: AccuracySummary
    results: list


def evaluate_split(
    model,
    clips: SplitClips,
    episodes: list,
    device: torch.device,
    cfg: Config,
    seed: int,
    desc: str = "eval",
    ctx: DistContext | None = None,
) -> EvalOutcome:
    """Evaluate ``episodes`` (split across ranks and gathered in a distributed run) with ``cfg.eval.mode``."""
    ctx = ctx or DistContext()
    mine = shard_episodes(episodes, ctx.rank, ctx.world_size)
    autocast = _autocast(device, cfg.train.precision)
    with autocast:
        if cfg.eval.mode == "cached":
            results = evaluate_cached(
                model, clips, mine, device, batch_videos=cfg.eval.batch_videos, progress=ctx.is_main
            )
        else:
            dataset = EpisodeDataset(
                clips, lambda i: mine[i], len(mine), train=False, seed=seed, augment_on=cfg.data.augment_on
            )
            with progress_bar(len(mine), desc, "ep", leave=False, enabled=ctx.is_main) as bar:
                loader = episode_loader(dataset, cfg.data.workers, device, rank=ctx.rank)
                results = evaluate_naive(model, loader, device, progress=bar)
    gathered = [r for part in all_gather_objects(results, ctx) for r in part]
    gathered.sort(key=lambda r: r.episode)
    return EvalOutcome(summarize_accuracies(accuracies(gathered)), gathered)


def _timed(iterable, waited: list[float]):
    """Yield from ``iterable``, adding the seconds spent waiting for each item to ``waited[0]``."""
    iterator = iter(iterable)
    while True:
        t0 = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            return
        waited[0] += time.perf_counter() - t0
        yield item


def _autocast(device: torch.device, precision: str):
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def check_world_size(cfg: Config, world: int) -> None:
    """Refuse a config that cannot train on ``world`` processes: every update's episodes must split evenly across
    the ranks (adapting ``train.tasks_per_update`` would change the recipe, so it is never done silently)."""
    t = cfg.train
    if world < 1:
        raise ConfigError(f"the number of processes must be at least 1, got {world}")
    if world > 1 and (
        t.tasks_per_update % world or t.tasks % world or (t.tasks % t.tasks_per_update) % world
    ):
        fix = f"train.tasks_per_update={world * max(1, -(-t.tasks_per_update // world))}"
        raise ConfigError(
            f"train.tasks ({t.tasks}) and train.tasks_per_update ({t.tasks_per_update}) must be multiples of "
            f"the number of processes ({world}) so that every update's episodes split evenly across ranks; "
            f"set e.g. {fix} (this changes the recipe: more episodes per optimiser step) or use fewer processes"
        )


def check_launch(cfg: Config, nproc: int) -> None:
    """What ``fsar train --nproc N`` checks before starting any process: the split of the episodes across the N
    ranks and, on GPUs, one GPU per process."""
    check_world_size(cfg, nproc)
    device = cfg.train.device
    if nproc > 1 and device in ("auto", "cuda") and torch.cuda.is_available():
        if nproc > torch.cuda.device_count():
            raise ConfigError(
                f"--nproc {nproc} starts one process per GPU, but this machine has "
                f"{torch.cuda.device_count()} GPU(s); use --nproc {torch.cuda.device_count()} or train.device=cpu"
            )
    elif nproc > 1 and device == "cuda":
        raise ConfigError(
            f"train.device={device!r} but CUDA is not available on this machine; use cpu or auto"
        )


class Trainer:
    """Train ``cfg``'s method on its benchmark, writing everything into ``run_dir``."""

    def __init__(
        self,
        cfg: Config,
        run_dir: str | Path,
        log=print,
        ctx: DistContext | None = None,
        device: torch.device | None = None,
        resume: bool = True,
        clips: dict[str, SplitClips] | None = None,
        on_step=None,
        allow_config_change: bool = False,
    ) -> None:
        self.cfg = cfg
        self._clips = clips  # pre-built splits (tests, notebooks); default: from cfg.data
        self.on_step = on_step  # callback(episode, updated: bool, model) after every training episode
        self.run_dir = Path(run_dir)
        self.ctx = ctx or DistContext()
        self.log = log if self.ctx.is_main else (lambda *a, **k: None)
        self.device = device or resolve_device(cfg.train.device)
        self.resume = resume
        self.allow_config_change = allow_config_change  # resume even if non-resumable keys changed (recorded)
        self._resume_payload: dict | None = None  # last.pt, read once when the config is checked
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self._check_divisibility()

    def _check_divisibility(self) -> None:
        check_world_size(self.cfg, self.ctx.world_size)

    # ------------------------------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train, select and test (resuming from ``last.pt`` when the folder holds one); returns the results.
        The run folder is locked for the whole run (:func:`fsar.procs.lock_folder`): a second process into it
        fails before touching anything."""
        with lock_folder(self.run_dir) if self.ctx.is_main else contextlib.nullcontext():
            return self._fit()

    def _check_resumed_config(self) -> list[dict]:
        """Compare this config with the one the run in ``run_dir`` was trained with (``config.yaml``, else the
        checkpoint's). Returns the accepted changes; raises naming every key that may not change on resume."""
        last = self.run_dir / "last.pt"
        if not (self.resume and last.exists()):
            return []
        payload = self._resume_payload = load_checkpoint(last)
        done = payload["trainer_state"]["tasks_done"]
        if done > self.cfg.train.tasks:
            raise ConfigError(
                f"{last}: this run has done {done} training episodes, more than train.tasks={self.cfg.train.tasks}; "
                f"set train.tasks >= {done} to resume it, or use another --out"
            )
        saved_path = self.run_dir / "config.yaml"
        if saved_path.is_file():
            saved = yaml.safe_load(saved_path.read_text()) or {}
        else:
            saved, saved_path = payload["config"], last
        resumable, refused = resume_changes(saved, self.cfg)
        if refused and not self.allow_config_change:
            lines = "\n".join(f"  {k}: {old!r} -> {new!r}" for k, old, new in refused)
            raise ConfigError(
                f"{self.run_dir}: resuming this run with a different recipe; these keys differ from {saved_path}:\n"
                f"{lines}\nStart a new run with another --out, or pass --allow-config-change to continue these "
                "weights with the new values (recorded in config_history.jsonl and results.json). Keys a resume "
                f"may change: {', '.join(RESUMABLE_KEYS)}."
            )
        return [{"key": k, "old": old, "new": new, "resumable": True} for k, old, new in resumable] + [
            {"key": k, "old": old, "new": new, "resumable": False} for k, old, new in refused
        ]

    def _fit(self) -> dict:
        cfg, ctx = self.cfg, self.ctx
        changes = self._check_resumed_config()  # every rank: the same files, the same decision
        barrier(ctx)
        if ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if self._resume_payload is None:  # a new run: an earlier run's history is not this one's
                (self.run_dir / CONFIG_HISTORY).unlink(missing_ok=True)
            elif changes:
                self._record_changes(changes)
            dump_config(cfg, self.run_dir / "config.yaml")
        barrier(ctx)
        names = tuple(dict.fromkeys(("train", cfg.train.select_on, cfg.eval.split)))
        backbone = None  # None: the model builds its configured backbone
        if self._clips is not None:
            clips = self._clips
        else:
            from fsar.engine.data_setup import build_inputs

            clips, backbone = build_inputs(cfg, names, run_dir=self.run_dir if ctx.is_main else None)
        for name, c in clips.items():
            if c.skipped:
                self.log(f"{name}: {len(c.skipped)} missing videos left out (listed in skipped_{name}.txt)")
        train = clips["train"]
        self.num_train_classes = train.num_classes
        torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
        model = build_model(
            cfg, num_train_classes=train.num_classes, backbone=backbone, train_class_names=train.class_names
        ).to(self.device)
        optimizer = build_optimizer(model, cfg.optim)
        base_lrs = [g["lr"] for g in optimizer.param_groups]
        scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.precision == "fp16")
        step_module: nn.Module = EpisodeStep(model)
        if ctx.enabled:
            step_module = nn.parallel.DistributedDataParallel(
                step_module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.train.find_unused_parameters,
            )
        torch.manual_seed(cfg.train.seed + 1_000_003 * ctx.rank)  # dropout etc. differ across ranks

        state = {"tasks_done": 0, "best_acc": -1.0, "best_task": 0, "train_rows": [], "val_rows": []}
        last = self.run_dir / "last.pt"
        if self.resume and last.exists():
            payload, self._resume_payload = self._resume_payload or load_checkpoint(last, self.device), None
            model.load_state_dict(payload["model"])
            optimizer.load_state_dict(payload["optimizer"])
            scaler.load_state_dict(payload["scaler"])
            set_rng_state(payload["rng"][ctx.rank])
            state = payload["trainer_state"]
            self.log(f"resumed from {last} at task {state['tasks_done']} of {cfg.train.tasks}")
        logger = (
            RunLogger(self.run_dir, cfg.train.tensorboard, cfg.train.wandb, cfg.to_dict())
            if ctx.is_main
            else None
        )
        if logger is not None:
            logger.rewrite("train_log", state["train_rows"])
            logger.rewrite("val_log", state["val_rows"])

        ep = cfg.episodes
        w, tpu = ctx.world_size, cfg.train.tasks_per_update
        sampler = EpisodeSampler(
            train.labels, ep.way, ep.shot, ep.train_queries, seed=cfg.train.seed, rank=ctx.rank, world_size=w
        )
        local_start, local_total = state["tasks_done"] // w, cfg.train.tasks // w
        dataset = EpisodeDataset(
            train,
            lambda i: sampler.episode(local_start + i),
            local_total - local_start,
            True,
            cfg.train.seed,
            augment_on=cfg.data.augment_on,
        )
        sel = clips[cfg.train.select_on]
        sel_episodes = EpisodeSampler(
            sel.labels, ep.way, ep.shot, ep.test_queries, seed=cfg.train.seed + 1
        ).take(cfg.train.val_episodes)
        checkpoint_every = cfg.train.checkpoint_every or cfg.train.val_every
        autocast = _autocast(self.device, cfg.train.precision)

        start_tasks = state["tasks_done"]  # episodes/s counts this process's episodes only (resume-safe)
        window = torch.zeros(4, dtype=torch.float64)  # loss sum, correct, queries, short clips (this rank)
        window_tasks = 0
        model.train()
        optimizer.zero_grad(set_to_none=True)
        start = time.perf_counter()
        bar = progress_bar(cfg.train.tasks, "train", "ep", initial=state["tasks_done"], enabled=ctx.is_main)
        # the loader's own generator is seeded from (seed, rank, position): resuming never touches the global RNG
        loader = episode_loader(dataset, cfg.data.workers, self.device, rank=ctx.rank, position=local_start)
        waited = [0.0]  # seconds this process spent waiting for the loader (data_wait_fraction)
        loader = _timed(loader, waited)
        for k, (episode, support, query) in enumerate(loader):
            local_task = local_start + k
            global_before = local_task * w  # episodes done by all ranks before this step
            update_start = (global_before // tpu) * tpu
            boundary = (global_before + w) % tpu == 0 or global_before + w == cfg.train.tasks
            mult = lr_multiplier(cfg.optim, update_start, cfg.train.tasks)
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * mult
            # pinned on CUDA: the copies overlap with compute; data.augment_on=device augments here, batched
            support, query = to_device(support, self.device), to_device(query, self.device)
            sync = contextlib.nullcontext() if boundary or not ctx.enabled else step_module.no_sync()
            with sync:
                with autocast:
                    loss, logits = step_module(support, query)
                if not torch.isfinite(loss):
                    raise FsarError(
                        f"non-finite training loss {loss.item()} at task {global_before}; lower optim.lr"
                    )
                scaler.scale(loss * (w / tpu)).backward()
            if boundary:
                if cfg.optim.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
            if self.on_step is not None:
                self.on_step(episode, boundary, model)
            short = sum(int(b.short.sum()) for b in (support, query) if b.short is not None)
            window += torch.tensor(
                [
                    float(loss.detach()),
                    float((logits.argmax(-1) == query.labels).sum()),
                    float(query.labels.numel()),
                    float(short),
                ],
                dtype=torch.float64,
            )
            window_tasks += w
            done = global_before + w
            bar.update(w)
            if not boundary:
                continue
            prev = ((done - 1) // tpu) * tpu  # tasks done at the previous update boundary
            if done // cfg.train.log_every > prev // cfg.train.log_every or done == cfg.train.tasks:
                totals = sum(all_gather_objects(window, ctx))
                row = {
                    "tasks": done,
                    "loss": float(totals[0]) / window_tasks,
                    "train_acc": 100.0 * float(totals[1]) / max(1.0, float(totals[2])),
                    "lr": optimizer.param_groups[0]["lr"],
                    "short_clips": int(totals[3]),  # clips from videos shorter than T (last frame repeated)
                    "episodes_per_s": (done - start_tasks + 0.0) / max(1e-9, time.perf_counter() - start),
                    # share of this process's wall time since the start spent waiting for the data loader
                    "data_wait_fraction": waited[0] / max(1e-9, time.perf_counter() - start),
                }
                if self.device.type == "cuda":  # peak memory of the tensors PyTorch allocated on this GPU
                    row["peak_memory_mib"] = torch.cuda.max_memory_allocated(self.device) / 2**20
                state["train_rows"].append(row)
                if logger is not None:
                    logger.log("train_log", row, done)
                    bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['train_acc']:.1f}")
                window.zero_()
                window_tasks = 0
            if done // cfg.train.val_every > prev // cfg.train.val_every or done == cfg.train.tasks:
                outcome = evaluate_split(
                    model, sel, sel_episodes, self.device, cfg, cfg.train.seed + 1, sel.name, ctx
                )
                s = outcome.summary
                row = {"tasks": done, "split": sel.name, "acc": s.mean, "ci95": s.ci95}
                state["val_rows"].append(row)
                if logger is not None:
                    logger.log("val_log", row, done)
                self.log(f"task {done}: {sel.name} accuracy {s.format()} over {s.episodes} episodes")
                if s.mean > state["best_acc"]:
                    state["best_acc"], state["best_task"] = s.mean, done
                    self._save(model, optimizer, scaler, "best.pt", state, done)
            if done // checkpoint_every > prev // checkpoint_every or done == cfg.train.tasks:
                state["tasks_done"] = done
                self._save(model, optimizer, scaler, "last.pt", state, done)
        bar.close()
        state["tasks_done"] = cfg.train.tasks
        train_seconds = time.perf_counter() - start

        # final test on the selected checkpoint
        barrier(ctx)
        if state["best_task"]:
            model.load_state_dict(load_checkpoint(self.run_dir / "best.pt", self.device)["model"])
        test_clips = clips[cfg.eval.split]
        episodes = test_episodes(cfg, test_clips, ep.way, ep.shot, ep.test_queries) if ctx.is_main else None
        episodes = all_gather_objects(episodes, ctx)[0]
        outcome = evaluate_split(
            model, test_clips, episodes, self.device, cfg, cfg.eval.seed, test_clips.name, ctx
        )
        order, order_skipped = None, None
        if test_clips.twins and cfg.eval.order_episodes > 0:
            try:
                order_eps = order_episodes(
                    cfg, test_clips, self.run_dir / "order_episodes.json" if ctx.is_main else None
                )
            except EpisodeError as exc:  # e.g. a split with a single twin pair: said, not silently dropped
                order_skipped = str(exc)
                self.log(f"order episodes skipped: {exc}")
            else:
                order = evaluate_split(
                    model, test_clips, order_eps, self.device, cfg, cfg.eval.seed, "order", ctx
                )
        result = {
            "name": cfg.name,
            "method": cfg.model.name,
            "benchmark": cfg.data.benchmark,
            "way": ep.way,
            "shot": ep.shot,
            "split": test_clips.name,
            "selected_on": cfg.train.select_on,
            "selected_task": state["best_task"],
            "best_selection_acc": state["best_acc"],
            "train_seconds": train_seconds,
            "world_size": ctx.world_size,
            **{f"test_{k}": v for k, v in outcome.summary.to_dict().items()},
            **order_sensitive_report(outcome, order, test_clips.twins),
            **({"order_skipped": order_skipped} if order_skipped else {}),
            **self._recorded_changes(),
        }
        if ctx.is_main:
            write_episode_csv(
                self.run_dir / f"{test_clips.name}_episodes.csv", outcome.results, test_clips.twins
            )
            if order is not None:
                write_episode_csv(self.run_dir / "order_episodes.csv", order.results, test_clips.twins)
            write_json_atomic(self.run_dir / "results.json", result, indent=2)
            if logger is not None:
                logger.close()
        self.log(
            f"{cfg.name}: {test_clips.name} accuracy {outcome.summary.format()} "
            f"(t-interval ±{outcome.summary.ci95_t:.2f}) over {outcome.summary.episodes} episodes, "
            f"checkpoint selected on {cfg.train.select_on} at task {state['best_task']}"
        )
        for line in format_order_sensitive(result):
            self.log(f"{cfg.name}: {line}")
        self.model = model
        return result

    # ------------------------------------------------------------------------------------------------------
    def _record_changes(self, changes: list[dict]) -> None:
        """Append one line to ``config_history.jsonl``: the config changes accepted at this resume."""
        tasks = self._resume_payload["trainer_state"]["tasks_done"]
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "at_task": tasks, "changes": changes}
        with open(self.run_dir / CONFIG_HISTORY, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for c in changes:
            how = "resumable" if c["resumable"] else "accepted by --allow-config-change"
            self.log(f"resume: {c['key']} {c['old']!r} -> {c['new']!r} ({how})")

    def _recorded_changes(self) -> dict:
        """results.json entries for the config changes accepted on resume (from ``config_history.jsonl``)."""
        path = self.run_dir / CONFIG_HISTORY
        if not path.is_file():
            return {}
        history = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        changes = [{**c, "at_task": h["at_task"]} for h in history for c in h["changes"]]
        overridden = sorted({c["key"] for c in changes if not c["resumable"]})
        return {"config_changes": changes, "config_overridden": overridden}

    def _save(self, model, optimizer, scaler, name: str, state: dict, tasks: int) -> None:
        rngs = all_gather_objects(rng_state(), self.ctx)
        if not self.ctx.is_main:
            return
        save_checkpoint(
            self.run_dir / name,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": rngs,
                "config": self.cfg.to_dict(),
                "num_train_classes": self.num_train_classes,
                "trainer_state": {**state, "tasks_done": tasks},
            },
        )


def model_from_checkpoint(
    path: str | Path, device: torch.device | None = None, overrides: list[str] | None = None
) -> tuple[Config, nn.Module, torch.device]:
    """Rebuild the model of a checkpoint (its config, with optional overrides) and load its weights, on ``device``
    (default: the config's ``train.device``). Returns the config, the model (in eval mode) and the device."""
    payload = load_checkpoint(path, "cpu")
    raw = payload["config"]
    if overrides:
        raw = apply_overrides(raw, overrides)
    cfg = config_from_dict(raw, source=f"{path} (embedded config)")
    device = device or resolve_device(cfg.train.device)
    backbone = None
    if cfg.data.feature_cache:
        from fsar.engine.feature_cache import FeatureCache, PrecomputedFeatures

        cache = FeatureCache(cfg.data.feature_cache)
        split = next(iter(cache.index["splits"]))
        backbone = PrecomputedFeatures(cache.shape(split)[1])
    model = build_model(cfg, num_train_classes=int(payload["num_train_classes"]), backbone=backbone).to(
        device
    )
    model.load_state_dict(payload["model"])
    model.eval()
    return cfg, model, device
