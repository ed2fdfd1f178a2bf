"""The trainer on a CUDA GPU: fp16 with the grad scaler and bf16 autocast steps, and pinned-memory loading."""

import pytest
import torch

from fsar.data.episodes import EpisodeSampler
from fsar.engine.checkpoint import load_checkpoint
from fsar.engine.episode_data import EpisodeDataset, episode_loader
from fsar.engine.trainer import Trainer
from tests.engine.fake_data import fake_clips, fake_split
from tests.engine.test_trainer import make_cfg

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("method", ["otam", "ta2n"])
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_training_on_cuda(tmp_path, method, precision):
    cfg = make_cfg(
        f"model.name={method}", f"train.precision={precision}", "train.device=cuda", "train.tasks=4"
    )
    devices = set()

    def on_step(episode, updated, model):
        devices.add(next(model.parameters()).device.type)

    clips = {  # 64 px: TA2N's TTM needs maps of at least 4x4 after the small CNN's 16x reduction
        "train": fake_split("train", 8, 6, 4, size=64),
        "val": fake_split("val", 5, 4, 4, size=64, offset=100),
        "test": fake_split("test", 5, 4, 4, size=64, offset=200),
    }
    trainer = Trainer(cfg, tmp_path, log=lambda *a: None, clips=clips, on_step=on_step)
    result = trainer.fit()
    assert devices == {"cuda"} and trainer.device.type == "cuda"
    assert 0 <= result["test_mean"] <= 100
    ck = load_checkpoint(tmp_path / "last.pt")
    weights = {k: v for k, v in ck["model"].items() if v.is_floating_point()}
    assert all(torch.isfinite(v).all() for v in weights.values())
    if precision == "fp16":  # the grad scaler is on and saved with its state
        assert ck["scaler"]["scale"] > 0
    else:
        assert not ck["scaler"]  # bf16 needs no scaler
    rows = (tmp_path / "train_log.csv").read_text().splitlines()
    assert len(rows) > 1 and "nan" not in rows[-1].lower()


@pytest.mark.parametrize("workers", [0, 2])
def test_pinned_batches_reach_the_gpu_unchanged(workers):
    clips = fake_clips()["train"]
    episodes = EpisodeSampler(clips.labels, 5, 1, 2, seed=0).take(3)
    dataset = EpisodeDataset(clips, lambda i: episodes[i], 3, train=True, seed=0)
    plain = list(episode_loader(dataset, 0))
    pinned = list(episode_loader(dataset, workers, device=torch.device("cuda")))
    for (_, s0, q0), (_, s1, q1) in zip(plain, pinned):
        assert s1.frames.is_pinned() and q1.labels.is_pinned() and not s0.frames.is_pinned()
        on_gpu = s1.to(torch.device("cuda"), non_blocking=True)
        torch.cuda.synchronize()
        assert on_gpu.frames.device.type == "cuda"
        assert torch.equal(on_gpu.frames.cpu(), s0.frames) and torch.equal(q1.frames, q0.frames)
