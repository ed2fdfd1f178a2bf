"""End-to-end trainer tests on in-memory clips (no decoding): selection, logs, checkpoints, resume, eval modes."""

import json

import pytest
import torch

from fsar.data.episodes import EpisodeSampler
from fsar.engine.cached_eval import evaluate_cached
from fsar.engine.checkpoint import load_checkpoint, save_checkpoint
from fsar.engine.config import load_config
from fsar.engine.episode_data import EpisodeDataset, episode_loader
from fsar.engine.evaluate import evaluate_naive
from fsar.engine.trainer import Trainer
from fsar.errors import FsarError
from tests.engine.fake_data import fake_clips

BASE = [
    "model.backbone_kwargs={width: 8, out_channels: 16}",
    "data.num_frames=4",
    "episodes.train_queries=2",
    "train.tasks=8",
    "train.tasks_per_update=2",
    "train.val_every=4",
    "train.val_episodes=6",
    "train.log_every=2",
    "train.tensorboard=false",
    "eval.episodes=10",
    "optim.lr=0.01",
]


def make_cfg(*extra):
    return load_config(None, BASE + list(extra))


def test_fit_selects_on_val_and_writes_outputs(tmp_path):
    """The checkpoint is the first best row of val_log.csv (validation episodes only: the test split is not read
    before training ends), best.pt holds those weights, and the reported test accuracy is theirs."""
    import csv

    from fsar.engine.build import build_model
    from fsar.engine.trainer import evaluate_split, test_episodes

    cfg = make_cfg("model.name=otam", "train.val_every=2")
    clips = fake_clips()
    steps, test_reads_while_training = [], []
    read_test = clips["test"].load_video

    def watched(record, train, rng):
        if len(steps) < cfg.train.tasks:
            test_reads_while_training.append(record.video_id)
        return read_test(record, train, rng)

    clips["test"].load_video = watched
    trainer = Trainer(cfg, tmp_path, log=lambda *a: None, clips=clips, on_step=lambda *a: steps.append(1))
    result = trainer.fit()
    assert not test_reads_while_training, "the test split was read during training or selection"
    for name in ("config.yaml", "best.pt", "last.pt", "last.pt.sha256", "train_log.csv", "results.json"):
        assert (tmp_path / name).exists(), name
    assert json.loads((tmp_path / "results.json").read_text())["method"] == "otam"

    rows = list(csv.DictReader((tmp_path / "val_log.csv").open()))
    assert [(int(r["tasks"]), r["split"]) for r in rows] == [(2, "val"), (4, "val"), (6, "val"), (8, "val")]
    accs = [float(r["acc"]) for r in rows]
    assert len(set(accs)) > 1, "validation accuracies must differ for the choice to mean something"
    chosen = rows[accs.index(max(accs))]  # the first best row
    assert result["selected_on"] == "val" and result["best_selection_acc"] == max(accs)
    assert result["selected_task"] == int(chosen["tasks"])
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["trainer_state"]["tasks_done"] == result["selected_task"]

    # best.pt's weights give the logged validation accuracy on the validation episodes, and the reported test mean
    model = build_model(cfg, num_train_classes=8)
    model.load_state_dict(best["model"])
    cpu = torch.device("cpu")
    val_eps = EpisodeSampler(clips["val"].labels, 5, 1, 1, seed=cfg.train.seed + 1).take(
        cfg.train.val_episodes
    )
    assert evaluate_split(model, clips["val"], val_eps, cpu, cfg, cfg.train.seed + 1).summary.mean == max(
        accs
    )
    test_eps = test_episodes(cfg, clips["test"], 5, 1, 1)
    test = evaluate_split(model, clips["test"], test_eps, cpu, cfg, cfg.eval.seed).summary
    assert (result["test_episodes"], result["test_mean"], result["test_ci95"]) == (10, test.mean, test.ci95)
    csv_rows = list(csv.DictReader((tmp_path / "test_episodes.csv").open()))
    assert len(csv_rows) == 10

    train_rows = list(csv.DictReader((tmp_path / "train_log.csv").open()))
    assert sum(int(r["short_clips"]) for r in train_rows) > 0  # short videos are counted in the log
    assert load_checkpoint(tmp_path / "last.pt")["trainer_state"]["tasks_done"] == 8


