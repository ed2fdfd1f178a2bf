"""The trainer on a CUDA GPU: fp16 with the grad scaler and bf16 autocast steps, and pinned-memory loading."""

import math

import pytest
import torch

from fsar.data.episodes import EpisodeSampler
from fsar.engine.checkpoint import load_checkpoint
from fsar.engine.episode_data import EpisodeDataset, episode_loader
from fsar.engine.trainer import Trainer
from tests.engine.fake_data import fake_clips, fake_split
from tests.engine.test_trainer import make_cfg

pytestmark = pytest.mark.cuda


HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}


def check_mixed_precision_training(tmp_path, method: str, precision: str, device: str) -> None:
    """Train 4 tasks (2 updates) in ``precision`` on ``device`` and check what mixed precision means: every
    convolution of every training step ran in the half dtype under autocast, the weights stay fp32 and were
    updated (finite), fp16 has a grad scaler that took both steps and is saved in the checkpoint (bf16 has none),
    and the reported test accuracy is that of the selected checkpoint."""
    import torch.nn as nn

    from fsar.engine.build import build_model
    from fsar.engine.trainer import evaluate_split, test_episodes

    cfg = make_cfg(
        f"model.name={method}", f"train.precision={precision}", f"train.device={device}", "train.tasks=4"
    )
    steps, conv_dtypes, hooked = [], set(), set()

    def on_step(episode, updated, model):
        steps.append((next(model.parameters()).device.type, updated))
        if not hooked:  # from the first step on: the hooks see the later steps' convolutions
            for module in model.modules():
                if isinstance(module, nn.Conv2d | nn.Conv3d):
                    module.register_forward_hook(
                        lambda m, i, out: conv_dtypes.add(out.dtype) if m.training else None
                    )
            hooked.add(True)

    clips = {  # 64 px: TA2N's TTM needs maps of at least 4x4 after the small CNN's 16x reduction
        "train": fake_split("train", 8, 6, 4, size=64),
        "val": fake_split("val", 5, 4, 4, size=64, offset=100),
        "test": fake_split("test", 5, 4, 4, size=64, offset=200),
    }
    trainer = Trainer(cfg, tmp_path, log=lambda *a: None, clips=clips, on_step=on_step)
    result = trainer.fit()
    assert steps == [(device, False), (device, True), (device, False), (device, True)]
    assert trainer.device.type == device
    assert conv_dtypes == {HALF[precision]}, conv_dtypes  # autocast was on, in the requested dtype
    ck = load_checkpoint(tmp_path / "last.pt")
    torch.manual_seed(cfg.train.seed)  # the trainer's initial weights
    initial = build_model(cfg, num_train_classes=8).state_dict()
    weights = {k: v for k, v in ck["model"].items() if v.is_floating_point()}
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights.values())  # fp32 masters
    changed = [k for k, v in weights.items() if not torch.equal(v.cpu(), initial[k])]
    assert any(k.startswith("backbone") for k in changed), "no update reached the weights"
    # fp16: the grad scaler is on and saved; it starts at 2^16 and halves on each skipped step
    if precision == "fp16":
        skipped = math.log2(2.0**16 / ck["scaler"]["scale"])
        assert skipped in (0.0, 1.0) and ck["scaler"]["_growth_tracker"] <= 2 - skipped  # >= 1 step taken
    else:
        assert not ck["scaler"]  # bf16 needs no scaler
    rows = (tmp_path / "train_log.csv").read_text().splitlines()
    assert len(rows) == 3 and "nan" not in rows[-1].lower()
    # the reported test accuracy is that of the selected checkpoint, evaluated the same way
    model = build_model(cfg, num_train_classes=8).to(trainer.device)
    model.load_state_dict(load_checkpoint(tmp_path / "best.pt")["model"])
    episodes = test_episodes(cfg, clips["test"], 5, 1, 1)
    again = evaluate_split(model, clips["test"], episodes, trainer.device, cfg, cfg.eval.seed).summary
    assert result["test_episodes"] == 10 and result["test_mean"] == pytest.approx(again.mean, abs=10.0)


@pytest.mark.parametrize("method", ["otam", "ta2n"])
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_training_on_cuda(tmp_path, method, precision):
    check_mixed_precision_training(tmp_path, method, precision, "cuda")


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


@pytest.mark.parametrize("workers", [0, 2])
def test_device_augmentation_on_cuda_matches_the_loader_within_rounding(workers):
    """``data.augment_on=device`` on a GPU: pinned uint8 clips, copied without blocking, augmented there (RandAugment,
    resize, crop, flip, normalisation) equal the loader's CPU tensors up to the kernels' float rounding."""
    from fsar.data.augment import RawClipBatch
    from fsar.engine.episode_data import to_device
    from tests.engine.fake_data import pixel_clips

    clips = pixel_clips()["train"]
    episodes = EpisodeSampler(clips.labels, 5, 1, 2, seed=0).take(4)
    loader = EpisodeDataset(clips, lambda i: episodes[i], 4, train=True, seed=0)
    device = EpisodeDataset(clips, lambda i: episodes[i], 4, train=True, seed=0, augment_on="device")
    cuda = torch.device("cuda")
    for (_, s0, q0), (_, s1, q1) in zip(
        list(episode_loader(loader, 0)), episode_loader(device, workers, cuda)
    ):
        assert isinstance(s1, RawClipBatch) and all(
            f.is_pinned() and f.dtype == torch.uint8 for f in s1.frames
        )
        for cpu, raw in ((s0, s1), (q0, q1)):
            out = to_device(raw, cuda)
            assert out.frames.device.type == "cuda" and out.frames.dtype == torch.float32
            # one grey level of a RandAugment blend may round the other way: 1/255/std ~ 0.018 after normalising
            diff = (out.frames.cpu() - cpu.frames).abs()
            assert diff.max() < 0.05 and diff.mean() < 1e-3, (diff.max(), diff.mean())
            assert torch.equal(out.labels.cpu(), cpu.labels)
