"""Every shipped preset loads with strict keys; pretrained recipes refuse to start without weights."""

import pytest

from fsar.engine.config import PRESETS_DIR, load_config
from fsar.errors import ConfigError

PRESETS = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def test_presets_exist_for_every_benchmark_and_shot():
    for method in ("ta2n", "tats", "trokens", "trx"):
        for bench in ("ssv2full", "ssv2small", "kinetics100", "ucf101", "hmdb51"):
            for shot in (1, 5):
                assert f"{method}_{bench}_{shot}shot" in PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads(name):
    cfg = load_config(name, ["model.backbone_weights=weights.pth"])
    assert cfg.eval.episodes >= 50 and cfg.train.select_on == "val"
    if name.startswith(("ta2n_", "tats_", "trokens_", "trx_")) and "base" not in name:
        shot = int(name.rsplit("_", 1)[1][0])
        assert cfg.episodes.shot == shot and cfg.eval.episodes == 10_000 and cfg.notes


def test_recipes_match_the_originals():
    ta2n = load_config("ta2n_ssv2full_1shot", ["model.backbone_weights=w.pth"])
    assert (ta2n.optim.name, ta2n.optim.lr, ta2n.train.tasks_per_update, ta2n.train.tasks) == (
        "sgd",
        0.001,
        16,
        100020,
    )
    assert (
        ta2n.data.frame_sampler == "ta2n"
        and ta2n.data.normalization == "none"
        and ta2n.data.benchmark == "ssv2_full"
    )
    tats = load_config("tats_kinetics100_5shot", ["model.backbone_weights=w.pth"])
    assert (tats.optim.name, tats.optim.weight_decay, tats.episodes.train_queries, tats.data.num_frames) == (
        "adamw",
        0.5,
        6,
        16,
    )
    assert tats.data.normalization == "clip" and tats.data.resize_to == [224, 224]
    trx = load_config("trx_ssv2full_5shot", ["model.backbone_weights=w.pth"])
    assert (trx.optim.name, trx.optim.lr, trx.train.tasks_per_update, trx.train.tasks) == (
        "sgd",
        0.001,
        16,
        100020,
    )
    assert (trx.episodes.train_queries, trx.episodes.test_queries, trx.data.num_frames) == (5, 1, 8)
    assert (trx.data.frame_sampler, trx.data.normalization, trx.data.resize_short, trx.data.crop) == (
        "ta2n",
        "none",
        256,
        224,
    )
    assert trx.model.backbone == "resnet50" and trx.model.kwargs == {
        "cardinalities": [2, 3],
        "out_dim": 1152,
        "dropout": 0.1,
        "apply_norm_v": False,
        "loss_reduction": "sum",
    }
    assert (
        "64.6" in trx.notes
        and "85.9" in load_config("trx_kinetics100_5shot", ["model.backbone_weights=w"]).notes
    )


def test_trokens_recipe_matches_the_original_and_refuses_to_start_without_weights():
    cfg = load_config("trokens_ssv2small_1shot", ["model.backbone_weights=w.pth"])
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.schedule) == (
        "adamw",
        0.0001,
        0.5,
        "tats",
    )
    assert (cfg.data.num_frames, cfg.episodes.train_queries, cfg.train.tasks, cfg.train.val_every) == (
        8,
        6,
        20050,
        2005,
    )
    assert cfg.model.name == "trokens" and cfg.model.backbone == "dinov2_vitb14" and "53.4" in cfg.notes
    assert cfg.data.point_sampling == "cluster" and cfg.model.kwargs["use_query_mask"] is False
    kwargs = cfg.model.kwargs
    assert (kwargs["num_points"], kwargs["num_bins"], kwargs["use_hod"], kwargs["use_relative_motion"]) == (
        256,
        32,
        True,
        True,
    )
    k100 = load_config("trokens_kinetics100_5shot", ["model.backbone_weights=w.pth"])
    assert (k100.data.num_frames, k100.train.tasks, k100.episodes.shot) == (
        8,
        5050,
        5,
    )  # T = 8, unlike TATs' 16
    assert load_config("trokens_ssv2full_5shot", ["model.backbone_weights=w"]).train.tasks == 50050
    assert "82.3" in load_config("trokens_hmdb51_5shot", ["model.backbone_weights=w"]).notes
    with pytest.raises(ConfigError, match="needs pretrained dinov2_vitb14 weights"):
        load_config("trokens_ucf101_1shot")


def test_trx_preset_builds_the_trx_classifier():
    from fsar.engine.build import build_model
    from fsar.models.trx import TRXClassifier

    cfg = load_config(
        "trx_ucf101_5shot",
        ["model.require_weights=false", "model.backbone=small_cnn", "model.kwargs.out_dim=8"],
    )
    model = build_model(cfg, num_train_classes=70)
    assert isinstance(model, TRXClassifier) and model.loss_reduction == "sum"
    assert model.head.cardinalities == (2, 3) and model.head.num_frames == 8 and model.head.feat_dim == 128


def test_pretrained_recipe_without_weights_is_refused():
    with pytest.raises(ConfigError, match="needs pretrained resnet50 weights"):
        load_config("ta2n_ucf101_1shot")
    assert load_config("ta2n_ucf101_1shot", ["model.require_weights=false"]).model.backbone_weights is None
    with pytest.raises(ConfigError, match="needs pretrained resnet50 weights"):
        load_config("trx_hmdb51_5shot")
