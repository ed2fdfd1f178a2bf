import pytest
import torch

from fsar.backbones import WeightsNotFoundError, create_backbone
from fsar.backbones.weights import (
    load_state_dict_strictly,
    read_state_dict_file,
    resolve_weights_path,
    unwrap_state_dict,
)
from fsar.errors import WeightsError


def test_missing_file_is_both_weights_error_and_file_not_found(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights_path(missing)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, WeightsError)
    assert str(missing) in str(info.value) and "never downloads" in str(info.value)


def test_relative_path_tries_pretrained_folder_first(tmp_path, monkeypatch):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "a.pt").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert resolve_weights_path("a.pt", pretrained_folder=tmp_path / "w") == tmp_path / "w" / "a.pt"
    with pytest.raises(FileNotFoundError, match="b.pt"):
        resolve_weights_path("b.pt", pretrained_folder=tmp_path / "w")


@pytest.mark.parametrize("offline", ["1", None])
def test_hub_id_is_refused_with_how_to(monkeypatch, offline):
    if offline is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    with pytest.raises(WeightsNotFoundError, match="hub id.*never downloads.*--local-dir"):
        create_backbone("dinov2_vitb14", weights="facebook/dinov2-base")


def test_unwrap_strips_wrappers_and_module_prefix():
    t = torch.zeros(2)
    sd = unwrap_state_dict({"model": {"state_dict": {"module.a": t, "module.b.c": t}}})
    assert list(sd) == ["a", "b.c"]
    with pytest.raises(WeightsError, match="not tensors.*epoch"):
        unwrap_state_dict({"a": t, "epoch": 3}, source="ckpt.pt")
    with pytest.raises(WeightsError, match="non-empty"):
        unwrap_state_dict({})


def test_unreadable_file_names_it(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="broken.pth.*cannot read"):
        read_state_dict_file(bad)


def test_safetensors_file_is_read(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.arange(3.0)}, str(tmp_path / "m.safetensors"))
    assert torch.equal(read_state_dict_file(tmp_path / "m.safetensors")["w"], torch.arange(3.0))


def test_strict_loading_lists_missing_unexpected_and_mismatched_keys():
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    sd = net.state_dict()
    # num_batches_tracked may be absent: accepted
    ok = {k: v.clone() + 1 for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    load_state_dict_strictly(net, ok, source="f.pt")
    assert torch.equal(net[0].weight, ok["0.weight"])
    bad = dict(ok)
    del bad["0.bias"]
    bad["extra.weight"] = torch.zeros(1)
    bad["1.weight"] = torch.zeros(4)
    with pytest.raises(WeightsError) as info:
        load_state_dict_strictly(net, bad, source="f.pt")
    msg = str(info.value)
    assert "f.pt" in msg and "missing keys: 0.bias" in msg and "unexpected keys: extra.weight" in msg
    assert "1.weight: file (4,) vs model (3,)" in msg
