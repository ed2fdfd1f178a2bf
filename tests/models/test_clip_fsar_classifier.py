"""CLIPFSARClassifier: the two-step API over clips that carry their class names, the loss, text sources."""

import pytest
import torch

from fsar.data.batch import ClipBatch
from fsar.errors import DataLayoutError
from fsar.models.clip_fsar import clip_fsar_loss
from fsar.models.clip_fsar.classifier import CLIPFSARClassifier
from fsar.models.registry import MODELS
from tests.models.stand_ins import StandInBackbone, random_batch

C = 16
TRAIN_NAMES = ["brush_hair", "cartwheel", "catch", "chew", "clap", "climb"]


def named(labels, global_labels, seed, names=TRAIN_NAMES, t=8):
    batch = random_batch(labels, seed=seed, t=t)
    g = torch.as_tensor(global_labels)
    return ClipBatch(
        frames=batch.frames,
        labels=batch.labels,
        global_labels=g,
        video_ids=batch.video_ids,
        class_names=[names[i] for i in g.tolist()],
    )


def _model(**kw):
    torch.manual_seed(0)
    kw = {"text_encoder": "hashed", "mlp_dim": 32, "num_heads": 4, "train_class_names": TRAIN_NAMES} | kw
    return CLIPFSARClassifier(StandInBackbone(C), num_frames=8, **kw)


def episode():
    # 3-way 2-shot, support shuffled; episode label -> split class: 0 -> 4, 1 -> 1, 2 -> 5
    classes = [4, 1, 5]
    s_labels = [2, 0, 1, 0, 2, 1]
    q_labels = [1, 2, 0, 0]
    support = named(s_labels, [classes[i] for i in s_labels], seed=1)
    query = named(q_labels, [classes[i] for i in q_labels], seed=2)
    return support, query


def test_registered_and_two_step_api_equals_the_head():
    torch.manual_seed(0)
    model = MODELS.create(
        "clip_fsar", backbone=StandInBackbone(C), text_encoder="hashed", mlp_dim=32, num_heads=4
    )
    assert isinstance(model, CLIPFSARClassifier) and model.head.feat_dim == C
    assert not any("text" in k for k in model.state_dict())  # the text tables are not weights
    model = _model().eval()
    support, query = episode()
    s, q = model.encode(support), model.encode(query)
    assert s["frames"].shape == (6, 8, C) and s["text"].shape == (6, C)
    logits = model.episode_logits(s, support.labels, q)
    assert logits.shape == (4, 3)
    class_text = model.text_source.embed([TRAIN_NAMES[4], TRAIN_NAMES[1], TRAIN_NAMES[5]])  # labels 0, 1, 2
    torch.testing.assert_close(logits, model.head(s["frames"], support.labels, q["frames"], class_text))
    # the hashed stand-in is a pure function of the name
    torch.testing.assert_close(class_text[0], _model().text_source.embed(["clap"])[0])
    # the query's own class name is never used
    q_other = model.encode(named([1, 2, 0, 0], [0, 0, 0, 0], seed=2))
    torch.testing.assert_close(model(q_other), logits)
    # the support's class names are: other names, other logits
    s_other = dict(s, text=model.text_source.embed([TRAIN_NAMES[i] for i in (0, 2, 3, 2, 0, 3)]))
    assert not torch.allclose(model.episode_logits(s_other, support.labels, q), logits)


def test_loss_is_few_shot_plus_weighted_text_and_trains_everything():
    model = _model(text_weight=1.2).train()
    support, query = episode()
    s, q = model.encode(support), model.encode(query)
    logits = model.episode_logits(s, support.labels, q)
    loss = model.loss(logits, query.labels, support=s, query=q, support_batch=support, query_batch=query)
    table = model.text_source.embed(TRAIN_NAMES)
    videos = torch.cat([s["frames"], q["frames"]])
    expected = clip_fsar_loss(
        logits,
        query.labels,
        model.head.text_logits(videos, table),
        torch.cat([support.global_labels, query.global_labels]),
        1.2,
    )
    torch.testing.assert_close(loss, expected["total"])
    assert model.last_loss_terms["text"] == pytest.approx(float(expected["text"].detach()))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_errors_name_what_is_missing():
    support, query = episode()
    model = _model(train_class_names=None)
    s, q = model.encode(support), model.encode(query)
    logits = model.episode_logits(s, support.labels, q)
    with pytest.raises(ValueError, match="train_class_names"):
        model.loss(logits, query.labels, support=s, query=q, support_batch=support, query_batch=query)
    bare = random_batch([0, 1], seed=0)
    with pytest.raises(ValueError, match="class names"):
        model.process_support_set(model.encode(bare), bare.labels)
    mixed = named([0, 0], [1, 2], seed=0)
    with pytest.raises(ValueError, match="different class names"):
        model.process_support_set(model.encode(mixed), mixed.labels)
    with pytest.raises(ValueError, match="text_weights=PATH"):
        CLIPFSARClassifier(StandInBackbone(C), text_encoder="clip")
    tokens = named([0, 1], [0, 1], seed=0, names=["train8", "train50"])
    with pytest.raises(DataLayoutError, match=r"\['train50', 'train8'\] are split-file tokens"):
        model.encode(tokens)
    mapped = _model(
        class_name_map={"train8": "Pouring something into something", "train50": "Tearing something"}
    )
    out = mapped.encode(tokens)
    torch.testing.assert_close(
        out["text"][0], mapped.text_source.embed(["Pouring something into something"])[0]
    )


