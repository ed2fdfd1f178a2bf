"""``fsar pretrain`` end to end on the tiny synthetic benchmark, and training from its weights."""

import json

import pytest

from fsar.cli.main import main

KWARGS = "model.backbone_kwargs={width: 4, out_channels: 8, in_channels: 6, num_blocks: 2}"


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    assert main(["synth", "--out", str(out), "--preset", "tiny", "--quiet"]) == 0
    return out


def pretrain_args(synth, out, *extra):
    # overrides before and after --out: they are accepted anywhere on the line
    args = ["pretrain", "demo_pretrain", f"data.root={synth}", KWARGS, "--out", str(out), "data.workers=0"]
    return args + ["data.resize_to=[16, 16]", "pretrain.epochs=1", "pretrain.val_episodes=5", *extra]


def test_pretrain_then_train_from_its_weights(synth, tmp_path, capsys):
    out = tmp_path / "pre"
    assert main(pretrain_args(synth, out)) == 0
    printed = capsys.readouterr().out
    weights = (out / "backbone.safetensors").resolve()
    assert f"model.backbone_weights={weights}" in printed
    assert json.loads((out / "pretrain.json").read_text())["val"]["otam"]["episodes"] == 5

    run = tmp_path / "run"
    args = [
        "train",
        "demo_otam_tiny",
        "--out",
        str(run),
        f"data.root={synth}",
        KWARGS,
        "data.resize_to=[16, 16]",
    ]
    args += [
        f"model.backbone_weights={weights}",
        "train.tasks=2",
        "train.val_every=2",
        "train.val_episodes=5",
    ]
    assert main(args + ["eval.episodes=5", "eval.order_episodes=0", "train.tensorboard=false"]) == 0
    assert json.loads((run / "results.json").read_text())["test_episodes"] == 5


def test_reuse_different_config_and_force(synth, tmp_path, capsys):
    out = tmp_path / "pre"
    assert main(pretrain_args(synth, out)) == 0
    capsys.readouterr()
    assert main(pretrain_args(synth, out)) == 0
    assert "already holds a finished pretrain with the same config" in capsys.readouterr().out
    assert main(pretrain_args(synth, out, "pretrain.lr=0.01")) == 1
    err = capsys.readouterr().err
    assert "pretrain.lr" in err and "--force" in err
    assert main(pretrain_args(synth, out, "pretrain.lr=0.01", "--force")) == 0
    assert json.loads((out / "pretrain.json").read_text())["config"]["pretrain"]["lr"] == 0.01


def test_unknown_pretrain_key_and_missing_out(synth, tmp_path, capsys):
    assert main(pretrain_args(synth, tmp_path / "x", "pretrain.epoch=2")) == 1
    assert "unknown key pretrain.'epoch'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["pretrain", "demo_pretrain"])
    assert exc.value.code == 2 and "--out" in capsys.readouterr().err