def test_same_config_and_seed_give_same_numbers(tmp_path):
    cfg = make_cfg()
    a = Trainer(cfg, tmp_path / "a", log=lambda *a: None, clips=fake_clips()).fit()
    b = Trainer(cfg, tmp_path / "b", log=lambda *a: None, clips=fake_clips()).fit()
    assert a["test_mean"] == b["test_mean"]
    wa = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    wb = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize(
    "method", [["model.name=otam"], ["model.name=trx", "model.kwargs={out_dim: 16}"]], ids=["otam", "trx"]
)
def test_resume_from_mid_run_checkpoint_is_bit_identical(tmp_path, method):
    """TRX has dropout: its masks after the resume must be those of the uninterrupted run (the loader never draws
    from the global generator whose state the checkpoint restores)."""
    cfg = make_cfg("train.checkpoint_every=2", *method)
    Trainer(cfg, tmp_path / "full", log=lambda *a: None, clips=fake_clips()).fit()
    # an interrupted run: stop after 4 tasks (as if killed), keep its last.pt, then resume to 8
    short = make_cfg("train.checkpoint_every=2", *method, "train.tasks=4")
    Trainer(short, tmp_path / "cut", log=lambda *a: None, clips=fake_clips()).fit()
    ck = load_checkpoint(tmp_path / "cut" / "last.pt")
    ck["config"]["train"]["tasks"] = 8  # same run, longer horizon: resume continues the same stream
    save_checkpoint(tmp_path / "cut" / "last.pt", {k: v for k, v in ck.items() if k != "format_version"})
    Trainer(cfg, tmp_path / "cut", log=lambda *a: None, clips=fake_clips()).fit()
    full = load_checkpoint(tmp_path / "full" / "last.pt")
    resumed = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert all(torch.equal(full["model"][k], resumed["model"][k]) for k in full["model"])
    assert torch.equal(full["rng"][0]["torch"], resumed["rng"][0]["torch"])


def test_loaders_never_draw_from_the_global_generator():
    from fsar.engine.episode_data import loader_generator

    clips = fake_clips()["train"]
    episodes = EpisodeSampler(clips.labels, 5, 1, 1, seed=0).take(3)
    dataset = EpisodeDataset(clips, lambda i: episodes[i], 3, train=True, seed=0)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    batches = list(episode_loader(dataset, 0))
    assert len(batches) == 3 and torch.equal(torch.get_rng_state(), state)
    # each loader's own generator: a function of (seed, rank, position)
    seeds = {
        (s, r, p): loader_generator(s, r, p).initial_seed() for s in (0, 1) for r in (0, 1) for p in (0, 4)
    }
    assert len(set(seeds.values())) == 8 and loader_generator(1, 0, 4).initial_seed() == seeds[1, 0, 4]


def test_corrupt_checkpoint_is_reported_not_loaded(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"model": {"w": torch.ones(3)}, "config": {}})
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "c.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(FsarError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "c.pt")
    (tmp_path / "c.pt.sha256").unlink()
    with pytest.raises(FsarError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "c.pt")


