"""The HyRSM and MoLo recipes: every dataset and shot, loss weights, accumulation, LR clock, refusal without weights."""

import pytest

from fsar.engine.build import lr_multiplier
from fsar.engine.config import PRESETS_DIR, load_config
from fsar.errors import ConfigError

BENCHES = {
    "ssv2full": "ssv2_full",
    "ssv2small": "ssv2_small",
    "kinetics100": "kinetics100",
    "ucf101": "ucf101",
    "hmdb51": "hmdb51",
}
PUBLISHED = {
    ("hyrsm", "ssv2full"): ("54.3", "69.0"),
    ("hyrsm", "hmdb51"): ("60.3", "76.0"),
    ("molo", "kinetics100"): ("74.0", "85.6"),
    ("molo", "ucf101"): ("86.0", "95.5"),
}
WEIGHTS = ["model.backbone_weights=weights.pth"]


@pytest.mark.parametrize("method", ["hyrsm", "molo"])
@pytest.mark.parametrize("bench", list(BENCHES))
@pytest.mark.parametrize("shot", [1, 5])
def test_preset_runs_true_k_shot_episodes_of_its_benchmark(method, bench, shot):
    cfg = load_config(f"{method}_{bench}_{shot}shot", WEIGHTS)
    assert (
        cfg.model.name == method and cfg.model.backbone == "resnet50" and cfg.data.benchmark == BENCHES[bench]
    )
    assert cfg.episodes.shot == shot and cfg.episodes.way == 5 and cfg.episodes.test_queries == 1
    assert cfg.eval.episodes == 10_000 and cfg.train.select_on == "val" and cfg.data.num_frames == 8
    assert cfg.model.kwargs["tasks_per_batch"] == 4
    assert cfg.model.kwargs["tasks_per_update"] == cfg.train.tasks_per_update
    assert cfg.optim.name == "adam" and cfg.optim.schedule == "multistep"
    if (method, bench) in PUBLISHED:
        assert PUBLISHED[method, bench][shot == 5] in cfg.notes
    with pytest.raises(ConfigError, match="needs pretrained resnet50 weights"):
        load_config(f"{method}_{bench}_{shot}shot")


def test_every_demo_and_recipe_preset_scales_the_loss_for_its_accumulation():
    names = [p.stem for p in PRESETS_DIR.glob("*.yaml") if p.stem.split("_")[-1] != "base"]
    names = [n for n in names if n.startswith(("hyrsm_", "molo_", "demo_hyrsm", "demo_molo"))]
    assert len(names) == 24
    for name in names:
        cfg = load_config(name, WEIGHTS)
        assert cfg.model.kwargs["tasks_per_update"] == cfg.train.tasks_per_update, name


def test_recipes_match_the_originals():
    hmdb = load_config("hyrsm_hmdb51_1shot", WEIGHTS)
    assert hmdb.train.tasks_per_update == 2 and hmdb.model.kwargs["class_weight"] == 0.15
    assert hmdb.episodes.train_queries == 7
    assert load_config("hyrsm_hmdb51_5shot", WEIGHTS).episodes.train_queries == 3
    k100 = load_config("hyrsm_kinetics100_1shot", WEIGHTS)
    assert (k100.model.kwargs["pos_a"], k100.model.kwargs["pos_b"], k100.optim.lr) == (2048, 0.01, 2.2e-5)
    molo = load_config("molo_ssv2full_5shot", WEIGHTS)
    kw = molo.model.kwargs
    assert (kw["class_weight"], kw["contrastive_weight"], kw["recon_weight"]) == (0.8, 0.05, 0.1)
    assert (molo.optim.lr, molo.optim.weight_decay, molo.train.tasks, molo.episodes.train_queries) == (
        1e-4,
        5e-5,
        50000,
        6,
    )
    # the LR clock: epoch = floor(i / 6000) + i / 6000; warm-up over the first 6000 tasks from 2e-5 / 1e-4
    assert molo.optim.milestones == [18000, 30000] and molo.optim.lr_factors == [0.1, 0.01]
    assert lr_multiplier(molo.optim, 0, 50000) == pytest.approx(0.2)
    assert lr_multiplier(molo.optim, 3000, 50000) == pytest.approx(0.6)
    assert lr_multiplier(molo.optim, 17999, 50000) == 1.0
    assert lr_multiplier(molo.optim, 18000, 50000) == 0.1 and lr_multiplier(molo.optim, 49999, 50000) == 0.01
    hmdb_molo = load_config("molo_hmdb51_1shot", WEIGHTS)
    # epochs 3, 5, 7 with 500 tasks per epoch: the double-speed clock reaches them at tasks 1000, 1500, 2000
    assert hmdb_molo.optim.milestones == [1000, 1500, 2000] and hmdb_molo.train.tasks == 2000


def test_multistep_schedule_is_checked():
    with pytest.raises(ConfigError, match="multistep"):
        load_config(
            None, ["optim.schedule=multistep", "optim.milestones=[10, 5]", "optim.lr_factors=[0.1, 0.01]"]
        )
    with pytest.raises(ConfigError, match="multistep"):
        load_config(
            None, ["optim.schedule=multistep", "optim.milestones=[10]", "optim.lr_factors=[0.1, 0.01]"]
        )
    with pytest.raises(ConfigError, match="warmup_start"):
        load_config(None, ["optim.warmup_start=2.0"])


@pytest.mark.parametrize("method", ["hyrsm", "molo"])
def test_recipe_builds_its_classifier(method):
    from fsar.engine.build import build_model

    cfg = load_config(
        f"{method}_ucf101_5shot",
        [
            "model.require_weights=false",
            "model.backbone=small_cnn",
            "model.backbone_kwargs={out_channels: 64}",
        ],
    )
    model = build_model(cfg, num_train_classes=70)
    assert type(model).__name__ == {"hyrsm": "HyRSMClassifier", "molo": "MoLoClassifier"}[method]
    assert model.head.num_classes == 70 and model.head.num_frames == 8 and model.tasks_per_update == 4
    if method == "molo":
        assert model.head.upsample == (2, 4, 4) and model.recon_weight == 0.05
