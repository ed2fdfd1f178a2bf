"""Base-class pretraining of the backbone: schedule, order-aware heads, outputs, reproducibility, reuse, errors."""

import csv
import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file

from fsar.backbones.small_cnn import small_cnn
from fsar.backbones.weights import WeightsError
from fsar.data.synthetic import SynthConfig, generate_synthetic
from fsar.engine.build import build_backbone, build_model
from fsar.engine.config import Config, load_config
from fsar.engine.pretrain import batch_plan, one_cycle_multiplier, pretrain_backbone
from fsar.engine.pretrain_heads import FrameClassifier, TemporalHead
from fsar.errors import ConfigError, FsarError
from tests.engine.fake_data import fake_clips

TINY_CNN = "model.backbone_kwargs={width: 4, out_channels: 8, in_channels: 6, num_blocks: 2}"
TINY_KWARGS = dict(width=4, out_channels=8, in_channels=6, num_blocks=2)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "tiny"
    generate_synthetic(out, SynthConfig.preset("tiny"), workers=1, progress=False)
    return out


def tiny_cfg(synth, *extra):
    base = [f"data.root={synth}", "data.workers=0", "data.num_frames=4", "data.resize_to=[16, 16]", TINY_CNN]
    base += ["pretrain.epochs=2", "pretrain.batch_videos=8", "pretrain.val_episodes=10", "train.device=cpu"]
    return load_config("demo_pretrain", base + list(extra))


def quiet(*args, **kwargs):
    pass


@pytest.fixture(scope="module")
def pretrained(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrained")
    lines = []
    summary = pretrain_backbone(tiny_cfg(synth), out, log=lines.append)
    return out, summary, lines


def backbone_tensors(out):
    return load_file(str(out / "backbone.safetensors"))


# ------------------------------------------------------------------------------------------------------- units
def test_config_defaults_and_strict_keys():
    pre = Config().pretrain
    assert (pre.epochs, pre.batch_videos, pre.lr, pre.weight_decay, pre.warmup_fraction) == (
        15,
        32,
        2e-3,
        1e-4,
        0.15,
    )
    assert (pre.head, pre.label_smoothing, pre.seed, pre.precision, pre.val_episodes) == (
        "temporal_conv",
        0.0,
        0,
        "fp32",
        300,
    )
    with pytest.raises(
        ConfigError, match=r"unknown key pretrain\.'epoch'.*valid keys here: batch_videos, epochs"
    ):
        load_config(None, ["pretrain.epoch=3"])
    for bad, match in (
        ("pretrain.head=mean", "pretrain.head must be one of temporal_conv, temporal_linear"),
        ("pretrain.precision=fp16", "pretrain.precision must be one of fp32, bf16"),
        ("pretrain.epochs=0", "pretrain.epochs must be >= 1"),
        ("pretrain.warmup_fraction=1.0", "pretrain.warmup_fraction < 1"),
        ("pretrain.lr=abc", "pretrain.lr must be float"),
    ):
        with pytest.raises(ConfigError, match=match):
            load_config(None, [bad])
    assert load_config("demo_pretrain").pretrain.precision == "fp32"  # the same numbers on every machine


def test_one_cycle_schedule_warms_up_then_decays_to_zero():
    total, frac = 100, 0.15
    m = [one_cycle_multiplier(s, total, frac) for s in range(total)]
    assert m[0] == pytest.approx(1 / 15) and m[14] == pytest.approx(1.0) and m[15] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(m[:15], m[1:15]))  # linear warm-up
    assert all(a > b for a, b in zip(m[15:], m[16:]))  # cosine decay
    assert m[57] == pytest.approx(0.5 * (1 + math.cos(math.pi * 42 / 85)))
    assert 0 < m[-1] < 1e-3
    assert one_cycle_multiplier(0, 10, 0.0) == 1.0  # no warm-up


def test_batch_plan_visits_every_video_once_per_epoch_in_a_seeded_order():
    plan = batch_plan(num_videos=10, batch_videos=4, epochs=3, seed=0)
    assert [len(b) for b in plan] == [4, 4, 2] * 3
    orders = []
    for epoch in range(3):
        items = [item for batch in plan[3 * epoch : 3 * epoch + 3] for item in batch]
        assert {e for e, _ in items} == {epoch}
        assert sorted(v for _, v in items) == list(range(10))
        orders.append([v for _, v in items])
    assert orders[0] != orders[1] != orders[2]
    assert plan == batch_plan(10, 4, 3, seed=0) and plan != batch_plan(10, 4, 3, seed=1)