@pytest.mark.parametrize("method", ["protonet", "otam"])
def test_cached_evaluation_equals_naive(method):
    from fsar.engine.build import build_model

    cfg = make_cfg(f"model.name={method}")
    clips = fake_clips()["test"]
    torch.manual_seed(0)
    model = build_model(cfg, num_train_classes=8)
    episodes = EpisodeSampler(clips.labels, 5, 1, 1, seed=3).take(12)
    naive = evaluate_naive(
        model,
        episode_loader(EpisodeDataset(clips, lambda i: episodes[i], 12, False, 0), 0),
        torch.device("cpu"),
    )
    cached = evaluate_cached(model, clips, episodes, torch.device("cpu"), batch_videos=7, progress=False)
    assert [r.predictions for r in naive] == [r.predictions for r in cached]
    assert [r.correct for r in naive] == [r.correct for r in cached]


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_gives_bit_identical_weights(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    run = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.engine.resume_worker", str(run), "0.4"], cwd=root, env=env
    )
    deadline = time.time() + 120
    tasks_done = 0
    while time.time() < deadline and proc.poll() is None:
        if (run / "last.pt").exists():
            try:
                tasks_done = load_checkpoint(run / "last.pt")["trainer_state"]["tasks_done"]
            except FsarError:
                tasks_done = 0  # caught mid-replace: try again
            if 2 <= tasks_done < 12:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= tasks_done < 12, "the run finished before it could be interrupted"
    # resume in the same folder, then compare with an uninterrupted run
    subprocess.run(
        [sys.executable, "-m", "tests.engine.resume_worker", str(run), "0"], cwd=root, env=env, check=True
    )
    subprocess.run(
        [sys.executable, "-m", "tests.engine.resume_worker", str(tmp_path / "full"), "0"],
        cwd=root,
        env=env,
        check=True,
    )
    a = load_checkpoint(run / "last.pt")
    b = load_checkpoint(tmp_path / "full" / "last.pt")
    assert a["trainer_state"]["tasks_done"] == 12
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_runs_and_logs_tensorboard(tmp_path, precision):
    cfg = make_cfg(
        "model.name=otam", f"train.precision={precision}", "train.tensorboard=true", "train.tasks=4"
    )
    result = Trainer(cfg, tmp_path, log=lambda *a: None, clips=fake_clips()).fit()
    assert 0 <= result["test_mean"] <= 100
    ck = load_checkpoint(tmp_path / "last.pt")
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    if precision == "fp16":  # the grad scaler is on and saved with its state
        assert ck["scaler"]["scale"] > 0
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_episodes_per_s_counts_every_episode_since_the_start(tmp_path, monkeypatch):
    """A fake clock that advances 1 s per trainer step: after N episodes the log must say N / N s = 1 episode/s,
    also after checkpoint saves (which once reset the count, so the rate read 2 / N)."""
    import csv

    import fsar.engine.trainer as trainer_module

    clock = {"t": 0.0}
    real_step = trainer_module.EpisodeStep.forward

    def stepping_forward(self, support, query):
        clock["t"] += 1.0
        return real_step(self, support, query)

    monkeypatch.setattr(trainer_module.EpisodeStep, "forward", stepping_forward)
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda: clock["t"])
    cfg = make_cfg("model.name=protonet", "train.checkpoint_every=2", "train.val_every=8")
    Trainer(cfg, tmp_path, log=lambda *a: None, clips=fake_clips()).fit()
    rows = list(csv.DictReader((tmp_path / "train_log.csv").open()))
    assert [int(r["tasks"]) for r in rows] == [2, 4, 6, 8]
    assert [float(r["episodes_per_s"]) for r in rows] == pytest.approx([1.0, 1.0, 1.0, 1.0])


def test_data_wait_fraction_is_the_share_of_time_spent_waiting_for_episodes(tmp_path, monkeypatch):
    """A fake clock: each episode takes 3 s to load and each step 1 s, so the log must say 3 / 4 = 0.75."""
    import csv

    import fsar.engine.trainer as trainer_module

    clock = {"t": 0.0}
    real_step = trainer_module.EpisodeStep.forward
    real_loader = trainer_module.episode_loader

    def stepping_forward(self, support, query):
        clock["t"] += 1.0
        return real_step(self, support, query)

    def slow_loader(*args, **kwargs):
        for item in real_loader(*args, **kwargs):
            clock["t"] += 3.0
            yield item

    monkeypatch.setattr(trainer_module.EpisodeStep, "forward", stepping_forward)
    monkeypatch.setattr(trainer_module, "episode_loader", slow_loader)
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda: clock["t"])
    cfg = make_cfg("model.name=protonet", "train.val_every=8")
    Trainer(cfg, tmp_path, log=lambda *a: None, clips=fake_clips()).fit()
    rows = list(csv.DictReader((tmp_path / "train_log.csv").open()))
    assert [float(r["data_wait_fraction"]) for r in rows] == pytest.approx([0.75] * len(rows))
    assert [float(r["episodes_per_s"]) for r in rows] == pytest.approx([0.25] * len(rows))
    assert "peak_memory_mib" not in rows[0]  # CUDA only
