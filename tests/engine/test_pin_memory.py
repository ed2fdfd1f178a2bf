"""Loader batches are pinned and copied asynchronously only for CUDA devices (the code path; timed on a GPU)."""

import torch
from torch.utils.data._utils.pin_memory import pin_memory as torch_pin_memory

from fsar.data.batch import ClipBatch
from fsar.data.episodes import EpisodeSampler
from fsar.engine import trainer as trainer_module
from fsar.engine.config import load_config
from fsar.engine.episode_data import EpisodeDataset, episode_loader, pin_memory_for
from fsar.engine.trainer import Trainer
from tests.engine.fake_data import fake_clips


def test_pinning_is_asked_for_cuda_devices_only():
    assert pin_memory_for("cuda") and pin_memory_for(torch.device("cuda:1"))
    assert not pin_memory_for("cpu") and not pin_memory_for(None) and not pin_memory_for("mps")
    clips = fake_clips()["train"]
    sampler = EpisodeSampler(clips.labels, 5, 1, 2, seed=0)
    dataset = EpisodeDataset(clips, sampler.episode, 2, True, 0)
    assert episode_loader(dataset, 0, "cuda").pin_memory is True
    assert episode_loader(dataset, 0, torch.device("cpu")).pin_memory is False
    assert episode_loader(dataset, 0).pin_memory is False


def test_the_data_loader_pins_every_tensor_of_a_clip_batch(monkeypatch):
    pinned = []

    def fake_pin(self, *args, **kwargs):  # a CPU-only build cannot pin: record the call instead
        pinned.append(tuple(self.shape))
        return self.clone()

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    batch = ClipBatch(
        frames=torch.zeros(2, 3, 3, 4, 4),
        labels=torch.tensor([0, 1]),
        global_labels=torch.tensor([3, 4]),
        video_ids=["a", "b"],
        short=torch.tensor([False, True]),
    )
    episode, support, query = torch_pin_memory(("episode", batch, batch))  # what DataLoader(pin_memory) does
    assert episode == "episode" and isinstance(support, ClipBatch) and support.video_ids == ["a", "b"]
    assert sorted(pinned) == sorted([(2, 3, 3, 4, 4), (2,), (2,), (2,)] * 2)
    torch.testing.assert_close(query.global_labels, batch.global_labels)


def test_the_trainer_asks_the_loader_for_its_device(monkeypatch, tmp_path):
    seen = []
    real = trainer_module.episode_loader

    def spy(dataset, workers, device=None, **seeding):
        seen.append(device)
        return real(dataset, workers, device, **seeding)

    monkeypatch.setattr(trainer_module, "episode_loader", spy)
    cfg = load_config(
        None,
        [
            "model.backbone_kwargs={width: 8, out_channels: 16}",
            "data.num_frames=4",
            "episodes.train_queries=2",
            "train.tasks=2",
            "train.val_every=2",
            "train.val_episodes=4",
            "train.tensorboard=false",
            "train.device=cpu",
            "eval.episodes=4",
            "eval.mode=naive",
        ],
    )
    Trainer(cfg, tmp_path, log=lambda *a: None, clips=fake_clips()).fit()
    assert seen and all(torch.device(d).type == "cpu" for d in seen)