def test_clip_text_source_uses_the_clip_text_encoder(tmp_path):
    from fsar.backbones.clip import load_clip_text
    from tests.backbones.clip_layout import as_openai_file, openai_state_dict, write_tiny_tokenizer

    torch.save(as_openai_file(openai_state_dict("vit", seed=6, embed=C)), tmp_path / "ViT.pt")
    write_tiny_tokenizer(tmp_path / "tok")
    torch.manual_seed(0)
    model = CLIPFSARClassifier(
        StandInBackbone(C),
        num_heads=4,
        mlp_dim=32,
        text_weights=tmp_path / "ViT.pt",
        tokenizer_folder=tmp_path / "tok",
    )
    text = load_clip_text(tmp_path / "ViT.pt", tmp_path / "tok")
    torch.testing.assert_close(
        model.text_source.embed(["kick_ball", "pick"]), text.encode_names(["kick_ball", "pick"])
    )
    with pytest.raises(ValueError, match="embeds into 16 dimensions, the image features have 24"):
        CLIPFSARClassifier(StandInBackbone(24), num_heads=4, text_weights=tmp_path / "ViT.pt")


def _engine_cfg(*extra):
    from fsar.engine.config import load_config

    return load_config(
        None,
        [
            "model.name=clip_fsar",
            "model.backbone_kwargs={width: 8, out_channels: 16}",
            "model.kwargs={text_encoder: hashed, mlp_dim: 32, num_heads: 4, text_weight: 1.5}",
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
    assert isinstance(model, CLIPFSARClassifier) and model.head.num_frames == 4
    for shot in (1, 2):
        episodes = EpisodeSampler(clips.labels, 5, shot, 1, seed=3).take(8)
        naive = evaluate_naive(
            model,
            episode_loader(EpisodeDataset(clips, lambda i, eps=episodes: eps[i], 8, False, 0), 0),
            torch.device("cpu"),
        )
        cached = evaluate_cached(model, clips, episodes, torch.device("cpu"), batch_videos=7, progress=False)
        assert [r.predictions for r in naive] == [r.predictions for r in cached]
        assert len({p for r in cached for p in r.predictions}) > 1


@pytest.mark.slow
def test_trainer_passes_the_train_class_table_and_learns(tmp_path):
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
        "optim.name=adam",
        "optim.lr=0.001",
    )
    trainer = Trainer(cfg, tmp_path, log=lambda *a: None, clips=fake_clips())
    result = trainer.fit()
    assert result["test_episodes"] == 6 and 0 <= result["test_mean"] <= 100
    assert trainer.model.train_class_names == [f"c{i}" for i in range(8)]
    weights = load_checkpoint(tmp_path / "last.pt")["model"]
    assert weights["head.scale"].item() != 1.0  # the video-text loss trained the scale


def test_predict_passes_the_support_folder_names(tmp_path):
    from fsar.engine.build import build_model
    from fsar.engine.predict import predict_clips
    from tests.helpers import make_frames, write_encoded_video

    a = make_frames(8, 32, 32, seed=1)
    b = 255 - make_frames(8, 32, 32, seed=2)[:, ::-1]
    write_encoded_video(tmp_path / "support" / "jump" / "j.mp4", a)
    write_encoded_video(tmp_path / "support" / "sit" / "s.mp4", b)
    queries = [write_encoded_video(tmp_path / "q1.mp4", a), write_encoded_video(tmp_path / "q2.mp4", b)]
    cfg = _engine_cfg("data.resize_short=null", "data.crop=null", "data.resize_to=[32, 32]")
    torch.manual_seed(0)
    model = build_model(cfg, num_train_classes=8)
    seen = []
    encode = model.encode
    model.encode = lambda batch: seen.append(list(batch.class_names)) or encode(batch)
    out = predict_clips(cfg, model, tmp_path / "support", queries, torch.device("cpu"))
    assert seen == [["jump", "sit"], []]  # the support's folder names; the queries carry none
    assert [set(p.scores) for p in out] == [{"jump", "sit"}] * 2
