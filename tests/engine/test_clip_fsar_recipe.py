"""CLIP-FSAR presets: the released recipes, true 5-shot, refusal without weights, the schedule, and the method
end to end on the tiny synthetic benchmark (random weights, hashed class text)."""

import json

import pytest
import torch

from fsar.engine.build import lr_multiplier
from fsar.engine.config import PRESETS_DIR, load_config
from fsar.errors import ConfigError

BENCHES = ("ssv2full", "ssv2small", "kinetics100", "ucf101", "hmdb51")
# clip_fsar.md §5: w, BASE_LR, WARMUP_START_LR, WEIGHT_DECAY, STEPS_ITER, STEPS, NUM_TRAIN_TASKS, VAL_FRE_ITER
RECIPES = {
    "ssv2full": (3.0, 5e-5, 1e-5, 5e-5, 4000, (0, 4, 6), 30000, 1000, "ssv2_full"),
    "ssv2small": (3.0, 5e-5, 2e-5, 5e-5, 2000, (0, 4, 6), 30000, 1000, "ssv2_small"),
    "kinetics100": (1.5, 1e-5, 5e-6, 5e-4, 250, (0, 6, 9), 5000, 100, "kinetics100"),
    "ucf101": (1.5, 2e-6, 1e-7, 5e-5, 600, (0, 4, 6), 3000, 100, "ucf101"),
    "hmdb51": (1.2, 1e-5, 1e-6, 5e-5, 700, (0, 4, 6), 5000, 300, "hmdb51"),
}
WEIGHTS = ["model.backbone_weights=RN50.pt"]


def original_lr(tasks_done, base, warm_start, steps_iter, steps, max_epoch=10):
    """CLIP-FSAR's ``steps_with_relative_lrs`` with a linear warm-up over the first epoch (clip_fsar.md §4)."""
    epoch = tasks_done / steps_iter
    rel = [1.0, 0.1, 0.01]

    def at(e):
        bounds = list(steps) + [max_epoch]
        ind = next((i for i, s in enumerate(bounds) if e < s), len(bounds))
        return base * rel[min(ind - 1, len(rel) - 1)]

    if epoch < 1:
        return warm_start + (at(1) - warm_start) * epoch
    return at(epoch)


def test_every_benchmark_shot_and_backbone_has_a_preset():
    names = {p.stem for p in PRESETS_DIR.glob("clip_fsar_*.yaml")}
    for arch in ("rn50", "vitb16"):
        for bench in BENCHES:
            for shot in (1, 5):
                assert f"clip_fsar_{arch}_{bench}_{shot}shot" in names
    assert "demo_clip_fsar_tiny" in {p.stem for p in PRESETS_DIR.glob("demo_*.yaml")}


