"""Why do Trokens' motion embeddings lower TATs' twin-query accuracy on the synthetic benchmark? Magnitudes and probes.

Companion of ``benchmarks/trokens_ablation.py`` (issue 13, item 5). On the test split's twin-pair classes (every
video, evaluation clips) it measures, for TATs and Trokens, untrained (the runs' initialisation, from the demo's
pretrained backbone) and trained (the runs' ``best.pt``):

* **track motion**: the per-step displacement ``|d|`` of the tracks in normalised units (the HoD mass), for every
  track folder given;
* **token magnitudes**: RMS per token of the sampled appearance, the sampled space and the time embeddings, the
  HoD and relative-motion embeddings, and the share of each motion embedding's energy that is one vector common to
  all tokens (``|mean|^2 / mean |x|^2``);
* **descriptor geometry**: mean cosine between frame descriptors of different videos; mean Bi-MHM distance to
  same-class and to other-class videos;
* **order information**: leave-one-out nearest-centroid accuracy between the two classes of each twin pair, from
  a signal pooled over time (order-free) and from its per-frame sequence: raw HoD, sampled appearance tokens, the
  HoD and relative-motion embeddings;
* **twin-pair accuracy** of the Bi-MHM head (1-shot: a video is closer to another video of its class than to one
  of its twin class; all such triples), and for the trained Trokens with its motion embeddings replaced by their
  mean vector or removed (at inference).

``--train-zero-hod SEED`` also trains a control: Trokens with the HoD embedding only, fed an all-zero histogram
(a learnable token-independent vector of RMS 1 added to every token, no motion information), under the
ablation's settings, into ``OUT/runs/<tracks>_zerohod_seed<SEED>``.

Usage (the numbers in BENCHMARKS.md, "Trokens ablation")::

    python benchmarks/trokens_diagnostics.py --demo DEMO --tats DEMO/runs/tats --trokens DEMO/runs/trokens \\
        --out OUT [--motion-tracks DEMO/synthetic_default/tracks_gt ...] [--train-zero-hod 0]

Writes ``OUT/trokens_diagnostics.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def paths_overrides(demo: Path, tracks: Path | None = None) -> list[str]:
    synth = sorted(demo.glob("synthetic_default*"))[0]
    return [
        f"data.root={synth}",
        f"data.tracks={tracks or synth / 'tracks_lk'}",
        f"data.clip_store={synth / 'clip_store'}",
        f"model.backbone_weights={demo / 'pretrain' / 'backbone.safetensors'}",
    ]


def rms(x: torch.Tensor) -> float:
    """Mean over tokens of the RMS over the feature axis."""
    return float(x.pow(2).mean(-1).sqrt().mean())


def common_share(x: torch.Tensor) -> float:
    """Share of the energy of ``x [..., D]`` that is the vector common to all its tokens."""
    flat = x.reshape(-1, x.shape[-1])
    return float(flat.mean(0).pow(2).sum() / flat.pow(2).sum(-1).mean())


def nearest_centroid_twin_accuracy(
    features: torch.Tensor, labels: np.ndarray, twins: dict[int, int]
) -> float:
    """Leave-one-out nearest-centroid accuracy between the two classes of each twin pair (50 = no information)."""
    feats = features.reshape(len(labels), -1).double()
    wins = total = 0
    for a, b in twins.items():
        if a > b:
            continue
        members = np.nonzero((labels == a) | (labels == b))[0]
        for i in members:
            rest = members[members != i]
            ca = feats[rest[labels[rest] == a]].mean(0)
            cb = feats[rest[labels[rest] == b]].mean(0)
            guess = a if (feats[i] - ca).norm() < (feats[i] - cb).norm() else b
            wins += int(guess == labels[i])
            total += 1
    return 100.0 * wins / total


def twin_pair_accuracy(dist: torch.Tensor, labels: np.ndarray, twins: dict[int, int]) -> float:
    """Share of triples (video i, another video a of its class, a video b of its twin class) with d(i,a) < d(i,b)."""
    lab = torch.as_tensor(labels)
    wins = total = 0
    for i in range(len(labels)):
        own = (lab == lab[i]).nonzero().flatten()
        own = own[own != i]
        other = (lab == twins[int(lab[i])]).nonzero().flatten()
        cmp = dist[i, own].unsqueeze(1) < dist[i, other].unsqueeze(0)
        wins += int(cmp.sum())
        total += cmp.numel()
    return 100.0 * wins / total


def load_twin_batch(cfg, limit: int | None):
    from fsar.engine.data_setup import build_inputs
    from fsar.engine.episode_data import video_rng

    clips = build_inputs(cfg, ("test",))[0]["test"]
    labels = np.array(clips.labels)
    twins = clips.twins
    idx = [i for i in range(len(labels)) if int(labels[i]) in twins]
    if limit:  # the first ``limit`` videos of each class
        idx = [i for i in idx if int((labels[:i] == labels[i]).sum()) < limit]
    batch = clips.batch(idx, [0] * len(idx), False, [video_rng(0, 0, k, False) for k in range(len(idx))])
    return batch, labels[idx], twins


@torch.no_grad()
def measure(clf, batch, labels, twins, motion: bool) -> dict:
    from fsar.models.tats.head import bi_mhm_distance, frame_descriptors
    from fsar.models.tats.sampling import sample_tokens

    net = clf.tats
    grid = clf.patch_grid(batch.frames)
    g, d = net.grid_size, net.feat_dim
    app = sample_tokens(grid, batch.tracks, net.sampling)
    space = sample_tokens(
        net.space_pos.reshape(1, 1, g, g, d).expand_as(grid).contiguous(), batch.tracks, net.sampling
    )
    out = {"appearance_rms": rms(app), "space_pos_rms": rms(space), "time_pos_rms": rms(net.time_pos)}
    out["order_nc_appearance_pooled"] = nearest_centroid_twin_accuracy(app.mean((1, 2)), labels, twins)
    out["order_nc_appearance_per_frame"] = nearest_centroid_twin_accuracy(app.mean(2), labels, twins)
    tokens = net.embed(grid, batch.tracks)
    hod_emb = rel_emb = None
    if motion:
        hod_emb, rel_emb = net.motion_embeddings(batch.tracks, batch.visibility)
        for name, emb in (("hod_emb", hod_emb), ("rel_emb", rel_emb)):
            if emb is None:
                continue
            out[f"{name}_rms"] = rms(emb)
            out[f"{name}_common_share"] = common_share(emb)
            out[f"order_nc_{name}_pooled"] = nearest_centroid_twin_accuracy(emb.mean((1, 2)), labels, twins)
            out[f"order_nc_{name}_per_frame"] = nearest_centroid_twin_accuracy(emb.mean(2), labels, twins)
    key_mask = net.key_mask(batch.query_mask, batch.visibility)

    def descriptors(extra: list[torch.Tensor]) -> torch.Tensor:
        _, tok = net.transform(tokens + sum(extra) if extra else tokens, key_mask)
        return frame_descriptors(tok)

    def pair_acc(frames: torch.Tensor) -> float:
        return twin_pair_accuracy(bi_mhm_distance(frames, frames, clf.eps), labels, twins)

    motion_parts = [e for e in (hod_emb, rel_emb) if e is not None]
    frames = descriptors(motion_parts)
    unit = torch.nn.functional.normalize(frames, dim=-1).reshape(len(labels), -1, d)
    lab = torch.as_tensor(labels)
    cos = torch.einsum("vtd,wsd->vwts", unit, unit).mean((2, 3))  # mean over frame pairs
    out["descriptor_mean_cosine_between_videos"] = float(
        cos[~torch.eye(len(labels), dtype=torch.bool)].mean()
    )
    dist = bi_mhm_distance(frames, frames, clf.eps)
    same = (lab.unsqueeze(0) == lab.unsqueeze(1)) & ~torch.eye(len(labels), dtype=torch.bool)
    out["bimhm_same_class"] = float(dist[same].mean())
    out["bimhm_other_class"] = float(dist[lab.unsqueeze(0) != lab.unsqueeze(1)].mean())
    out["twin_pair_accuracy"] = pair_acc(frames)
    if motion_parts:
        means = [e.reshape(-1, d).mean(0) for e in motion_parts]
        out["twin_pair_accuracy_motion_as_mean_vector"] = pair_acc(descriptors(means))
        out["twin_pair_accuracy_motion_removed"] = pair_acc(descriptors([]))
    return out


def track_motion(cfg_factory, tracks: Path, limit: int | None) -> dict:
    from fsar.models.trokens.motion import hod_features

    batch, labels, twins = load_twin_batch(cfg_factory(tracks), limit)
    step = (batch.tracks[:, 1:] - batch.tracks[:, :-1]).norm(dim=-1)
    hod = hod_features(batch.tracks)
    return {
        "step_mean": float(step.mean()),
        "step_median": float(step.median()),
        "step_p90": float(step.quantile(0.9)),
        "share_of_steps_over_0.02": float((step > 0.02).float().mean()),
        "order_nc_hod_pooled": nearest_centroid_twin_accuracy(hod.sum((1, 2)), labels, twins),
        "order_nc_hod_per_frame": nearest_centroid_twin_accuracy(hod.sum(2), labels, twins),
        "videos": len(labels),
    }


def train_zero_hod(demo: Path, out: Path, seed: int, tracks: Path | None, log) -> dict:
    """The control run: Trokens, HoD embedding only, with an all-zero histogram (see the module docstring)."""
    from fsar.engine.config import load_config
    from fsar.engine.trainer import Trainer
    from fsar.models.registry import MODELS
    from fsar.models.trokens import Trokens, TrokensClassifier

    class ZeroHoDTrokens(Trokens):
        def motion_embeddings(self, tracks, visibility, hod=None):
            zero = torch.zeros(*tracks.shape[:3], self.num_bins, device=tracks.device)
            return super().motion_embeddings(tracks, visibility, zero)

    class ZeroHoDClassifier(TrokensClassifier):
        def build_network(self, **kwargs):
            return ZeroHoDTrokens(**kwargs, **self._motion_kwargs)

    if "trokens_zero_hod" not in MODELS:
        MODELS.register("trokens_zero_hod")(ZeroHoDClassifier)
    name = f"{'grid' if tracks is None else tracks.name}_zerohod_seed{seed}"
    run_dir = out / "runs" / name
    done = run_dir / "results.json"
    if done.is_file():
        log(f"reusing {run_dir}")
        return json.loads(done.read_text())
    overrides = [
        *paths_overrides(demo, tracks),
        "model.name=trokens_zero_hod",
        "model.kwargs.use_relative_motion=false",
        f"train.seed={seed}",
        "eval.order_episodes=0",
        "train.tensorboard=false",
        "train.threads=1",
    ]
    cfg = load_config("demo_trokens", overrides)
    start = time.process_time()
    result = Trainer(cfg, run_dir, log=log).fit()
    result["cpu_seconds"] = time.process_time() - start
    result["train_tasks"] = cfg.train.tasks
    done.write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, required=True, help="a finished `fsar demo` folder")
    parser.add_argument("--tats", type=Path, required=True, help="a TATs run folder (best.pt)")
    parser.add_argument("--trokens", type=Path, required=True, help="a Trokens run folder (best.pt)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--motion-tracks", type=Path, nargs="*", default=[], help="more track folders")
    parser.add_argument("--videos-per-class", type=int, default=None, help="default: every test video")
    parser.add_argument("--train-zero-hod", type=int, default=None, metavar="SEED")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from fsar.engine.build import build_model
    from fsar.engine.config import apply_overrides, config_from_dict
    from fsar.engine.trainer import model_from_checkpoint

    demo = args.demo.resolve()
    base = paths_overrides(demo)
    report: dict = {}
    models = {}
    cfg = None
    for kind, run in (("tats", args.tats), ("trokens", args.trokens)):
        cfg, trained, _ = model_from_checkpoint(run / "best.pt", torch.device("cpu"), overrides=base)
        torch.manual_seed(cfg.train.seed)  # as the Trainer, before building the model
        init = build_model(cfg, num_train_classes=trained.tats.num_classes).eval()
        models[f"{kind}_untrained"], models[f"{kind}_trained"] = init, trained
    batch, labels, twins = load_twin_batch(cfg, args.videos_per_class)
    report["videos"] = len(labels)
    for name, clf in models.items():
        report[name] = measure(clf, batch, labels, twins, motion=name.startswith("trokens"))
        print(name, json.dumps({k: round(v, 4) for k, v in report[name].items()}), flush=True)
    raw = cfg.to_dict()

    def cfg_for(tracks: Path):
        return config_from_dict(apply_overrides(raw, [f"data.tracks={tracks}"]), source="diagnostics")

    for tracks in [Path(cfg.data.tracks), *args.motion_tracks]:
        report[f"tracks:{tracks.name}"] = track_motion(cfg_for, tracks, args.videos_per_class)
        print(tracks.name, json.dumps(report[f"tracks:{tracks.name}"]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "trokens_diagnostics.json").write_text(json.dumps(report, indent=2))
    if args.train_zero_hod is not None:
        result = train_zero_hod(demo, args.out, args.train_zero_hod, None, print)
        report["zero_hod_control"] = {
            k: result.get(k) for k in ("test_mean", "test_ci95", "test_twin_mean", "test_twin_ci95")
        }
        print("zero-HoD control", report["zero_hod_control"])
        (args.out / "trokens_diagnostics.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