@pytest.mark.parametrize("kind", ["temporal_conv", "temporal_linear"])
def test_head_sees_frame_order_where_mean_pooling_does_not(kind):
    torch.manual_seed(0)
    head = TemporalHead(kind, channels=6, num_frames=5, num_classes=4)
    feats = torch.randn(3, 5, 6)
    reversed_ = feats.flip(1)
    logits = head(feats)
    assert logits.shape == (3, 4)
    assert (head(reversed_) - logits).abs().max() > 1e-3  # order changes the logits
    mean_pooled = torch.nn.Linear(6, 4)  # the order-blind alternative: same frames, same output
    assert torch.allclose(mean_pooled(feats.mean(1)), mean_pooled(reversed_.mean(1)), atol=1e-6)
    logits.sum().backward()
    assert head.classifier.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"expects features \[B, 5, 6\]; got \(3, 4, 6\)"):
        head(feats[:, :4])
    with pytest.raises(ValueError, match="must be one of"):
        TemporalHead("mean", 6, 5, 4)


def test_frame_classifier_shapes_and_gradients_reach_the_backbone():
    torch.manual_seed(0)
    backbone = small_cnn(width=4, out_channels=8, num_blocks=2)
    model = FrameClassifier(backbone, TemporalHead("temporal_conv", 8, 3, 5))
    frames = torch.randn(2, 3, 3, 16, 16)
    assert model.frame_features(frames).shape == (2, 3, 8)
    model(frames).sum().backward()
    assert backbone.layers[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\[B, T, C, H, W\]"):
        model(frames[0])


# -------------------------------------------------------------------------------- end to end (in-memory clips)
FAKE = ["data.num_frames=4", "model.backbone_kwargs={width: 8, out_channels: 16}", "pretrain.val_episodes=20"]
FAKE += ["pretrain.batch_videos=8", "train.device=cpu"]


def test_pretraining_fits_the_training_classes(tmp_path):
    cfg = load_config(None, FAKE + ["pretrain.epochs=12", "pretrain.lr=0.01"])
    summary = pretrain_backbone(cfg, tmp_path, log=quiet, clips=fake_clips())
    rows = summary["epochs"]
    assert len(rows) == 12 and summary["num_classes"] == 8 and summary["videos"] == 48
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    assert rows[-1]["train_acc"] >= 90 > rows[0]["train_acc"]  # chance: 12.5%
    assert rows[-1]["lr"] < 0.01 * max(r["lr"] for r in rows)  # cosine to ~0
    val = summary["val"]
    assert val["protonet"]["episodes"] == val["otam"]["episodes"] == 20


def test_bf16_autocast_trains(tmp_path):
    cfg = load_config(
        None, FAKE + ["pretrain.epochs=1", "pretrain.precision=bf16", "pretrain.val_episodes=0"]
    )
    summary = pretrain_backbone(cfg, tmp_path, log=quiet, clips=fake_clips())
    assert math.isfinite(summary["epochs"][0]["loss"]) and summary["val"] == {}
    assert all(t.dtype != torch.bfloat16 for t in backbone_tensors(tmp_path).values())  # weights stay fp32


def test_frozen_backbone_and_feature_cache_are_refused(tmp_path):
    frozen = load_config(None, FAKE + ["model.backbone_kwargs={width: 8, out_channels: 16, frozen: true}"])
    with pytest.raises(ConfigError, match="frozen"):
        pretrain_backbone(frozen, tmp_path, log=quiet, clips=fake_clips())
    cached = load_config(None, FAKE + ["data.feature_cache=somewhere"])
    with pytest.raises(ConfigError, match="data.feature_cache"):
        pretrain_backbone(cached, tmp_path, log=quiet, clips=fake_clips())


# ---------------------------------------------------------------------------- end to end (synthetic benchmark)
def test_pretrain_writes_its_outputs(pretrained, synth):
    out, summary, lines = pretrained
    for name in ("backbone.safetensors", "head.safetensors", "pretrain.json", "pretrain_log.csv"):
        assert (out / name).is_file(), name
    assert (summary["num_classes"], summary["videos"], summary["steps"]) == (
        5,
        30,
        8,
    )  # steps: 2 x ceil(30 / 8)
    assert not summary["reused"]
    rows = list(csv.DictReader((out / "pretrain_log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(math.isfinite(float(r["loss"])) and float(r["videos_per_s"]) > 0 for r in rows)
    on_disk = json.loads((out / "pretrain.json").read_text())
    assert on_disk["epochs"] == summary["epochs"] and on_disk["config"]["pretrain"]["epochs"] == 2
    for method in ("protonet", "otam"):
        assert on_disk["val"][method]["episodes"] == 10 and 0 <= on_disk["val"][method]["mean"] <= 100
    assert any("ProtoNet" in line and "OTAM" in line for line in lines)
    head = load_file(str(out / "head.safetensors"))
    assert head["classifier.weight"].shape == (5, 4 * 8) and head["temporal.0.weight"].shape == (8, 8, 3)
    assert load_config(out / "config.yaml").pretrain.epochs == 2


def test_backbone_weights_change(pretrained, synth):
    out, _, _ = pretrained
    cfg = tiny_cfg(synth)
    torch.manual_seed(cfg.pretrain.seed)
    initial = build_backbone(cfg.model).state_dict()
    trained = backbone_tensors(out)
    assert set(trained) == set(initial)
    assert not torch.equal(trained["layers.0.weight"], initial["layers.0.weight"])
    assert not torch.equal(trained["layers.5.running_mean"], initial["layers.5.running_mean"])


def test_same_config_and_seed_give_identical_weights_whatever_the_workers(pretrained, synth, tmp_path):
    out, _, _ = pretrained
    pretrain_backbone(tiny_cfg(synth, "data.workers=1"), tmp_path / "w1", log=quiet)
    pretrain_backbone(tiny_cfg(synth, "pretrain.seed=1"), tmp_path / "seed1", log=quiet)
    a, b, c = backbone_tensors(out), backbone_tensors(tmp_path / "w1"), backbone_tensors(tmp_path / "seed1")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the seed matters, so the equality above is not vacuous
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_backbone_weights_round_trip_into_build_model(pretrained, synth):
    out, _, _ = pretrained
    path = out / "backbone.safetensors"
    saved = backbone_tensors(out)
    cfg = load_config("demo_otam", [TINY_CNN, f"model.backbone_weights={path}"])
    model = build_model(cfg, num_train_classes=5)
    assert all(torch.equal(model.backbone.state_dict()[k], v) for k, v in saved.items())
    direct = small_cnn(weights=path, **TINY_KWARGS)
    assert all(torch.equal(direct.state_dict()[k], v) for k, v in saved.items())
    with pytest.raises(WeightsError, match="do not fit"):
        small_cnn(weights=path, width=4, out_channels=16, in_channels=6, num_blocks=2)


def test_finished_folder_is_reused_refused_or_forced(pretrained, synth, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(pretrained[0], out)
    before = (out / "backbone.safetensors").stat().st_mtime_ns
    lines = []
    again = pretrain_backbone(tiny_cfg(synth, "data.workers=1"), out, log=lines.append)  # loading speed only
    assert again["reused"] and again["epochs"] == pretrained[1]["epochs"]
    assert any("reusing" in line and str(out / "backbone.safetensors") in line for line in lines)
    assert (out / "backbone.safetensors").stat().st_mtime_ns == before
    with pytest.raises(
        FsarError, match=r"different config \(pretrain\.epochs: .* has 2, this config has 1\).*--force"
    ):
        pretrain_backbone(tiny_cfg(synth, "pretrain.epochs=1"), out, log=quiet)
    with pytest.raises(FsarError, match=r"model\.backbone_kwargs\.width"):
        pretrain_backbone(tiny_cfg(synth, TINY_CNN.replace("width: 4", "width: 2")), out, log=quiet)
    forced = pretrain_backbone(tiny_cfg(synth, "pretrain.epochs=1"), out, log=quiet, force=True)
    assert not forced["reused"] and len(forced["epochs"]) == 1
    assert json.loads((out / "pretrain.json").read_text())["config"]["pretrain"]["epochs"] == 1


def test_unfinished_folder_is_redone(pretrained, synth, tmp_path):
    out = tmp_path / "partial"
    shutil.copytree(pretrained[0], out)
    (out / "pretrain.json").unlink()  # e.g. killed before the end: no summary
    summary = pretrain_backbone(tiny_cfg(synth, "pretrain.val_episodes=0"), out, log=quiet)
    assert not summary["reused"] and (out / "pretrain.json").is_file()
