"""benchmarks/gpu_check.{sh,py} and benchmarks/bench_bf16.py: the parts that run without a GPU."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_gpu_check_shell_script_parses():
    assert subprocess.run(["bash", "-n", str(BENCH / "gpu_check.sh")]).returncode == 0


def test_gpu_check_dry_run_plans_every_step(tmp_path):
    gpu_check = load("gpu_check")
    assert gpu_check.main(["--dry-run", "--work", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    names = [s["name"] for s in summary["steps"]]
    assert names == [
        "environment", "pytest_cuda", "synth", "nccl_allreduce", "train_torchrun", "train_fp16", "train_bf16",
        "real_ta2n", "real_ta2n_frames", "real_trx", "real_tats",
        "bench_tats_fp32", "bench_tats_bf16", "bench_tats_bf16_unmasked", "bench_ta2n", "bench_bf16", "bench_loader",
    ]  # fmt: skip
    steps = {s["name"]: s for s in summary["steps"]}
    assert (
        "-m cuda" in steps["pytest_cuda"]["command"]
        and "--nproc_per_node=1" in steps["train_torchrun"]["command"]
    )
    assert (
        "train.precision=fp16" in steps["train_fp16"]["command"]
        and "--device cuda" in steps["bench_ta2n"]["command"]
    )
    for name in ("bench_tats_fp32", "bench_ta2n", "bench_bf16"):  # the benchmark scripts it calls exist
        script = next(w for w in steps[name]["command"].split() if w.endswith(".py"))
        assert (BENCH.parent / script).is_file(), script
    assert all(s["status"] == "planned" for s in summary["steps"])
    assert (
        "--source frames" in steps["real_ta2n_frames"]["command"]
        and "--toy" not in steps["real_tats"]["command"]
    )
    assert (
        sum(s["timeout_s"] for s in summary["steps"]) > summary["budget_s"] == 480
    )  # the budget (8 minutes) caps the run


class _Parsed(Exception):
    """Raised instead of running a script once its arguments have parsed."""


def _check_arguments(command: list[str], work: Path, monkeypatch) -> str:
    """Parse ``command`` (one planned step) with the argument parser of what it runs; returns what was checked.
    A flag the script does not know makes argparse exit with status 2, which fails the test."""
    import argparse
    import inspect

    from fsar.cli.main import build_parser
    from fsar.cli.overrides import parse_command_line
    from fsar.engine.config import load_config

    rest = command[1:]  # command[0] is the Python interpreter
    if rest[:2] == ["-m", "torch.distributed.run"]:
        rest = rest[2:]
        while rest[0].startswith("--"):
            rest = rest[1:]
    if rest[:2] == ["-m", "pytest"]:
        return "pytest"
    if rest[:2] == ["-m", "fsar"]:
        args = parse_command_line(build_parser(), rest[2:])
        if getattr(args, "config", None):  # the overrides name keys of the preset's config
            load_config(args.config, args.overrides)
        return f"fsar {args.command}"
    script = Path(rest[0])
    if script.parent == work:  # written by gpu_check itself, takes no arguments
        assert rest[1:] == [], command
        return script.name
    module = load(script.stem)

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    original = argparse.ArgumentParser.parse_args
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [str(script), *rest[1:]])
    with pytest.raises(_Parsed):
        module.main(rest[1:]) if inspect.signature(module.main).parameters else module.main()
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", original)
    return script.name


@pytest.mark.parametrize("mode", ["cuda", "cpu"])
def test_every_planned_command_parses_with_the_script_it_calls(tmp_path, monkeypatch, mode):
    """A flag renamed in a benchmark script (or an fsar command, or a config key) breaks this test, not the next
    GPU lease: every step's command line is parsed by the parser of the script or command it runs."""
    gpu_check = load("gpu_check")
    ctx = gpu_check.Context(mode, tmp_path, sys.executable)
    checked = [_check_arguments(step.command, tmp_path, monkeypatch) for step in gpu_check.plan(ctx)]
    assert {"fsar synth", "fsar train", "pytest", "real_size_training.py", "bench_loader.py"} <= set(checked)
    assert len(checked) == 17


