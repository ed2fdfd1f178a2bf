"""``data.augment_on=device`` in ``fsar train``: the loader ships uint8 clips, the trainer augments them on the
model's device (here the CPU) and training gives the same numbers as augmenting in the loader, resume included."""

import torch
from torch.utils.data._utils.pin_memory import pin_memory as torch_pin_memory

from fsar.data.augment import RawClipBatch
from fsar.data.batch import ClipBatch
from fsar.data.episodes import EpisodeSampler
from fsar.engine import trainer as trainer_module
from fsar.engine.checkpoint import load_checkpoint, save_checkpoint
from fsar.engine.config import load_config
from fsar.engine.episode_data import EpisodeDataset, episode_loader
from fsar.engine.trainer import Trainer
from tests.engine.fake_data import pixel_clips

BASE = [
    "model.backbone_kwargs={width: 8, out_channels: 16}",
    "data.num_frames=4",
    "episodes.train_queries=2",
    "train.tasks=6",
    "train.tasks_per_update=2",
    "train.val_every=6",
    "train.val_episodes=3",
    "train.log_every=2",
    "train.tensorboard=false",
    "train.threads=1",
    "train.device=cpu",
    "eval.episodes=4",
    "eval.order_episodes=0",
    "optim.lr=0.01",
]


def cfg(*extra):
    return load_config(None, BASE + list(extra))


def weights(path):
    return load_checkpoint(path)["model"]


def test_training_with_device_augmentation_equals_loader_augmentation(tmp_path, monkeypatch):
    seen = []
    real = trainer_module.to_device

    def spy(batch, device):
        seen.append(type(batch))
        out = real(batch, device)
        assert isinstance(out, ClipBatch) and out.frames.dtype == torch.float32
        return out

    monkeypatch.setattr(trainer_module, "to_device", spy)
    a = Trainer(cfg("data.augment_on=loader"), tmp_path / "a", log=lambda *a: None, clips=pixel_clips()).fit()
    assert set(seen) == {ClipBatch}
    seen.clear()
    b = Trainer(cfg("data.augment_on=device"), tmp_path / "b", log=lambda *a: None, clips=pixel_clips()).fit()
    assert set(seen) == {RawClipBatch}  # the loader shipped uint8 clips, the trainer augmented them
    wa, wb = weights(tmp_path / "a" / "last.pt"), weights(tmp_path / "b" / "last.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a["test_mean"] == b["test_mean"]


def test_naive_evaluation_with_device_augmentation_equals_loader_augmentation(tmp_path):
    over = ("eval.mode=naive", "train.tasks=2")
    a = Trainer(
        cfg("data.augment_on=loader", *over), tmp_path / "a", log=lambda *a: None, clips=pixel_clips()
    ).fit()
    b = Trainer(
        cfg("data.augment_on=device", *over), tmp_path / "b", log=lambda *a: None, clips=pixel_clips()
    ).fit()
    assert (a["test_mean"], a["test_ci95"]) == (b["test_mean"], b["test_ci95"])


def test_resume_with_device_augmentation_is_bit_identical(tmp_path):
    over = ("data.augment_on=device", "train.checkpoint_every=2", "data.workers=1")
    Trainer(cfg(*over), tmp_path / "full", log=lambda *a: None, clips=pixel_clips()).fit()
    Trainer(cfg(*over, "train.tasks=4"), tmp_path / "cut", log=lambda *a: None, clips=pixel_clips()).fit()
    ck = load_checkpoint(tmp_path / "cut" / "last.pt")
    ck["config"]["train"]["tasks"] = 6
    save_checkpoint(tmp_path / "cut" / "last.pt", {k: v for k, v in ck.items() if k != "format_version"})
    Trainer(cfg(*over), tmp_path / "cut", log=lambda *a: None, clips=pixel_clips()).fit()
    full, resumed = weights(tmp_path / "full" / "last.pt"), weights(tmp_path / "cut" / "last.pt")
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_raw_batches_are_pinned_whole_by_the_data_loader(monkeypatch):
    pinned = []

    def fake_pin(self, *args, **kwargs):  # a CPU-only build cannot pin: record the call instead
        pinned.append((self.dtype, tuple(self.shape)))
        return self.clone()

    clips = pixel_clips()["train"]
    sampler = EpisodeSampler(clips.labels, 5, 1, 2, seed=0)
    dataset = EpisodeDataset(clips, sampler.episode, 1, True, 0, augment_on="device")
    episode, support, query = next(iter(episode_loader(dataset, 0)))
    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    _, s_pin, q_pin = torch_pin_memory((episode, support, query))  # what DataLoader(pin_memory=True) does
    assert isinstance(s_pin, RawClipBatch) and s_pin.plans == support.plans
    uint8 = [shape for dtype, shape in pinned if dtype == torch.uint8]
    assert len(uint8) == len(support) + len(query) == 15 and all(s[0] == 4 and s[-1] == 3 for s in uint8)
    assert s_pin.augment().frames.shape == (5, 4, 3, 16, 16)
