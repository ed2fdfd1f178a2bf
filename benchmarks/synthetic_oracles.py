"""Oracle accuracies of the synthetic benchmark, from the generator's ground-truth actor pose.

They say what the benchmark *allows*, independently of any learned model:

- ``appearance``: one sampled frame's absolute pose (x, y, orientation, scale), nearest support; the best of the
  T frames is reported. What a single-frame model could reach.
- ``velocity_orderfree``: per-frame pose velocity (differences between consecutive sampled frames), mean-pooled
  over time (order-free, like ProtoNet), nearest support.
- ``velocity_dtw``: the same per-frame velocities matched with dynamic time warping (order-aware, like OTAM).

Each is reported over all queries and over *twin* queries: those whose reversed-order twin class (same primitives,
opposite order) is in the episode. The benchmark is meant to keep appearance <= 40%, order-free velocity on twins
<= 60% and DTW velocity >= 95%: motion is required and order matters.

    python benchmarks/synthetic_oracles.py --root runs/demo/synthetic_default [--episodes 2000] [--split test]

``--root`` is an ``fsar synth --out`` folder (reads meta.json and trajectories/*.npz); without ``--root``, the
poses are drawn from the generator's scene sampler for ``--preset``/``--seed`` without rendering any pixel.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fsar.data.episodes import EpisodeSampler
from fsar.data.sampling import build_frame_sampler


def pose_features(poses: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """``[N, T, 4]`` (x, y, angle, scale) -> ``[N, T, 4]`` (x, y in units of min(H, W), angle, log scale)."""
    size = float(min(frame_size))
    out = np.empty_like(poses, dtype=np.float64)
    out[..., :2] = poses[..., :2] / size
    out[..., 2] = poses[..., 2]
    out[..., 3] = np.log(poses[..., 3])
    return out


def dtw_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Classic DTW (steps right, down, diagonal) with Euclidean frame costs between ``a [T, D]`` and ``b``."""
    cost = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    t1, t2 = cost.shape
    acc = np.full((t1 + 1, t2 + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, t1 + 1):
        for j in range(1, t2 + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    return float(acc[t1, t2])


def oracle_accuracies(
    poses: np.ndarray,
    labels: list[int],
    twin_of: dict[int, int],
    frame_size: tuple[int, int],
    num_frames: int = 8,
    episodes: int = 2000,
    seed: int = 1234,
) -> dict[str, dict[str, float]]:
    """Oracle accuracies (percent) over ``episodes`` 5-way 1-shot episodes with one query per class.

    ``poses [N, F, 4]``: every frame's ground-truth pose of the split's N videos; ``labels``: split class labels;
    ``twin_of``: label -> label of its reversed-order twin."""
    n_frames = poses.shape[1]
    idx = build_frame_sampler("uniform")(n_frames, num_frames, False, np.random.default_rng(0))
    feats = pose_features(poses[:, idx], frame_size)  # [N, T, 4]
    vel = np.diff(feats, axis=1)  # [N, T-1, 4]
    vel = vel / vel.reshape(-1, 4).std(axis=0)  # comparable units per pose dimension
    app = np.concatenate(  # orientation as a unit vector: its absolute value is an angle
        [feats[..., :2], np.cos(feats[..., 2:3]), np.sin(feats[..., 2:3]), feats[..., 3:]], axis=-1
    )
    mean_vel = vel.mean(axis=1)
    eps = EpisodeSampler(labels, 5, 1, 1, seed=seed).take(episodes)
    hits: dict[str, list[bool]] = {"appearance": [], "velocity_orderfree": [], "velocity_dtw": []}
    twin_hits: dict[str, list[bool]] = {k: [] for k in hits}
    for ep in eps:
        sup = np.asarray(ep.support)
        for q, y in zip(ep.query, ep.query_labels):
            is_twin = twin_of.get(ep.classes[y]) in ep.classes
            app_best = max(
                np.argmin(np.linalg.norm(app[sup, t] - app[q, t], axis=-1)) == y for t in range(num_frames)
            )
            preds = {
                "appearance": app_best,
                "velocity_orderfree": np.argmin(np.linalg.norm(mean_vel[sup] - mean_vel[q], axis=-1)) == y,
                "velocity_dtw": np.argmin([dtw_distance(vel[q], vel[s]) for s in sup]) == y,
            }
            for k, ok in preds.items():
                hits[k].append(bool(ok))
                if is_twin:
                    twin_hits[k].append(bool(ok))
    # appearance: report the best single frame, not the best per query
    app_per_frame = []
    for t in range(num_frames):
        ok = [
            np.argmin(np.linalg.norm(app[np.asarray(ep.support), t] - app[q, t], axis=-1)) == y
            for ep in eps
            for q, y in zip(ep.query, ep.query_labels)
        ]
        app_per_frame.append(100.0 * float(np.mean(ok)))
    best_t = int(np.argmax(app_per_frame))
    app_twin = [
        np.argmin(np.linalg.norm(app[np.asarray(ep.support), best_t] - app[q, best_t], axis=-1)) == y
        for ep in eps
        for q, y in zip(ep.query, ep.query_labels)
        if twin_of.get(ep.classes[y]) in ep.classes
    ]
    out = {
        k: {
            "all": 100.0 * float(np.mean(v)),
            "twin": 100.0 * float(np.mean(twin_hits[k])) if twin_hits[k] else float("nan"),
            "queries": len(v),
            "twin_queries": len(twin_hits[k]),
        }
        for k, v in hits.items()
    }
    out["appearance"] = {
        "all": app_per_frame[best_t],
        "twin": 100.0 * float(np.mean(app_twin)) if app_twin else float("nan"),
        "queries": len(hits["appearance"]),
        "twin_queries": len(app_twin),
        "best_frame": best_t,
        "per_frame": app_per_frame,
    }
    return out


def poses_from_folder(
    root: Path, split: str
) -> tuple[np.ndarray, list[int], dict[int, int], tuple[int, int]]:
    meta = json.loads((root / "meta.json").read_text())
    lines = (root / meta["split_files"][split]).read_text().split()
    classes = list(dict.fromkeys(line.split("/")[0] for line in lines))
    label_of = {c: i for i, c in enumerate(classes)}
    poses, labels = [], []
    for line in lines:
        cls, vid = line.split("/")
        with np.load(root / "trajectories" / cls / f"{vid}.npz") as z:
            poses.append(z["actor_pose"])
        labels.append(label_of[cls])
    twin_of = {label_of[c]: label_of[t] for c, t in meta["twins"].items() if c in label_of}
    return np.stack(poses), labels, twin_of, tuple(meta["frame_size"])


def poses_from_generator(preset: str, seed: int, split: str, overrides: dict | None = None):
    from fsar.data.synthetic import SynthConfig
    from fsar.data.synthetic.classes import build_classes
    from fsar.data.synthetic.render import video_rng
    from fsar.data.synthetic.scene import sample_scene

    config = SynthConfig.preset(preset, seed=seed, **(overrides or {}))
    classes = [c for c in build_classes(config) if c.split == split]
    label_of = {c.name: i for i, c in enumerate(classes)}
    poses, labels = [], []
    for c in classes:
        for v in range(config.videos_per_class):
            scene = sample_scene(config, c, video_rng(config.seed, c.index, v))
            pose = scene.pose.copy()
            pose[:, :2] += scene.camera
            poses.append(pose)
            labels.append(label_of[c.name])
    twin_of = {label_of[c.name]: label_of[c.twin] for c in classes if c.twin is not None}
    return np.stack(poses), labels, twin_of, config.frame_size


def format_table(results: dict) -> str:
    lines = ["| oracle | all queries (%) | twin queries (%) |", "|---|---|---|"]
    for k, v in results.items():
        lines.append(f"| {k} | {v['all']:.1f} | {v['twin']:.1f} (n={v['twin_queries']}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--root", type=Path, help="an `fsar synth --out` folder (default: poses from the generator)"
    )
    p.add_argument("--preset", default="default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="test")
    p.add_argument("--episodes", type=int, default=2000)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if args.root is not None:
        poses, labels, twin_of, size = poses_from_folder(args.root, args.split)
    else:
        poses, labels, twin_of, size = poses_from_generator(args.preset, args.seed, args.split)
    results = oracle_accuracies(poses, labels, twin_of, size, args.frames, args.episodes)
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    checks = {
        "appearance <= 40": results["appearance"]["all"] <= 40.0,
        "order-free velocity on twins <= 60": results["velocity_orderfree"]["twin"] <= 60.0,
        "DTW velocity >= 95": results["velocity_dtw"]["all"] >= 95.0,
    }
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