def test_argument_check_catches_a_renamed_flag(tmp_path, monkeypatch):
    with pytest.raises(SystemExit) as exc:
        _check_arguments(
            [sys.executable, "benchmarks/bench_loader.py", "--synthetic", "x"], tmp_path, monkeypatch
        )
    assert exc.value.code == 2
    with pytest.raises(Exception, match="no_such_key"):
        _check_arguments(
            [sys.executable, "-m", "fsar", "train", "demo_ta2n_tiny", "train.no_such_key=1"],
            tmp_path,
            monkeypatch,
        )


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(
    not os.environ.get("FSAR_GPU_CHECK_FLOW"),
    reason="the whole CPU flow takes over 10 minutes on 2 cores (four ResNet-50 / ViT-B trainings); "
    "run it with FSAR_GPU_CHECK_FLOW=1 before a GPU lease",
)
def test_gpu_check_cpu_mode_whole_flow(tmp_path):
    """Every step of the check in CPU mode at toy sizes (the real-size training steps with ``--toy``): all pass.
    Kept out of the default run for time; the arguments of every step are checked by the fast test above."""
    out = tmp_path / "s.json"
    cmd = [sys.executable, str(BENCH / "gpu_check.py"), "--cpu", "--work", str(tmp_path), "--out", str(out)]
    proc = subprocess.run([*cmd, "--budget", "1500"], capture_output=True, text=True, timeout=1600)
    summary = json.loads(out.read_text())
    failed = {s["name"]: s["note"] for s in summary["steps"] if s["status"] != "ok"}
    assert proc.returncode == 0 and not failed, failed
    real = {s["name"]: s["numbers"] for s in summary["steps"] if s["name"].startswith("real_")}
    assert set(real) == {"real_ta2n", "real_ta2n_frames", "real_trx", "real_tats"}
    for numbers in real.values():
        assert numbers["episodes_per_s"] > 0 and 0 <= numbers["data_wait_fraction"] < 1
        assert numbers["peak_memory_mib"] is None  # CPU: no GPU memory to report
        projected = numbers["projected_training_only"]
        assert all(
            p["hours_8_gpus_linear"] * 8 == pytest.approx(p["hours_1_gpu"], rel=0.02)
            for p in projected.values()
        )


