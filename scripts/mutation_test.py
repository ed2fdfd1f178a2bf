"""Targeted mutation testing: does the test suite notice when the code breaks the way a careless edit would?

Each mutant is one small edit (a snippet of one file replaced by another) of the engine (protocol, selection,
resume), the data layer (episodes, stores and caches, data check, decoding, sampling, splits) or a method head,
with the test files of that module. For every mutant the script copies the tree (``src``, ``tests``,
``pyproject.toml``) into a temporary folder once per job, applies the edit there, runs only the mutant's tests
(``pytest -x``), and restores the file: the working tree is never modified. A mutant is *killed* when the tests
fail (or time out), *survives* when they pass. Not part of CI (it reruns test files dozens of times).

    python scripts/mutation_test.py                      # every mutant, one job
    python scripts/mutation_test.py --jobs 2 --json mutation.json
    python scripts/mutation_test.py --only resume --only protocol   # mutants whose id contains a word
    python scripts/mutation_test.py --list               # the mutants and their tests, no run
    python scripts/mutation_test.py --check              # every snippet occurs exactly once (seconds)

The score is killed / (killed + survived); a mutant whose tests could not run (collection error, no test
selected) is reported as an error and counted in neither.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str  # relative to the repository root
    original: str  # must occur exactly once in the file
    replacement: str
    tests: tuple[str, ...]  # pytest arguments: test files, optionally with -k


TRAINER = "src/fsar/engine/trainer.py"
PROTOCOL = "src/fsar/engine/protocol.py"
TEST_PROTOCOL = ("tests/engine/test_protocol.py",)
TEST_SELECTION = ("tests/engine/test_trainer.py", "-k", "fit_selects")
TEST_RESUME = ("tests/engine/test_trainer.py", "-k", "resume or kill or corrupt")
MATRIX = "tests/engine/test_resume_matrix.py"
EPISODES = "src/fsar/data/episodes.py"
TEST_EPISODES = ("tests/data/test_episodes.py",)
CLIP_STORE = "src/fsar/data/clip_store.py"
TEST_STORE_KEY = ("tests/data/test_clip_store.py", "-k", "stale or every_component")
SAMPLING = "src/fsar/data/sampling.py"
OTAM = "src/fsar/models/otam.py"
TEST_OTAM = ("tests/models/test_otam.py", "tests/models/test_soft_dtw.py")
PROTONET = "src/fsar/models/protonet.py"
TRX_XT = "src/fsar/models/trx/cross_transformer.py"
TEST_TRX = ("tests/models/trx/test_head.py", "tests/models/trx/test_classifier.py")
TATS_HEAD = "src/fsar/models/tats/head.py"
TEST_TATS_HEAD = ("tests/models/tats/test_head.py",)

MUTANTS: list[Mutant] = [
    # -- engine: the evaluation protocol ----------------------------------------------------------------
    Mutant(
        "protocol-ci95-sqrt-n-minus-1",
        PROTOCOL,
        "ci95 = 1.96 * std0 / math.sqrt(n)",
        "ci95 = 1.96 * std0 / math.sqrt(n - 1)",
        TEST_PROTOCOL,
    ),
    Mutant(
        "protocol-ci95-ddof1",
        PROTOCOL,
        "std0 = float(acc.std(ddof=0))",
        "std0 = float(acc.std(ddof=1))",
        TEST_PROTOCOL,
    ),
    Mutant(
        "protocol-t-quantile-0.95",
        PROTOCOL,
        "if _t_cdf(mid, df) < 0.975:",
        "if _t_cdf(mid, df) < 0.95:",
        TEST_PROTOCOL,
    ),
    Mutant(
        "protocol-mean-is-median",
        PROTOCOL,
        "mean = float(acc.mean())",
        "mean = float(np.median(acc))",
        TEST_PROTOCOL,
    ),
    Mutant(
        "protocol-twin-queries-inverted",
        PROTOCOL,
        "return [twins.get(result.classes[y], -1) in classes for y in result.labels]",
        "return [twins.get(result.classes[y], -1) not in classes for y in result.labels]",
        TEST_PROTOCOL,
    ),
    # -- engine: checkpoint selection -------------------------------------------------------------------
    Mutant(
        "selection-on-test-split",
        TRAINER,
        "sel = clips[cfg.train.select_on]",
        "sel = clips[cfg.eval.split]",
        TEST_SELECTION,
    ),
    Mutant(
        "selection-last-best-not-first",
        TRAINER,
        'if s.mean > state["best_acc"]:',
        'if s.mean >= state["best_acc"]:',
        TEST_SELECTION,
    ),
    Mutant(
        "selection-tests-last-not-best",
        TRAINER,
        'model.load_state_dict(load_checkpoint(self.run_dir / "best.pt", self.device)["model"])',
        'model.load_state_dict(load_checkpoint(self.run_dir / "last.pt", self.device)["model"])',
        TEST_SELECTION,
    ),
    Mutant(
        "selection-episodes-from-eval-seed",
        TRAINER,
        "sel.labels, ep.way, ep.shot, ep.test_queries, seed=cfg.train.seed + 1",
        "sel.labels, ep.way, ep.shot, ep.test_queries, seed=cfg.eval.seed",
        TEST_SELECTION,
    ),
    # -- engine: exact resume ---------------------------------------------------------------------------
    Mutant(
        "resume-loader-draws-global-rng",
        "src/fsar/engine/episode_data.py",
        "        generator=loader_generator(dataset.seed, rank, position),\n",
        "",
        (MATRIX, "-k", "trx-workers0-single"),
    ),
    Mutant(
        "resume-rank0-rng-on-every-rank",
        TRAINER,
        'set_rng_state(payload["rng"][ctx.rank])',
        'set_rng_state(payload["rng"][0])',
        (MATRIX, "-k", "trx-workers0-torchrun2"),
    ),
    Mutant(
        "resume-optimizer-state-dropped",
        TRAINER,
        'optimizer.load_state_dict(payload["optimizer"])',
        "optimizer.zero_grad()",
        TEST_RESUME,
    ),
    Mutant(
        "resume-episodes-restart-from-0",
        TRAINER,
        "lambda i: sampler.episode(local_start + i)",
        "lambda i: sampler.episode(i)",
        TEST_RESUME,
    ),
    Mutant(
        "resume-position-off-by-one",
        TRAINER,
        '"trainer_state": {**state, "tasks_done": tasks},',
        '"trainer_state": {**state, "tasks_done": max(0, tasks - 1)},',
        TEST_RESUME,
    ),
    Mutant(
        "checkpoint-hash-not-checked",
        "src/fsar/engine/checkpoint.py",
        "if actual != expected:",
        "if False:",
        TEST_RESUME,
    ),
    # -- data: episodes ---------------------------------------------------------------------------------
    Mutant(
        "episodes-rank-stream-not-interleaved",
        EPISODES,
        "return self.rank + i * self.world_size",
        "return self.rank * 1000 + i",
        TEST_EPISODES,
    ),
    Mutant(
        "episodes-classes-with-replacement",
        EPISODES,
        "return rng.choice(self.eligible, size=self.way, replace=False)",
        "return rng.choice(self.eligible, size=self.way, replace=True)",
        TEST_EPISODES,
    ),
    Mutant(
        "episodes-not-a-function-of-index",
        EPISODES,
        "rng = np.random.default_rng([self.seed, g])",
        "rng = np.random.default_rng([self.seed, g % 3])",
        TEST_EPISODES,
    ),
    Mutant(
        "episodes-queries-not-shuffled",
        EPISODES,
        "order = rng.permutation(len(query))",
        "order = np.arange(len(query))",
        TEST_EPISODES,
    ),
    Mutant(
        "episodes-support-overlaps-query",
        EPISODES,
        "support.extend(int(v) for v in videos[: self.shot])",
        "support.extend(int(v) for v in videos[-self.shot :])",
        TEST_EPISODES,
    ),
    Mutant(
        "episodes-shard-not-disjoint",
        EPISODES,
        "return list(episodes[rank::world_size])",
        "return list(episodes[rank : rank + len(episodes) // world_size + 1])",
        TEST_EPISODES,
    ),
    # -- data: clip store and feature cache keys --------------------------------------------------------
    Mutant(
        "store-key-without-resize-to",
        CLIP_STORE,
        '"resize_to": [int(s) for s in resize_to] if resize_to else None,',
        '"resize_to": None,',
        TEST_STORE_KEY,
    ),
    Mutant(
        "store-key-without-frame-sampler",
        CLIP_STORE,
        '"frames": {"num_frames": int(num_frames), "frame_sampler": frame_sampler, "tracks": bool(tracks)},',
        '"frames": {"num_frames": int(num_frames), "tracks": bool(tracks)},',
        TEST_STORE_KEY,
    ),
    Mutant(
        "store-without-tracks-serves-tracks",
        CLIP_STORE,
        'if have["frames"].get("tracks") and not want["frames"].get("tracks"):',
        'if want["frames"].get("tracks") and not have["frames"].get("tracks"):',
        TEST_STORE_KEY,
    ),
    Mutant(
        "keys-nested-differences-ignored",
        "src/fsar/data/keys.py",
        "        elif a != b:",
        "        elif a != b and not prefix:",
        TEST_STORE_KEY,
    ),
    Mutant(
        "store-resize-to-transposed",
        CLIP_STORE,
        "return int(resize_to[0]), int(resize_to[1])",
        "return int(resize_to[1]), int(resize_to[0])",
        ("tests/data/test_clip_store.py", "-k", "equal_decoded or every_component or stale"),
    ),
    Mutant(
        "feature-cache-key-without-weights",
        "src/fsar/engine/feature_cache.py",
        '"backbone_weights_hash": state_dict_hash(backbone),',
        '"backbone_weights_hash": None,',
        ("tests/engine/test_feature_cache.py",),
    ),
    # -- data: data check, decoding, sampling, splits ---------------------------------------------------
    Mutant(
        "check-short-off-by-one",
        "src/fsar/data/check.py",
        "elif n < num_frames:",
        "elif n < num_frames - 1:",
        ("tests/data/test_check.py",),
    ),
    Mutant(
        "decode-index-range-off-by-one",
        "src/fsar/data/video.py",
        "bad = idx[(idx < 0) | ((idx >= num_frames) if num_frames is not None else False)]",
        "bad = idx[(idx < 0) | ((idx > num_frames) if num_frames is not None else False)]",
        ("tests/data/test_video.py",),
    ),
    Mutant(
        "decode-true-count-not-learned",
        "src/fsar/data/video.py",
        "        if last not in got:\n",
        "        if False:\n",
        ("tests/data/test_video.py",),
    ),
    Mutant(
        "sampling-segment-test-not-centre",
        SAMPLING,
        "return np.floor((k + 0.5) * n / T).astype(np.int64)",
        "return np.floor(k * n / T).astype(np.int64)",
        ("tests/data/test_sampling.py",),
    ),
    Mutant(
        "sampling-short-policy-off-by-one",
        SAMPLING,
        "return int(num_frames) < int(T)",
        "return int(num_frames) <= int(T)",
        ("tests/data/test_sampling.py",),
    ),
    Mutant(
        "sampling-short-repeats-first-frame",
        SAMPLING,
        "return np.minimum(np.arange(T, dtype=np.int64), num_frames - 1)",
        "return np.minimum(np.arange(T, dtype=np.int64), 0)",
        ("tests/data/test_sampling.py",),
    ),
    Mutant(
        "transforms-short-side-rounding",
        "src/fsar/data/transforms.py",
        "return size, int(size * w / h)",
        "return size, int(size * w / h) + 1",
        ("tests/data/test_transforms.py",),
    ),
    Mutant(
        "splits-spaces-around-slash-accepted",
        "src/fsar/data/splits.py",
        "if text != text.strip() or class_name != class_name.strip() or video != video.strip():",
        "if text != text.strip():",
        ("tests/data/test_splits.py",),
    ),
    # -- method heads -----------------------------------------------------------------------------------
    Mutant(
        "protonet-prototype-first-shot",
        PROTONET,
        "self.prototypes = support.reshape(way, shot, -1).mean(dim=1)",
        "self.prototypes = support.reshape(way, shot, -1)[:, 0]",
        ("tests/models/test_protonet.py",),
    ),
    Mutant(
        "protonet-dot-not-cosine",
        PROTONET,
        "return self.scale * F.normalize(query, dim=-1) @ F.normalize(prototypes, dim=-1).T",
        "return self.scale * query @ prototypes.T",
        ("tests/models/test_protonet.py",),
    ),
    Mutant(
        "otam-alignment-transposed",
        OTAM,
        'return 1 - torch.einsum("qtc,suc->qstu", q, s)',
        'return 1 - torch.einsum("qtc,suc->qsut", q, s)',
        TEST_OTAM,
    ),
    Mutant(
        "otam-logit-sign",
        OTAM,
        "return -self.class_distances(query) / self.temperature",
        "return self.class_distances(query) / self.temperature",
        TEST_OTAM,
    ),
    Mutant(
        "otam-shots-min-not-mean",
        OTAM,
        "return cost.reshape(query.shape[0], way, per_class).mean(dim=2)",
        "return cost.reshape(query.shape[0], way, per_class).amin(dim=2)",
        TEST_OTAM,
    ),
    Mutant(
        "softdtw-softmax-not-softmin",
        "src/fsar/models/soft_dtw.py",
        "return -gamma * torch.logsumexp(-values / gamma, dim=dim)",
        "return gamma * torch.logsumexp(values / gamma, dim=dim)",
        TEST_OTAM,
    ),
    Mutant(
        "ta2n-distance-mean-over-frames",
        "src/fsar/models/ta2n/distance.py",
        "return (1 - (xs * ys).sum(-1)).sum(-1)",
        "return (1 - (xs * ys).sum(-1)).mean(-1)",
        ("tests/models/ta2n/test_distance.py",),
    ),
    Mutant(
        "ta2n-ttm-source-scale",
        "src/fsar/models/ta2n/ttm.py",
        "u = (source + 1) / 2 * (num_frames - 1)",
        "u = (source + 1) / 2 * num_frames",
        ("tests/models/ta2n/test_ttm.py",),
    ),
    Mutant(
        "trx-attention-unscaled",
        TRX_XT,
        "scores = scores.view(q * n, way, shots * n) / math.sqrt(o)",
        "scores = scores.view(q * n, way, shots * n)",
        TEST_TRX,
    ),
    Mutant(
        "trx-softmax-over-classes",
        TRX_XT,
        "attention = scores.softmax(dim=-1)",
        "attention = scores.softmax(dim=-2)",
        TEST_TRX,
    ),
    Mutant(
        "tats-bimhm-one-direction",
        TATS_HEAD,
        "return d.min(dim=3).values.sum(dim=2) + d.min(dim=2).values.sum(dim=2)",
        "return 2 * d.min(dim=3).values.sum(dim=2)",
        TEST_TATS_HEAD,
    ),
    Mutant(
        "tats-prototype-not-normalised",
        TATS_HEAD,
        "proto = (grouped * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)",
        "proto = (grouped * w).sum(dim=1)",
        TEST_TATS_HEAD,
    ),
]


def check_snippets(mutants: list[Mutant]) -> list[str]:
    """Problems with the mutants' snippets (each original must occur exactly once; ids unique)."""
    problems = []
    ids = [m.id for m in mutants]
    problems += [f"duplicate id {i}" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for m in mutants:
        path = ROOT / m.file
        if not path.is_file():
            problems.append(f"{m.id}: {m.file} does not exist")
            continue
        count = path.read_text().count(m.original)
        if count != 1:
            problems.append(
                f"{m.id}: the original snippet occurs {count} times in {m.file} (needs exactly 1)"
            )
        for arg in m.tests:
            if arg.startswith("tests/") and not (ROOT / arg).is_file():
                problems.append(f"{m.id}: test file {arg} does not exist")
    return problems


def copy_tree(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in ("src", "tests"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore, symlinks=True)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")


def run_mutant(m: Mutant, tree: Path, timeout: float) -> dict:
    path = tree / m.file
    pristine = path.read_text()
    path.write_text(pristine.replace(m.original, m.replacement, 1))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree / "src"), str(tree)]), HF_HUB_OFFLINE="1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a stale .pyc of a mutated file must never be reused
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not cuda", *m.tests]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
        rc, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out = None, f"timed out after {timeout:.0f} s\n{exc.stdout or ''}"
    finally:
        path.write_text(pristine)
    seconds = time.monotonic() - start
    if rc is None or rc == 1:
        status = "killed"
    elif rc == 0:
        status = "survived"
    else:  # 2: interrupted/collection error, 4: usage, 5: no tests collected
        status = "error"
    lines = [line for line in out.splitlines() if line.strip()]
    return {"id": m.id, "status": status, "rc": rc, "seconds": round(seconds, 1), "tail": lines[-3:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1, help="mutants run in parallel (one tree copy per job)")
    parser.add_argument("--only", action="append", default=[], help="run the mutants whose id contains this")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds per mutant (a timeout kills it)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--check", action="store_true", help="check the snippets and exit")
    args = parser.parse_args(argv)

    mutants = [m for m in MUTANTS if not args.only or any(w in m.id for w in args.only)]
    problems = check_snippets(mutants)
    if problems or args.check:
        print("\n".join(problems) or f"{len(mutants)} mutants: every snippet occurs exactly once")
        return 1 if problems else 0
    if args.list:
        for m in mutants:
            print(f"{m.id:40s} {m.file}  [{' '.join(m.tests)}]")
        return 0

    jobs = max(1, min(args.jobs, len(mutants)))
    with tempfile.TemporaryDirectory(prefix="fsar-mutants-") as tmp:
        trees = [Path(tmp) / f"tree{j}" for j in range(jobs)]
        for tree in trees:
            copy_tree(tree)
        free = list(trees)
        results: list[dict] = []

        def work(m: Mutant) -> dict:
            tree = free.pop()
            try:
                result = run_mutant(m, tree, args.timeout)
            finally:
                free.append(tree)
            print(f"{result['status']:8s} {result['seconds']:7.1f} s  {m.id}", flush=True)
            return result

        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(work, mutants))
    killed = sum(r["status"] == "killed" for r in results)
    survived = [r for r in results if r["status"] == "survived"]
    errors = [r for r in results if r["status"] == "error"]
    scored = killed + len(survived)
    score = killed / scored if scored else float("nan")
    print(
        f"\n{killed} killed, {len(survived)} survived, {len(errors)} errors: score {100 * score:.1f}% "
        f"({time.monotonic() - start:.0f} s, {jobs} job(s))"
    )
    for r in survived:
        print(f"  survived: {r['id']}")
    for r in errors:
        print(f"  error: {r['id']}: {' | '.join(r['tail'])}")
    if args.json:
        args.json.write_text(json.dumps({"score": score, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