@pytest.mark.parametrize("bench", BENCHES)
def test_recipes_match_the_released_configs(bench):
    w, lr, warm, wd, steps_iter, steps, tasks, val, benchmark = RECIPES[bench]
    for arch, backbone in (("rn50", "clip_rn50"), ("vitb16", "clip_vit_b16")):
        for shot in (1, 5):
            cfg = load_config(f"clip_fsar_{arch}_{bench}_{shot}shot", WEIGHTS)
            assert cfg.data.benchmark == benchmark and cfg.model.backbone == backbone
            assert cfg.episodes.shot == shot and cfg.episodes.way == 5  # true 5-shot
            assert (cfg.episodes.train_queries, cfg.episodes.test_queries, cfg.data.num_frames) == (5, 1, 8)
            k = cfg.model.kwargs
            assert k["text_weight"] == w and k["merge_before"] is (shot == 5) and k["text_encoder"] == "clip"
            assert (k["num_heads"], k["mlp_dim"], k["depth"], k["otam_lambda"]) == (8, 2048, 1, 0.5)
            assert (k["attn_dropout"], k["ffn_dropout"], k["prompt"]) == (0.2, 0.05, "a photo of {}")
            o = cfg.optim
            assert (o.name, o.lr, o.weight_decay, o.schedule) == ("adam", lr, wd, "multistep")
            assert (cfg.train.tasks, cfg.train.val_every, cfg.train.tasks_per_update) == (tasks, val, 4)
            assert (cfg.data.normalization, cfg.data.resize_short, cfg.data.crop) == ("clip", 256, 224)
            assert cfg.eval.episodes == 10_000 and cfg.train.select_on == "val"
            assert cfg.notes and ("ViT-B/16" in cfg.notes)
            for t in list(range(0, tasks, max(1, tasks // 97))) + [steps_iter - 1, steps_iter, tasks - 1]:
                expected = original_lr(t, lr, warm, steps_iter, steps)
                got = lr * lr_multiplier(o, t, tasks)
                step = (lr - warm) / steps_iter  # fsar's warm-up is one task ahead: (t + 1) / W
                assert got == pytest.approx(expected, rel=1e-9, abs=step * 1.0001), t


def test_five_shot_notes_say_what_the_originals_did():
    text = (PRESETS_DIR / "clip_fsar_rn50_ucf101_5shot.yaml").read_text()
    assert "trained 1-shot" in text and "episodes.shot=5 model.kwargs.merge_before=true" in text
    assert "96.6" in (PRESETS_DIR / "clip_fsar_vitb16_ucf101_1shot.yaml").read_text()
    assert "97.0" in load_config("clip_fsar_vitb16_ucf101_1shot", WEIGHTS).notes  # the sources disagree


def test_refused_without_local_weights_and_tokenizer(tmp_path):
    with pytest.raises(ConfigError, match="needs pretrained clip_rn50 weights"):
        load_config("clip_fsar_rn50_hmdb51_1shot")
    with pytest.raises(ConfigError, match="needs pretrained clip_vit_b16 weights"):
        load_config("clip_fsar_vitb16_ssv2full_5shot")
    from fsar.backbones.clip import TokenizerNotFoundError
    from fsar.engine.build import build_model
    from tests.backbones.clip_layout import as_openai_file, openai_state_dict, write_tiny_tokenizer

    torch.save(as_openai_file(openai_state_dict("vit", seed=9)), tmp_path / "ViT.pt")
    cfg = load_config("clip_fsar_vitb16_hmdb51_5shot", [f"model.backbone_weights={tmp_path / 'ViT.pt'}"])
    with pytest.raises(TokenizerNotFoundError, match="tokenizer_folder"):
        build_model(cfg, num_train_classes=31)
    write_tiny_tokenizer(tmp_path / "tok")
    cfg = load_config(
        "clip_fsar_vitb16_hmdb51_5shot",
        [
            f"model.backbone_weights={tmp_path / 'ViT.pt'}",
            f"model.kwargs.tokenizer_folder={tmp_path / 'tok'}",
        ],
    )
    model = build_model(cfg, num_train_classes=2, train_class_names=["brush_hair", "cartwheel"])
    assert model.head.feat_dim == 32 and model.head.merge_before and model.text_weight == 1.2
    assert model.train_text_table(torch.device("cpu"), torch.float32).shape == (
        2,
        32,
    )  # text from the same .pt


def test_multistep_schedule_and_warmup_start_validation():
    cfg = load_config(None, ["optim.schedule=multistep", "optim.milestones=[10, 20]", "optim.warmup_tasks=4"])
    assert [lr_multiplier(cfg.optim, t, 30) for t in (0, 3, 9, 10, 19, 20, 29)] == pytest.approx(
        [0.25, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01]
    )
    with pytest.raises(ConfigError, match="milestones"):
        load_config(None, ["optim.schedule=multistep"])
    with pytest.raises(ConfigError, match="milestones"):
        load_config(None, ["optim.schedule=multistep", "optim.milestones=[20, 10]"])
    with pytest.raises(ConfigError, match="warmup_start"):
        load_config(None, ["optim.warmup_start=1.5"])


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from fsar.data.synthetic import SynthConfig, generate_synthetic

    out = tmp_path_factory.mktemp("synth") / "tiny"
    generate_synthetic(out, SynthConfig.preset("tiny"), workers=1, progress=False)
    return out


@pytest.mark.slow
def test_demo_preset_end_to_end_on_the_tiny_benchmark_is_deterministic(synth, tmp_path):
    from fsar.engine.checkpoint import load_checkpoint
    from fsar.engine.trainer import Trainer

    overrides = [f"data.root={synth}", "train.tasks=4", "train.val_every=2", "train.val_episodes=6"]
    overrides += ["eval.episodes=8", "eval.order_episodes=0", "train.tensorboard=false", "train.device=cpu"]
    cfg = load_config("demo_clip_fsar_tiny", overrides)
    results, weights = [], []
    for run in ("a", "b"):
        trainer = Trainer(cfg, tmp_path / run, log=lambda *a: None)
        results.append(trainer.fit())
        weights.append(load_checkpoint(tmp_path / run / "last.pt")["model"])
        names = trainer.model.train_class_names
        assert len(names) == trainer.num_train_classes and names[0].startswith("c0")  # synth names, verbatim
    assert results[0]["test_mean"] == results[1]["test_mean"] and results[0]["test_episodes"] == 8
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert weights[0]["head.scale"].item() != 1.0  # the video-text loss trained
    saved = json.loads((tmp_path / "a" / "results.json").read_text())
    assert saved["method"] == "clip_fsar"