def test_gpu_check_cpu_mode_runs_steps_and_writes_one_summary(tmp_path):
    out = tmp_path / "s.json"
    cmd = [sys.executable, str(BENCH / "gpu_check.py"), "--cpu", "--work", str(tmp_path), "--out", str(out)]
    proc = subprocess.run([*cmd, "--steps", "environment,nccl_allreduce"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())
    assert summary["ok"] and summary["mode"] == "cpu" and summary["failed"] == []
    env, nccl = summary["steps"]
    assert env["status"] == "ok" and env["numbers"]["torch"] and env["seconds"] >= 0
    assert nccl["status"] == "ok" and nccl["numbers"] == {
        "backend": "gloo",
        "world_size": 1,
        "allreduce_ok": True,
        "nccl": None,
    }
    assert Path(nccl["log"]).is_file()
    bad = subprocess.run([*cmd, "--steps", "environment,warp_drive"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown steps ['warp_drive']" in bad.stderr


def test_gpu_check_cuda_mode_fails_without_a_gpu(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    gpu_check = load("gpu_check")
    assert gpu_check.main(["--work", str(tmp_path), "--steps", "environment"]) == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failed"] == ["environment"] and "not a usable GPU machine" in summary["steps"][0]["note"]


def test_bench_bf16_quick(tmp_path):
    bench = load("bench_bf16")
    assert bench.main(["--quick", "--episodes", "1", "--out", str(tmp_path / "b.json")]) == 0
    report = json.loads((tmp_path / "b.json").read_text())
    for part in ("ta2n", "tats"):
        r = report["results"][part]
        assert (
            r["queries_compared"] == 10 and r["fp32_median_s"] > 0 and r["fp32_accuracy"] > 0.2
        )  # above chance
        bf16, fp32_head = r["bf16"], r["bf16_fp32_head"]
        for v in (bf16, fp32_head):
            assert (
                0 < v["logit_mean_rel_error"] <= v["logit_max_rel_error"] < 0.5
            )  # bf16: ~3 significant digits
            agreement, queries = v["prediction_agreement"], r["queries_compared"]
            assert v["median_s"] > 0 and round(agreement * queries) == pytest.approx(
                agreement * queries, abs=1e-4
            )
            # predictions that agree with fp32 are equally right: accuracies differ by at most the disagreement
            assert abs(v["accuracy"] - r["fp32_accuracy"]) <= 1 - agreement + 1e-6
        # the variant that keeps the distance in fp32 keeps fp32's predictions (the claim of the benchmark)
        assert fp32_head["prediction_agreement"] >= (1.0 if part == "tats" else 0.9)
    tats = report["results"]["tats"]  # TATs' Bi-MHM in bf16 loses most: the fp32 distance removes that error
    assert tats["bf16_fp32_head"]["logit_mean_rel_error"] < tats["bf16"]["logit_mean_rel_error"] / 10


def test_trokens_ablation_writes_ground_truth_track_files_and_refuses_bad_names(tmp_path):
    import numpy as np

    from fsar.data.trackfile import TrackFile

    ablation = load("trokens_ablation")
    synth, lk = tmp_path / "synthetic_default", tmp_path / "synthetic_default" / "tracks_lk"
    truth = np.random.default_rng(0).random((12, 5, 2)).astype(np.float32) * 60
    (synth / "trajectories" / "walk").mkdir(parents=True)
    np.savez(
        synth / "trajectories" / "walk" / "v1.npz",
        points=truth,
        visible=np.arange(12 * 5).reshape(12, 5) % 3 > 0,
        frame_size=np.array([64, 64], np.int32),
    )
    timeline = np.array([0, 3, 6, 9, 11])
    TrackFile(
        tracks=np.zeros((5, 8, 2), np.float32),
        visibility=np.ones((5, 8), bool),
        query_frame=np.zeros(8, np.int32),
        frame_size=(64, 64),
        timeline=timeline,
        fps=10.0,
        tracker="lk",
        sampled_indices=np.arange(4, dtype=np.int64),
        num_points_total=8,
        video_id="v1",
    ).save(lk / "walk" / "v1.npz")
    ablation.make_ground_truth_tracks(synth, lk, synth / "tracks_gt", print)
    gt = TrackFile.load(synth / "tracks_gt" / "walk" / "v1.npz")
    assert np.array_equal(gt.tracks, truth[timeline]) and np.array_equal(gt.timeline, timeline)
    assert gt.tracker == "ground_truth" and len(gt.sampled_indices) == 5 and (gt.query_frame == 0).all()
    assert ablation.points_per_file(synth / "tracks_gt") == 5
    with pytest.raises(SystemExit):
        ablation.main(["--demo", str(tmp_path), "--out", str(tmp_path / "o"), "--variants", "tats,hoD"])


def test_trokens_diagnostics_measures_by_hand():
    import numpy as np
    import torch

    diag = load("trokens_diagnostics")
    # a common vector (3, 4) plus +-(1, 0): the common part holds 25 / 26 of the energy
    x = torch.tensor([[3.0 + 1, 4.0], [3.0 - 1, 4.0]])
    assert diag.common_share(x) == pytest.approx(25 / 26)
    assert diag.rms(torch.tensor([[3.0, 4.0], [0.0, 0.0]])) == pytest.approx((12.5**0.5) / 2)
    # classes 0 and 1 are twins: per-frame sequences in opposite order, the same content pooled over time
    labels = np.array([0, 0, 0, 1, 1, 1])
    up, down = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    noise = torch.tensor([0.01, -0.01, 0.0, 0.01, -0.01, 0.0]).reshape(6, 1, 1)
    seq = torch.stack([up, up, up, down, down, down]) + noise  # [V, T, F]
    twins = {0: 1, 1: 0}
    assert diag.nearest_centroid_twin_accuracy(seq, labels, twins) == 100.0
    assert diag.nearest_centroid_twin_accuracy(seq.sum(1), labels, twins) <= 50.0  # pooled: order is lost
    # Bi-MHM-like distances: video 0 is closer to its twin class than to video 1 of its own class
    dist = torch.ones(6, 6)
    dist[0, 1], dist[0, 2] = 5.0, 0.5  # i=0: own a=1 worse than every twin, own a=2 better than every twin
    dist[0, 3:] = 2.0
    # 6 videos x 2 own x 3 twin = 36 triples; video 0 wins 3 (a = 2); the ties of the others count as losses
    assert diag.twin_pair_accuracy(dist, labels, twins) == pytest.approx(100 * 3 / 36)
