"""A resumed ``fsar train`` run may change only the resumable keys (more tasks, evaluation, devices, workers,
logging); any other change is refused naming the key, or accepted with ``allow_config_change`` and recorded. A run
folder belongs to one process at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from fsar.engine.checkpoint import load_checkpoint
from fsar.engine.config import RESUMABLE_KEYS, is_resumable_key, resume_changes
from fsar.engine.trainer import CONFIG_HISTORY, Trainer
from fsar.errors import ConfigError, FolderLockedError
from fsar.procs import is_lock_file
from tests.engine.fake_data import fake_clips
from tests.engine.test_trainer import make_cfg
from tests.process_tools import kill_marked, new_marker_env

QUIET = {"log": lambda *a: None}
RUN = ["model.name=protonet", "train.tasks=4", "train.val_every=2", "eval.episodes=4", "train.val_episodes=4"]


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and not is_lock_file(p.name)}


def _run(path, *extra, **kwargs):
    return Trainer(make_cfg(*RUN, *extra), path, clips=fake_clips(), **QUIET, **kwargs).fit()


def test_resumable_keys_are_the_documented_ones():
    assert {"train.tasks", "eval", "train.device", "data.workers", "train.log_every"} <= set(RESUMABLE_KEYS)
    assert is_resumable_key("eval.episodes") and is_resumable_key("train.tasks")
    for key in ("optim.lr", "train.seed", "data.root", "model.name", "train.precision", "train.val_episodes"):
        assert not is_resumable_key(key), key
    saved = make_cfg(*RUN).to_dict()
    ok, refused = resume_changes(saved, make_cfg(*RUN, "train.tasks=9", "optim.lr=0.5", "eval.seed=3"))
    assert ok == [("eval.seed", 1234, 3), ("train.tasks", 4, 9)]
    assert refused == [("optim.lr", 0.01, 0.5)]


def test_resume_with_a_changed_learning_rate_is_refused_naming_the_key(tmp_path):
    _run(tmp_path)
    before = _files(tmp_path)
    with pytest.raises(ConfigError) as info:
        _run(tmp_path, "optim.lr=0.5", "train.tasks=6")
    text = str(info.value)
    assert "optim.lr: 0.01 -> 0.5" in text and "--out" in text and "--allow-config-change" in text
    assert "train.tasks" not in text.split("Keys a resume")[0]  # resumable: not listed as a problem
    assert (
        _files(tmp_path) == before
    )  # refused before anything was written (but the lock, taken and released)


def test_resume_with_more_tasks_continues_and_records_the_change(tmp_path):
    _run(tmp_path)
    result = _run(tmp_path, "train.tasks=6", "eval.episodes=5")
    assert load_checkpoint(tmp_path / "last.pt")["trainer_state"]["tasks_done"] == 6
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["train"]["tasks"] == 6
    (entry,) = [json.loads(line) for line in (tmp_path / CONFIG_HISTORY).read_text().splitlines()]
    assert entry["at_task"] == 4
    assert [(c["key"], c["old"], c["new"], c["resumable"]) for c in entry["changes"]] == [
        ("eval.episodes", 4, 5, True),
        ("train.tasks", 4, 6, True),
    ]
    assert result["config_overridden"] == [] and result["test_episodes"] == 5
    assert json.loads((tmp_path / "results.json").read_text())["config_changes"][1]["key"] == "train.tasks"


def test_allow_config_change_continues_and_is_recorded_in_results(tmp_path):
    _run(tmp_path)
    result = _run(tmp_path, "optim.lr=0.5", "train.tasks=6", allow_config_change=True)
    assert result["config_overridden"] == ["optim.lr"]
    assert json.loads((tmp_path / "results.json").read_text())["config_overridden"] == ["optim.lr"]
    # the folder's config now says 0.5: resuming again with it is no change
    _run(tmp_path, "optim.lr=0.5", "train.tasks=6")
    assert len((tmp_path / CONFIG_HISTORY).read_text().splitlines()) == 1


def test_fewer_tasks_than_done_is_refused(tmp_path):
    _run(tmp_path)
    with pytest.raises(ConfigError, match="done 4 training episodes, more than train.tasks=2"):
        _run(tmp_path, "train.tasks=2")


def test_a_run_folder_held_by_another_process_is_refused_untouched(tmp_path):
    _run(tmp_path)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.iterdir() if p.is_file()}
    marker, env = new_marker_env()
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.process_tools", "lock", str(tmp_path)],
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before[".fsar-lock"] = (
            (tmp_path / ".fsar-lock").stat().st_mtime_ns,
            (tmp_path / ".fsar-lock").read_bytes(),
        )
        with pytest.raises(FolderLockedError, match=f"pid {holder.pid} on host"):
            _run(tmp_path, "train.tasks=6")
        after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.iterdir() if p.is_file()}
        assert after == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        kill_marked(marker)
