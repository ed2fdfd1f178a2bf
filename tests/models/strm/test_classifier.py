import pytest
import torch
from torch import nn

from fsar.models.registry import MODELS
from fsar.models.strm import STRM, STRMClassifier, strm_loss
from tests.models.stand_ins import StandInBackbone, random_batch

C = 16


def _model(**kw):
    torch.manual_seed(0)
    return STRMClassifier(StandInBackbone(C), num_frames=8, out_dim=24, **kw)


def test_registered_and_sized_from_the_backbone():
    torch.manual_seed(0)
    model = MODELS.create("strm", backbone=StandInBackbone(C), out_dim=24)
    assert isinstance(model, STRMClassifier) and isinstance(model.head, STRM)
    assert model.head.feat_dim == C and model.head.cardinalities == (2,) and model.head.patch_weight == 0.1
    assert not model.head.similarity[0].clsW.weight.requires_grad
    assert _model(train_clsw=True).head.similarity[0].clsW.weight.requires_grad
    with pytest.raises(ValueError, match="feat_dim"):
        STRMClassifier(nn.Identity())


def test_encode_is_the_heads_per_video_part_on_backbone_maps():
    model = _model().eval()
    batch = random_batch([0, 1], seed=1)
    feats = model.encode(batch)
    assert set(feats) == {"patch", "frame"} and feats["patch"].shape == feats["frame"].shape == (2, 8, C)
    maps = model.backbone(batch.frames.flatten(0, 1)).view(2, 8, C, 4, 4)
    encoded = model.head.encode(maps)
    torch.testing.assert_close(feats["patch"], encoded.patch)
    torch.testing.assert_close(feats["frame"], encoded.frame)


def test_two_step_api_equals_the_head_and_trains_end_to_end():
    model = _model().train()
    with torch.no_grad():
        model.head.patch_attention.gamma.fill_(0.5)
    support = random_batch([2, 0, 1, 1, 0, 2], seed=2)  # 3-way 2-shot, shuffled
    query = random_batch([1, 2, 0, 0], seed=3)
    model.eval()  # dropout off: the two routes must agree exactly
    s, q = model.encode(support), model.encode(query)
    model.process_support_set(s, support.labels)
    assert model.way == 3
    logits = model(q)
    maps = lambda b: model.backbone(b.frames.flatten(0, 1)).view(len(b.labels), 8, C, 4, 4)  # noqa: E731
    out = model.head(maps(support), support.labels, maps(query))
    torch.testing.assert_close(logits, out.logits)
    torch.testing.assert_close(model.last_output.patch_logits, out.patch_logits)
    model.train()
    s, q = model.encode(support), model.encode(query)
    logits = model.episode_logits(s, support.labels, q)
    loss = model.loss(logits, query.labels, support=s, query=q)
    torch.testing.assert_close(loss, strm_loss(model.last_output, query.labels))
    loss.backward()
    assert model.backbone.conv.weight.grad.abs().sum() > 0
    assert model.head.patch_attention.query_proj.weight.grad.abs().sum() > 0
    assert model.head.frame_mixer.token_mlp.inp_fc.weight.grad.abs().sum() > 0
    assert model.head.trx.transformers[0].k_linear.weight.grad.abs().sum() > 0
    assert model.head.similarity[0].clsW.weight.grad is None  # frozen, as in the original
    assert model.head.trx.transformers[0].norm_v.weight.grad is None


def test_errors():
    model = _model()
    with pytest.raises(RuntimeError, match="process_support_set"):
        model({"patch": torch.zeros(2, 8, C), "frame": torch.zeros(2, 8, C)})
    with pytest.raises(ValueError, match=r"T=8"):
        model.encode(random_batch([0], seed=0, t=6))
    with pytest.raises(TypeError, match="dict"):
        model.process_support_set(torch.zeros(2, 8, C), torch.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="last forward"):
        model.loss(torch.zeros(2, 2), torch.tensor([0, 1]))
    pooled = STRMClassifier(
        nn.Sequential(StandInBackbone(C), nn.AdaptiveAvgPool2d(1), nn.Flatten()), feat_dim=C
    )
    with pytest.raises(ValueError, match="maps"):
        pooled.encode(random_batch([0], seed=0))


def _engine_cfg(*extra):
    from fsar.engine.config import load_config

    return load_config(
        None,
        [
            "model.name=strm",
            "model.backbone_kwargs={width: 8, out_channels: 16, num_blocks: 2}",  # 16 px clips -> 4x4 maps
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
    assert isinstance(model, STRMClassifier) and model.head.num_frames == 4
    for shot in (1, 2):
        episodes = EpisodeSampler(clips.labels, 5, shot, 1, seed=3).take(8)
        naive = evaluate_naive(
            model,
            episode_loader(EpisodeDataset(clips, lambda i, eps=episodes: eps[i], 8, False, 0), 0),
            torch.device("cpu"),
        )
        cached = evaluate_cached(model, clips, episodes, torch.device("cpu"), batch_videos=7, progress=False)
        assert [r.predictions for r in naive] == [r.predictions for r in cached]
        assert len({p for r in cached for p in r.predictions}) > 1  # not a constant prediction


@pytest.mark.slow
def test_trainer_runs_strm_and_leaves_clsw_and_norm_v_unchanged(tmp_path):
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
    change = (
        weights["head.trx.transformers.0.k_linear.weight"]
        - initial["head.trx.transformers.0.k_linear.weight"]
    )
    assert 0 < change.abs().max().item() < 0.05
    for key in ("head.similarity.0.clsW.weight", "head.trx.transformers.0.norm_v.weight"):
        assert torch.equal(weights[key], initial[key]), key
