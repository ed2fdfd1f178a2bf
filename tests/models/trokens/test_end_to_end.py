"""Trokens end to end on the tiny synthetic benchmark: `fsar synth`, `fsar track` (LK), `fsar train demo_trokens_tiny`."""

from __future__ import annotations

import json

import pytest

from fsar.cli.main import main


@pytest.mark.slow
def test_trokens_trains_and_evaluates_on_the_tiny_synthetic_benchmark(tmp_path):
    synth, tracks, run = tmp_path / "synth", tmp_path / "tracks", tmp_path / "run"
    assert main(["synth", "--out", str(synth), "--preset", "tiny", "--quiet"]) == 0
    track = ["track", "--benchmark", "synthetic", "--root", str(synth), "--out", str(tracks)]
    assert main([*track, "--grid", "8", "--points", "64", "--max-fps", "6", "--no-progress"]) == 0
    args = ["train", "demo_trokens_tiny", "--out", str(run), f"data.root={synth}", f"data.tracks={tracks}"]
    args += ["train.tasks=2", "train.val_every=2", "train.val_episodes=4", "eval.episodes=6"]
    assert main([*args, "eval.order_episodes=0", "train.tensorboard=false"]) == 0
    result = json.loads((run / "results.json").read_text())
    assert result["test_episodes"] == 6 and 0 <= result["test_mean"] <= 100
    assert result["selected_on"] == "val"
    import torch

    state = torch.load(run / "best.pt", map_location="cpu", weights_only=False)
    names = set(state["model"]) if "model" in state else set(state)
    assert any("hod_embed.fc1.weight" in n for n in names) and any("rel_embed.norm.bias" in n for n in names)
