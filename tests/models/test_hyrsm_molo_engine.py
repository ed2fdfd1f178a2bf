"""HyRSM and MoLo classifiers in the engine: the caching evaluator, and training on the tiny synthetic benchmark."""

import pytest
import torch


def _engine_cfg(method, *extra):
    from fsar.engine.config import load_config

    kwargs = "{num_heads: 4, tasks_per_batch: 1, tasks_per_update: 1}"
    if method == "molo":
        kwargs = "{num_heads: 4, mlp_dim: 16, upsample: [1, 1, 1], tasks_per_batch: 1, tasks_per_update: 1}"
    return load_config(
        None,
        [
            f"model.name={method}",
            "model.backbone_kwargs={width: 8, out_channels: 16}",
            f"model.kwargs={kwargs}",
            "data.num_frames=4",
            "episodes.train_queries=2",
            "train.tensorboard=false",
            *extra,
        ],
    )


@pytest.mark.parametrize("method", ["hyrsm", "molo"])
def test_cached_evaluation_equals_naive(method):
    from fsar.data.episodes import EpisodeSampler
    from fsar.engine.build import build_model
    from fsar.engine.cached_eval import evaluate_cached
    from fsar.engine.episode_data import EpisodeDataset, episode_loader
    from fsar.engine.evaluate import evaluate_naive
    from tests.engine.fake_data import fake_clips

    clips = fake_clips()["test"]
    torch.manual_seed(0)
    model = build_model(_engine_cfg(method), num_train_classes=8)
    assert type(model).__name__ == {"hyrsm": "HyRSMClassifier", "molo": "MoLoClassifier"}[method]
    assert model.head.num_frames == 4 and model.head.num_classes == 8
    for shot in (1, 2):
        episodes = EpisodeSampler(clips.labels, 5, shot, 1, seed=3).take(5)
        naive = evaluate_naive(
            model,
            episode_loader(EpisodeDataset(clips, lambda i, eps=episodes: eps[i], 5, False, 0), 0),
            torch.device("cpu"),
        )
        cached = evaluate_cached(model, clips, episodes, torch.device("cpu"), batch_videos=7, progress=False)
        assert [r.predictions for r in naive] == [r.predictions for r in cached]
        assert len({p for r in cached for p in r.predictions}) > 1  # not a constant prediction


@pytest.fixture(scope="module")
def tiny_synth(tmp_path_factory):
    from fsar.data.synthetic import SynthConfig, generate_synthetic

    out = tmp_path_factory.mktemp("synth_tiny")
    generate_synthetic(out, SynthConfig.preset("tiny", seed=0), progress=False)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("method", ["hyrsm", "molo"])
def test_demo_tiny_preset_trains_and_evaluates_deterministically(method, tiny_synth, tmp_path):
    from fsar.engine.checkpoint import load_checkpoint
    from fsar.engine.config import load_config
    from fsar.engine.trainer import Trainer

    overrides = [
        f"data.root={tiny_synth}",
        "train.tasks=4",
        "train.val_every=4",
        "train.val_episodes=5",
        "eval.episodes=10",
        "eval.order_episodes=0",
    ]
    cfg = load_config(f"demo_{method}_tiny", overrides)
    assert cfg.model.name == method and cfg.model.kwargs["tasks_per_update"] == cfg.train.tasks_per_update
    result = Trainer(cfg, tmp_path / "a", log=lambda *a: None).fit()
    assert result["test_episodes"] == 10 and 0 <= result["test_mean"] <= 100
    again = Trainer(cfg, tmp_path / "b", log=lambda *a: None).fit()
    first, second = (load_checkpoint(tmp_path / run / "last.pt")["model"] for run in ("a", "b"))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert again["test_mean"] == result["test_mean"]
