"""The command line end to end on the tiny synthetic benchmark: help, train, eval, predict, demo."""

import json
import shutil

import pytest

from fsar.cli.main import build_parser, main

COMMANDS = [
    "synth",
    "data",
    "track",
    "pretrain",
    "train",
    "eval",
    "predict",
    "extract-features",
    "viz",
    "demo",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: fsar " + command in capsys.readouterr().out


def test_parser_lists_all_commands():
    text = build_parser().format_help()
    for command in COMMANDS:
        assert command in text


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    assert main(["synth", "--out", str(out), "--preset", "tiny", "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def trained(synth, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    # overrides after an option: `fsar train CONFIG --out DIR key=value ...` (once "unrecognized arguments")
    args = ["train", "demo_otam_tiny", "--out", str(run), f"data.root={synth}", "train.tasks=6"]
    assert main(args + ["train.val_every=3", "eval.episodes=20", "train.tensorboard=false"]) == 0
    return run


def test_train_writes_results_selected_on_val(trained):
    result = json.loads((trained / "results.json").read_text())
    assert result["selected_on"] == "val" and result["test_episodes"] == 20
    assert result["selected_task"] in (3, 6)


def test_eval_with_episode_file_is_reproducible(trained, tmp_path, capsys):
    episodes = tmp_path / "episodes.json"
    args = ["eval", str(trained / "best.pt"), "--episodes", "30", "eval.batch_videos=7"]
    args += ["--episode-file", str(episodes)]
    assert main(args + ["--csv", str(tmp_path / "a.csv")]) == 0
    first = capsys.readouterr().out
    assert episodes.is_file() and "over 30 episodes" in first
    assert main(args + ["--csv", str(tmp_path / "b.csv")]) == 0
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def test_predict_from_a_support_folder(trained, synth, tmp_path, capsys):
    support = tmp_path / "support"
    videos = synth / "videos"
    classes = sorted(p.name for p in videos.iterdir())[:3]
    for c in classes:
        (support / c).mkdir(parents=True)
        shutil.copy(sorted((videos / c).glob("*.mp4"))[0], support / c / "example.mp4")
    query = sorted((videos / classes[1]).glob("*.mp4"))[1]
    out_json = tmp_path / "pred.json"
    assert (
        main(
            [
                "predict",
                str(trained / "best.pt"),
                "--support",
                str(support),
                "--query",
                str(query),
                "--json",
                str(out_json),
            ]
        )
        == 0
    )
    preds = json.loads(out_json.read_text())
    assert len(preds) == 1 and preds[0]["label"] in classes
    assert abs(sum(preds[0]["scores"].values()) - 1) < 1e-5
    (support / classes[0] / "second.mp4").write_bytes((support / classes[0] / "example.mp4").read_bytes())
    assert main(["predict", str(trained / "best.pt"), "--support", str(support), "--query", str(query)]) == 1
    assert "same number of example clips" in capsys.readouterr().err


def test_unknown_config_key_is_a_clear_cli_error(synth, tmp_path, capsys):
    assert (
        main(["train", "demo_otam_tiny", f"data.root={synth}", "train.taks=3", "--out", str(tmp_path)]) == 1
    )
    err = capsys.readouterr().err
    assert "unknown key train.'taks'" in err and "tasks_per_update" in err


def test_missing_video_refuses_training_unless_allowed(synth, tmp_path, capsys):
    copy = tmp_path / "synth"
    shutil.copytree(synth, copy)
    victim = sorted((copy / "videos").rglob("*.mp4"))[0]
    victim.unlink()
    base = [
        "train",
        "demo_protonet_tiny",
        f"data.root={copy}",
        "train.tasks=2",
        "train.val_every=2",
        "eval.episodes=5",
    ]
    base += ["train.tensorboard=false", "episodes.train_queries=2"]
    assert main(base + ["--out", str(tmp_path / "r1")]) == 1
    assert victim.stem in capsys.readouterr().err
    assert main(base + ["data.allow_missing=true", "--out", str(tmp_path / "r2")]) == 0
    skipped = "".join(p.read_text() for p in (tmp_path / "r2").glob("skipped_*.txt"))
    assert f"{victim.parent.name}/{victim.stem}" in skipped


@pytest.mark.slow
def test_demo_runs_its_methods_then_more_from_the_same_store_on_the_tiny_benchmark(tmp_path):
    from fsar.engine.demo import DEMO_METHODS

    common = ["--out", str(tmp_path), "--preset", "tiny", "--tasks", "4", "--episodes", "10"]
    common += ["train.val_every=4", "train.val_episodes=5", "train.tensorboard=false"]
    assert main(["demo", *common]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["method"] for r in rows] == list(DEMO_METHODS) == ["protonet", "otam", "trx"]
    table = (tmp_path / "results.md").read_text()
    assert "| otam |" in table and "twin queries (%)" in table
    for (
        r
    ) in rows:  # the tiny test split holds one twin pair: twin queries exist, order episodes need two pairs
        assert 0 <= r["test_twin_mean"] <= 100 and r["test_twin_queries"] > 0
        assert "order_skipped" in r
    # every method started from the same pretrained backbone, read from the clip store; no method read tracks,
    # so none were made
    assert (tmp_path / "pretrain" / "backbone.safetensors").is_file()
    index = tmp_path / "synthetic_tiny" / "clip_store" / "index.json"
    assert index.is_file() and not (tmp_path / "synthetic_tiny" / "tracks_lk").exists()
    # the two figures: valid PNGs of a sensible size, the bar chart drawn from results.json
    from fsar.engine.demo_figures import plot_results

    for name in ("results.png", "validation.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert 400 <= width <= 2000 and 300 <= height <= 1200
    redrawn = plot_results(rows, tmp_path / "redrawn.png")
    assert redrawn.read_bytes() == (tmp_path / "results.png").read_bytes()
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert {"synthesis", "clip store", "pretraining", "otam", "whole demo"} <= set(timings)
    assert "tracks" not in timings
    # methods that read tracks (TATs) and the rest of the extended demo reuse the same store and backbone
    from fsar.procs import is_lock_file

    def store_files() -> dict[str, bytes]:
        files = index.parent.rglob("*")
        return {str(p): p.read_bytes() for p in files if p.is_file() and not is_lock_file(p.name)}

    store_bytes = store_files()
    backbone = (tmp_path / "pretrain" / "backbone.safetensors").read_bytes()
    assert main(["demo", *common, "--methods", "tats,ta2n"]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["method"] for r in rows] == ["tats", "ta2n"]
    assert (tmp_path / "synthetic_tiny" / "tracks_lk").is_dir()
    assert store_files() == store_bytes
    assert (tmp_path / "pretrain" / "backbone.safetensors").read_bytes() == backbone
    assert "tracks" in json.loads((tmp_path / "timings.json").read_text())


def test_viz_tracks_and_ta2n_write_pngs(synth, tmp_path):
    tracks = tmp_path / "tracks"
    assert (
        main(
            [
                "track",
                "--videos",
                str(synth / "videos"),
                "--out",
                str(tracks),
                "--grid",
                "4",
                "--points",
                "8",
                "--no-progress",
            ]
        )
        == 0
    )
    npz = sorted(tracks.rglob("*.npz"))[0]
    video = synth / "videos" / npz.parent.name / f"{npz.stem}.mp4"
    assert (
        main(["viz", "tracks", "--video", str(video), "--tracks", str(npz), "--out", str(tmp_path / "t.png")])
        == 0
    )
    run = tmp_path / "ta2n"
    args = [
        "train",
        "demo_ta2n_tiny",
        f"data.root={synth}",
        "train.tasks=2",
        "train.val_every=2",
        "eval.episodes=5",
    ]
    assert main(args + ["train.tensorboard=false", "--out", str(run)]) == 0
    assert main(["viz", "ta2n", str(run / "best.pt"), "--out", str(tmp_path / "a.png")]) == 0
    for png in ("t.png", "a.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert (
        main(["viz", "ta2n", str(trained_checkpoint(tmp_path, synth)), "--out", str(tmp_path / "x.png")]) == 1
    )


def trained_checkpoint(tmp_path, synth):
    run = tmp_path / "otam"
    args = [
        "train",
        "demo_otam_tiny",
        f"data.root={synth}",
        "train.tasks=1",
        "train.val_every=1",
        "eval.episodes=5",
    ]
    assert main(args + ["train.tensorboard=false", "--out", str(run)]) == 0
    return run / "best.pt"


@pytest.mark.slow
def test_demo_jobs_train_methods_in_parallel_with_the_same_results(tmp_path):
    base = ["demo", "--preset", "tiny", "--methods", "protonet,otam", "--tasks", "4", "--episodes", "10"]
    base += ["train.val_every=2", "train.val_episodes=5", "train.tensorboard=false"]
    assert main([*base, "--out", str(tmp_path)]) == 0
    one_by_one = json.loads((tmp_path / "results.json").read_text())
    shutil.rmtree(tmp_path / "runs")  # the same benchmark, store and backbone; the methods again, two at once
    assert main([*base, "--jobs", "2", "--out", str(tmp_path)]) == 0
    parallel = json.loads((tmp_path / "results.json").read_text())
    keys = ("method", "test_mean", "test_twin_mean", "selected_task")
    assert [[r[k] for k in keys] for r in parallel] == [[r[k] for k in keys] for r in one_by_one]
    assert "methods" in json.loads((tmp_path / "timings.json").read_text())


def test_train_nproc_checks_the_config_once_before_launching(tmp_path, capsys, monkeypatch):
    """`fsar train demo_protonet_tiny --nproc 2`: tasks_per_update=1 cannot split over 2 ranks. The error is
    printed once, by the launching process, and no process is started."""
    import subprocess

    def no_launch(*args, **kwargs):
        raise AssertionError(f"a process was launched: {args}")

    monkeypatch.setattr(subprocess, "call", no_launch)
    monkeypatch.delenv("RANK", raising=False)
    args = [
        "train",
        "demo_protonet_tiny",
        "data.root=nowhere",
        "--out",
        str(tmp_path / "run"),
        "--nproc",
        "2",
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and err.count("\n") == 1, err
    assert "train.tasks_per_update (1) must be multiples of the number of processes (2)" in err
    assert "train.tasks_per_update=2" in err  # says what to do
    assert not (tmp_path / "run").exists()
    assert main(args[:-1] + ["0"]) == 1
    assert "at least 1" in capsys.readouterr().err
    # a config that splits evenly is launched (here: the launch is intercepted)
    launched = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, **kwargs: launched.append(cmd) or 0)
    assert main(args + ["train.tasks_per_update=2"]) == 0
    assert launched and "--nproc_per_node=2" in launched[0] and "train.tasks_per_update=2" in launched[0]
