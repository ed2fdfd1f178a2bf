import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fsar.models.registry import MODELS
from fsar.models.trx import TRX, TRXClassifier
from tests.models.stand_ins import StandInBackbone, random_batch

C = 16


def _model(**kw):
    torch.manual_seed(0)
    return TRXClassifier(StandInBackbone(C), num_frames=8, out_dim=24, **kw)


def test_registered_and_sized_from_the_backbone():
    torch.manual_seed(0)
    model = MODELS.create("trx", backbone=StandInBackbone(C), out_dim=24)
    assert isinstance(model, TRXClassifier) and isinstance(model.head, TRX)
    assert model.head.feat_dim == C and model.head.cardinalities == (2, 3)
    with pytest.raises(ValueError, match="feat_dim"):
        TRXClassifier(nn.Identity())


def test_encode_is_the_globally_pooled_frame_feature():
    model = _model().eval()
    batch = random_batch([0, 1], seed=1)
    feats = model.encode(batch)
    assert feats.shape == (2, 8, C)
    maps = model.backbone(batch.frames.flatten(0, 1))  # [16, C, 4, 4]
    torch.testing.assert_close(feats, maps.mean(dim=(2, 3)).view(2, 8, C))


def test_two_step_api_equals_the_head_and_trains_end_to_end():
    model = _model().train()
    support = random_batch([2, 0, 1, 1, 0, 2], seed=2)  # 3-way 2-shot, shuffled
    query = random_batch([1, 2, 0, 0], seed=3)
    s, q = model.encode(support), model.encode(query)
    torch.manual_seed(5)
    model.process_support_set(s, support.labels)
    assert model.way == 3
    logits = model(q)
    torch.manual_seed(5)
    # the head in one call, drawing dropout in the same order (support first, then query)
    torch.testing.assert_close(logits, model.head(s, support.labels, q))
    loss = model.loss(logits, query.labels, support=s, query=q)
    torch.testing.assert_close(loss, F.cross_entropy(logits, query.labels, reduction="sum"))
    loss.backward()
    assert model.backbone.conv.weight.grad.abs().sum() > 0
    for t in model.head.transformers:
        assert t.k_linear.weight.grad.abs().sum() > 0 and t.norm_k.weight.grad.abs().sum() > 0
        assert t.norm_v.weight.grad is None


def test_loss_reduction_mean_and_errors():
    model = _model(loss_reduction="mean")
    logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(model.loss(logits, labels), F.cross_entropy(logits, labels))
    with pytest.raises(ValueError, match="loss_reduction"):
        _model(loss_reduction="none")
    with pytest.raises(RuntimeError, match="process_support_set"):
        model(torch.zeros(2, 8, C))
    with pytest.raises(ValueError, match=r"T=8"):
        model.encode(random_batch([0], seed=0, t=6))
    with pytest.raises(TypeError, match="tensor"):
        model.process_support_set({"maps": torch.zeros(2, 8, C)}, torch.tensor([0, 1]))


def _engine_cfg(*extra):
    from fsar.engine.config import load_config

    return load_config(
        None,
        [
            "model.name=trx",
            "model.backbone_kwargs={width: 8, out_channels: 16}",
            "model.kwargs={out_dim: 32}",
            "data.num_frames=4",
            "episodes.train_queries=2",
            "train.tensorboard=false",
            *extra,
        ],
    )


def test_cached_evaluation_equals_naive():
    from fsar.data.episodes import EpisodeSampler
    from fsar.engine.build import build_model
    from fsar.engine.cached_eval import evaluate_cached
    from fsar.engine.episode_data import EpisodeDataset, episode_loader
    from fsar.engine.evaluate import evaluate_naive
    from tests.engine.fake_data import fake_clips

    clips = fake_clips()["test"]
    torch.manual_seed(0)
    model = build_model(_engine_cfg(), num_train_classes=8)
    assert isinstance(model, TRXClassifier) and model.head.num_frames == 4
    for shot in (1, 2):
        episodes = EpisodeSampler(clips.labels, 5, shot, 1, seed=3).take(10)
        naive = evaluate_naive(
            model,
            episode_loader(EpisodeDataset(clips, lambda i, eps=episodes: eps[i], 10, False, 0), 0),
            torch.device("cpu"),
        )
        cached = evaluate_cached(model, clips, episodes, torch.device("cpu"), batch_videos=7, progress=False)
        assert [r.predictions for r in naive] == [r.predictions for r in cached]
        assert [r.correct for r in naive] == [r.correct for r in cached]
        assert len({p for r in cached for p in r.predictions}) > 1  # not a constant prediction


@pytest.mark.slow
def test_trainer_runs_trx_with_summed_loss(tmp_path):
    from fsar.engine.build import build_model
    from fsar.engine.checkpoint import load_checkpoint
    from fsar.engine.trainer import Trainer
    from tests.engine.fake_data import fake_clips

    cfg = _engine_cfg(
        "train.tasks=4",
        "train.tasks_per_update=2",
        "train.val_every=4",
        "train.val_episodes=4",
        "train.log_every=2",
        "eval.episodes=6",
        "optim.name=sgd",
        "optim.lr=0.001",
    )
    result = Trainer(cfg, tmp_path, log=lambda *a: None, clips=fake_clips()).fit()
    assert result["test_episodes"] == 6 and 0 <= result["test_mean"] <= 100
    weights = load_checkpoint(tmp_path / "last.pt")["model"]
    torch.manual_seed(cfg.train.seed)  # the trainer's initial weights
    initial = build_model(cfg, num_train_classes=8).state_dict()
    key = "head.transformers.0.k_linear.weight"
    change = (weights[key] - initial[key]).abs().max().item()
    assert 0 < change < 0.05  # two small SGD steps from the same initial weights
    assert torch.equal(
        weights["head.transformers.0.norm_v.weight"], initial["head.transformers.0.norm_v.weight"]
    )
