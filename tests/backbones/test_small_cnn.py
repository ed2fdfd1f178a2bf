import pytest
import torch

from fsar.backbones import BACKBONES, SmallCNN, create_backbone


@pytest.mark.parametrize("size,side", [(112, 7), (64, 4)])
def test_small_cnn_shapes(size, side):
    net = create_backbone("small_cnn")
    out = net(torch.randn(2, 3, size, size))
    assert out.shape == (2, 128, side, side)
    assert net.out_channels == 128 and net.default_normalization == "none" and not net.frozen


def test_small_cnn_options_and_gradients():
    net = create_backbone("small_cnn", width=8, out_channels=16)
    x = torch.randn(3, 3, 32, 48, requires_grad=True)
    out = net(x)
    assert out.shape == (3, 16, 2, 3)
    out.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())


def test_small_cnn_rejects_bad_frames():
    net = SmallCNN(width=4, out_channels=4)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        net(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="16x16"):
        net(torch.randn(2, 3, 8, 8))


def test_small_cnn_weights_round_trip(tmp_path):
    gen = torch.Generator().manual_seed(0)
    src = SmallCNN(width=4, out_channels=6).eval()
    with torch.no_grad():
        for m in src.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1, generator=gen)
                m.running_var.uniform_(0.5, 2, generator=gen)
    torch.save({"state_dict": src.state_dict()}, tmp_path / "cnn.pt")
    net = create_backbone(
        "small_cnn", weights="cnn.pt", pretrained_folder=tmp_path, width=4, out_channels=6
    ).eval()
    x = torch.randn(1, 3, 32, 32, generator=gen)
    assert torch.equal(net(x), src(x))


def test_frozen_small_cnn_has_no_gradients_and_stays_in_eval():
    net = create_backbone("small_cnn", width=4, out_channels=4, frozen=True)
    net.train()
    assert net.frozen and not net.training and not any(m.training for m in net.modules())
    assert not any(p.requires_grad for p in net.parameters())
    out = net(torch.randn(1, 3, 32, 32, requires_grad=True))
    assert not out.requires_grad


def test_registry_lists_all_backbones_and_rejects_unknown():
    assert set(BACKBONES.names()) >= {
        "small_cnn",
        "resnet18",
        "resnet34",
        "resnet50",
        "dinov2_vits14",
        "dinov2_vitb14",
        "dinov2_vitl14",
    }
    with pytest.raises(KeyError, match="unknown backbone 'vgg16'.*small_cnn"):
        create_backbone("vgg16")


def test_small_cnn_depth_and_signed_features():
    net = create_backbone("small_cnn", width=8, out_channels=16, num_blocks=3, final_relu=False)
    out = net(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 16, 4, 4)
    assert (out < 0).any()  # no ReLU before the metric: features can be negative
    relu = create_backbone("small_cnn", width=8, out_channels=16, num_blocks=3)
    assert (relu(torch.randn(4, 3, 32, 32)) >= 0).all()
    assert sum(isinstance(m, torch.nn.ReLU) for m in net.modules()) == 2
    with pytest.raises(ValueError, match="3 blocks needs frames of at least 8x8"):
        net(torch.randn(1, 3, 4, 4))
    with pytest.raises(ValueError, match="num_blocks"):
        SmallCNN(num_blocks=0)
