"""STRM's presets (original recipes, demo) and STRM end to end on the tiny synthetic benchmark."""

import json

import pytest
import torch

from fsar.engine.config import load_config
from fsar.errors import ConfigError

BENCHMARKS = {
    # preset key: (benchmark, lr, training tasks, training queries per class, published 5-shot or None)
    "ssv2full": ("ssv2_full", 0.001, 75010, 4, "68.1"),
    "ssv2small": ("ssv2_small", 0.001, 75010, 4, None),
    "kinetics100": ("kinetics100", 0.0001, 20010, 5, "86.7"),
    "ucf101": ("ucf101", 0.0001, 20010, 4, "96.8"),
    "hmdb51": ("hmdb51", 0.0001, 20010, 4, "77.3"),
}


@pytest.mark.parametrize("key", list(BENCHMARKS))
@pytest.mark.parametrize("shot", [1, 5])
def test_strm_presets_follow_the_original_recipe(key, shot):
    bench, lr, tasks, queries, published = BENCHMARKS[key]
    cfg = load_config(f"strm_{key}_{shot}shot", ["model.backbone_weights=w.pth"])
    assert (cfg.data.benchmark, cfg.episodes.way, cfg.episodes.shot) == (bench, 5, shot)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == ("sgd", lr, 0.0, 0.0)
    assert (cfg.train.tasks, cfg.train.tasks_per_update, cfg.episodes.train_queries) == (tasks, 16, queries)
    assert (cfg.episodes.test_queries, cfg.eval.episodes, cfg.train.select_on) == (1, 10_000, "val")
    assert (cfg.data.num_frames, cfg.data.frame_sampler, cfg.data.normalization) == (8, "ta2n", "none")
    assert (cfg.data.resize_short, cfg.data.crop, cfg.model.backbone) == (256, 224, "resnet50")
    assert cfg.model.name == "strm" and cfg.model.kwargs == {
        "cardinalities": [2],
        "out_dim": 1152,
        "dropout": 0.1,
        "patch_weight": 0.1,
        "train_clsw": False,
    }
    target = published if shot == 5 and published else "not reported"
    assert f"published: {target}" in cfg.notes
    with pytest.raises(ConfigError, match="needs pretrained resnet50 weights"):
        load_config(f"strm_{key}_{shot}shot")


def test_strm_preset_builds_the_strm_classifier():
    from fsar.engine.build import build_model
    from fsar.models.strm import STRMClassifier

    cfg = load_config(
        "strm_hmdb51_5shot",
        ["model.require_weights=false", "model.backbone=small_cnn", "model.kwargs.out_dim=8"],
    )
    model = build_model(cfg, num_train_classes=31)
    assert isinstance(model, STRMClassifier)
    assert model.head.cardinalities == (2,) and model.head.num_frames == 8 and model.head.feat_dim == 128
    assert not model.head.train_clsw and model.head.patch_weight == 0.1
    tiny = load_config("demo_strm_tiny")
    assert tiny.model.name == "strm" and load_config("demo_strm").model.name == "strm"


@pytest.mark.slow
def test_strm_trains_end_to_end_on_the_tiny_benchmark_deterministically(tmp_path):
    from fsar.cli.main import main
    from fsar.engine.checkpoint import load_checkpoint

    synth = tmp_path / "synth"
    assert main(["synth", "--out", str(synth), "--preset", "tiny", "--quiet"]) == 0
    runs = []
    for name in ("a", "b"):
        args = [
            "train",
            "demo_strm_tiny",
            "--out",
            str(tmp_path / name),
            f"data.root={synth}",
            "train.tasks=4",
        ]
        args += ["train.val_every=2", "train.val_episodes=5", "eval.episodes=10", "eval.order_episodes=0"]
        assert main(args) == 0
        runs.append(json.loads((tmp_path / name / "results.json").read_text()))
    a, b = runs
    assert a["test_episodes"] == 10 and 0 <= a["test_mean"] <= 100
    assert a["test_mean"] == b["test_mean"] and a["selected_task"] == b["selected_task"]
    wa = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    wb = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    initial_gamma = 0.0
    assert wa["head.patch_attention.gamma"].item() != initial_gamma  # the gate opened during training
