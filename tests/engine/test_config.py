import pytest

from fsar.engine.config import load_config
from fsar.errors import ConfigError


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_and_file_values(tmp_path):
    cfg = load_config(write(tmp_path, "episodes:\n  shot: 5\ntrain:\n  tasks: 10\noptim:\n  lr: 1\n"))
    assert cfg.episodes.shot == 5 and cfg.episodes.way == 5
    assert cfg.train.tasks == 10
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)


def test_unknown_key_names_key_file_and_valid_keys(tmp_path):
    p = write(tmp_path, "train:\n  taks: 10\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert "train.'taks'" in msg or "'taks'" in msg
    assert str(p) in msg and "tasks_per_update" in msg


def test_unknown_section_and_wrong_type(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'trian'"):
        load_config(write(tmp_path, "trian: {}\n"))
    with pytest.raises(ConfigError, match="train.tasks must be int"):
        load_config(write(tmp_path, "train:\n  tasks: many\n"))
    with pytest.raises(ConfigError, match="optim.name must be one of"):
        load_config(write(tmp_path, "optim:\n  name: lbfgs\n"))


def test_overrides_and_base_chain(tmp_path):
    write(tmp_path, "model:\n  name: otam\n  kwargs: {gamma: 0.5}\ntrain:\n  tasks: 7\n", "base.yaml")
    child = write(tmp_path, "base: base.yaml\ntrain:\n  seed: 3\n")
    cfg = load_config(child, ["model.kwargs.gamma=0.2", "episodes.shot=5", "data.flip=false"])
    assert cfg.model.name == "otam" and cfg.model.kwargs == {"gamma": 0.2}
    assert cfg.train.tasks == 7 and cfg.train.seed == 3 and cfg.episodes.shot == 5 and cfg.data.flip is False
    with pytest.raises(ConfigError, match="unknown key episodes.'shots'"):
        load_config(child, ["episodes.shots=5"])
    with pytest.raises(ConfigError, match="must look like"):
        load_config(child, ["episodes.shot"])


def test_missing_config_lists_presets():
    with pytest.raises(ConfigError, match="no such config file or preset"):
        load_config("definitely_not_a_preset")
