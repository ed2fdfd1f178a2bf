"""`fsar predict` with no fsar checkpoint: ProtoNet / OTAM on a frozen pretrained backbone (random weights saved
in the formats practitioners download: the official DINOv2 hub .pth and a torchvision ResNet .pth)."""

import json

import pytest
import torch

from fsar.cli.main import main
from tests.helpers import make_frames, write_encoded_video


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """support/<class>/<clip>.mp4 for two visibly different classes, and query copies of each class's clip."""
    root = tmp_path_factory.mktemp("predict")
    a = make_frames(12, 64, 64, seed=1)
    b = 255 - make_frames(12, 64, 64, seed=2)[:, ::-1]
    write_encoded_video(root / "support" / "jump" / "j.mp4", a)
    write_encoded_video(root / "support" / "sit" / "s.mp4", b)
    return root / "support", [
        write_encoded_video(root / "q_jump.mp4", a),
        write_encoded_video(root / "q_sit.mp4", b),
    ]


@pytest.fixture(scope="module")
def dinov2_hub_pth(tmp_path_factory):
    """A randomly initialised ViT-S/14 (12 blocks) in the official hub format, at the published 518 px."""
    from transformers import Dinov2Config, Dinov2Model

    from tests.backbones.test_dinov2 import to_official_keys

    torch.manual_seed(0)
    cfg = Dinov2Config(
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, image_size=518, patch_size=14
    )
    path = tmp_path_factory.mktemp("w") / "dinov2_vits14_pretrain.pth"
    torch.save(to_official_keys(Dinov2Model(cfg).state_dict()), path)
    return path


def resnet18_pth(path, seed):
    from fsar.backbones import create_backbone
    from tests.backbones.test_resnet import to_torchvision_keys

    torch.manual_seed(seed)
    torch.save(to_torchvision_keys(create_backbone("resnet18").model.state_dict()), path)
    return path


def predict(args, out):
    assert main(["predict", *args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("method", ["protonet", "otam"])
def test_dinov2_without_checkpoint(clips, dinov2_hub_pth, tmp_path, method):
    support, queries = clips
    args = ["--backbone", "dinov2_vits14", "--weights", str(dinov2_hub_pth), "--method", method]
    args += [
        "--support",
        str(support),
        "--image-size",
        "56",
        "--query",
        *map(str, queries),
        "data.num_frames=4",
    ]
    preds = predict(args, tmp_path / "p.json")  # the override after --query is taken as an override
    assert [p["label"] for p in preds] == ["jump", "sit"]  # each query is a copy of one class's example
    for p in preds:
        assert set(p["scores"]) == {"jump", "sit"} and abs(sum(p["scores"].values()) - 1) < 1e-5


def test_resnet18_without_checkpoint_uses_the_weights_file(clips, tmp_path):
    support, queries = clips
    common = [
        "--backbone",
        "resnet18",
        "--support",
        str(support),
        "--query",
        str(queries[0]),
        "--image-size",
        "64",
    ]
    first = predict(common + ["--weights", str(resnet18_pth(tmp_path / "a.pth", 0))], tmp_path / "a.json")
    again = predict(common + ["--weights", str(tmp_path / "a.pth")], tmp_path / "b.json")
    other = predict(common + ["--weights", str(resnet18_pth(tmp_path / "c.pth", 1))], tmp_path / "c.json")
    assert first[0]["label"] == "jump" and first == again  # deterministic
    assert other[0]["scores"] != first[0]["scores"]  # the weights come from the file, not a random init


def test_usage_errors(clips, dinov2_hub_pth, tmp_path, capsys):
    support, queries = clips
    base = ["predict", "--support", str(support), "--query", str(queries[0])]
    assert main(base) == 2
    assert "give either a CHECKPOINT" in capsys.readouterr().err
    assert main(base + ["--backbone", "dinov2_vits14"]) == 2
    assert "needs --weights FILE" in capsys.readouterr().err
    assert (
        main(["predict", str(tmp_path / "x.pt"), *base[1:], "--backbone", "resnet18", "--weights", "w"]) == 2
    )
    assert "give either a CHECKPOINT" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(base + ["--backbone", "dinov2_vits14", "--weights", str(dinov2_hub_pth), "--method", "ta2n"])
    assert exc.value.code == 2 and "invalid choice: 'ta2n'" in capsys.readouterr().err
    wrong = resnet18_pth(tmp_path / "r18.pth", 0)  # ResNet weights for a ViT: refused, with the keys named
    assert main(base + ["--backbone", "dinov2_vits14", "--weights", str(wrong)]) == 1
    assert "DINOv2 hub state dict: unknown keys" in capsys.readouterr().err
    assert main(base + ["--backbone", "resnet18", "--weights", str(wrong), "model.name=ta2n"]) == 1
    assert "model.name must stay one of protonet, otam" in capsys.readouterr().err
