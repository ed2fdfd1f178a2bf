"""Feature cache: extraction, training/evaluation from the cache, stale caches refused."""

import pytest
import torch

from fsar.cli.main import main
from fsar.engine.config import load_config
from fsar.engine.data_setup import build_inputs
from fsar.errors import FsarError


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    assert main(["synth", "--out", str(out), "--preset", "tiny", "--quiet"]) == 0
    return out


def overrides(synth, cache, *extra):
    return [
        f"data.root={synth}",
        "data.num_frames=4",
        "model.backbone_kwargs={width: 8, out_channels: 16, in_channels: 6, num_blocks: 3, frozen: true}",
        f"data.feature_cache={cache}",
        *extra,
    ]


def test_extract_then_train_and_evaluate_from_cache(synth, tmp_path, capsys):
    cache = tmp_path / "cache"
    rc = main(
        [
            "extract-features",
            "demo_ta2n_tiny",
            *overrides(synth, None)[:3],
            "--out",
            str(cache),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    assert "bytes per video" in capsys.readouterr().out
    assert (cache / "index.json").is_file() and (cache / "test_0000.safetensors").is_file()
    cfg = load_config("demo_ta2n_tiny", overrides(synth, cache))
    clips, stand_in = build_inputs(cfg, ("train", "test"))
    assert stand_in is not None and stand_in.out_channels == 16
    cached = clips["test"].load_video(clips["test"].records[0], False, None).frames
    assert cached.shape == (4, 16, 4, 4)
    # the cached features are the backbone's features of the test-mode clip (fp16 round-off)
    cfg_plain = load_config("demo_ta2n_tiny", overrides(synth, cache)[:3])
    plain, _ = build_inputs(cfg_plain, ("test",))
    from fsar.engine.build import build_backbone

    torch.manual_seed(cfg.train.seed)
    backbone = build_backbone(cfg.model).eval()
    frames = plain["test"].load_video(plain["test"].records[0], False, None).frames
    with torch.no_grad():
        torch.testing.assert_close(cached, backbone(frames), rtol=1e-2, atol=1e-2)
    run = tmp_path / "run"
    rc = main(
        [
            "train",
            "demo_ta2n_tiny",
            *overrides(synth, cache),
            "train.tasks=4",
            "train.val_every=4",
            "eval.episodes=10",
            "train.tensorboard=false",
            "--out",
            str(run),
        ]
    )
    assert rc == 0 and (run / "results.json").is_file()
    assert main(["eval", str(run / "best.pt"), "--episodes", "10"]) == 0


def test_stale_cache_is_refused_with_the_differing_fields(synth, tmp_path):
    cache = tmp_path / "cache"
    assert (
        main(
            [
                "extract-features",
                "demo_ta2n_tiny",
                *overrides(synth, None)[:3],
                "--out",
                str(cache),
                "--splits",
                "test",
            ]
        )
        == 0
    )
    cfg = load_config("demo_ta2n_tiny", overrides(synth, cache, "data.num_frames=6"))
    with pytest.raises(FsarError, match="stale feature cache.*num_frames: cache has 4, this run has 6"):
        build_inputs(cfg, ("test",))
    # other backbone weights (here: initialised with another seed) make the cached features stale too
    reseeded = load_config("demo_ta2n_tiny", overrides(synth, cache, "train.seed=1"))
    with pytest.raises(FsarError, match="stale feature cache.*backbone_weights_hash: cache has '"):
        build_inputs(reseeded, ("test",))
    with pytest.raises(FsarError, match=r"no \['train'\] split"):
        build_inputs(load_config("demo_ta2n_tiny", overrides(synth, cache)), ("train", "test"))
    from fsar.backbones import create_backbone
    from fsar.engine.feature_cache import extract_features

    with pytest.raises(FsarError, match="trainable"):
        extract_features(cfg, create_backbone("small_cnn"), {}, {}, tmp_path / "c2", torch.device("cpu"))
