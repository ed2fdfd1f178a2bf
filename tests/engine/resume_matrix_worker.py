"""The training processes of the resume matrix (``test_resume_matrix.py``): each method's tiny demo preset on
in-memory clips shaped like its data config, in one process or in each ``torchrun`` rank.

    python -m tests.engine.resume_matrix_worker kill|resume WORKERS ROOT METHOD [METHOD ...]

``kill``: after the imports, fork one child per method (forking saves the interpreter start and imports per
method); each child trains in ``ROOT/<method>/killed`` and, once the episodes done by all ranks reach ``HANG_AT``
(after that step, before it is checkpointed), rank 0 writes ``killed/hanging`` and every rank sleeps until the test
kills every process of the launch with SIGKILL (a process left alive exits after HANG_SECONDS). Under ``torchrun`` the children of the two ranks form one gloo group per
method (a file store in the method's folder). A child that fails writes ``killed/failed`` (its traceback).

``resume``: for each method in turn, train ``ROOT/<method>/full`` uninterrupted, then rerun in
``ROOT/<method>/killed``, which resumes from its ``last.pt``; a failure is written to ``ROOT/<method>/failed``.

Every training step appends one JSON line to ``<run>/steps_<phase>_rank<R>.jsonl``: the episode, a digest of its
support and query batches, the loss bits, and a digest of the parameters, gradients and buffers after the step.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch

from fsar.engine.config import load_config
from fsar.engine.distributed import DistContext, init_distributed, shutdown
from fsar.engine.protocol import t_quantile_975
from fsar.engine.trainer import EpisodeStep, Trainer
from tests.engine.fake_data import preset_clips

TASKS = 8
CHECKPOINT_EVERY = 2
HANG_AT = 6  # killed after the update that ends at episode 6; last.pt then holds episode 4
HANG_SECONDS = 900  # a process the test failed to kill exits by itself after this


def overrides(workers: int) -> list[str]:
    # one thread: multi-threaded CPU kernels may reduce in another order on a loaded machine, which would make the
    # comparison test the scheduler instead of the resume logic
    return [
        f"data.workers={workers}",
        f"train.tasks={TASKS}",
        "train.tasks_per_update=2",
        f"train.checkpoint_every={CHECKPOINT_EVERY}",
        "train.val_every=4",
        "train.val_episodes=2",
        "train.log_every=2",
        "train.threads=1",
        "train.device=cpu",
        "train.tensorboard=false",
        "episodes.train_queries=1",
        "eval.episodes=2",
        "eval.order_episodes=0",
    ]


def digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"none")
            continue
        t = t.detach().cpu().contiguous()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]


def batch_tensors(batch):
    return (batch.frames, batch.labels, batch.tracks, batch.query_mask, batch.visibility)


def train(method: str, workers: int, run_dir: Path, phase: str, ctx, device, hang_at: int = 0) -> None:
    cfg = load_config(f"demo_{method}_tiny", overrides(workers))
    clips = preset_clips(
        cfg, points=cfg.model.kwargs.get("num_points") or 8
    )  # Trokens fixes N (2N relative motion)
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / f"steps_{phase}_rank{ctx.rank}.jsonl").open("a") as records:

        def on_step(episode, updated, model):
            params = list(model.parameters())
            state = digest(params + [p.grad for p in params] + list(model.buffers()))
            done = episode.index - ctx.rank + ctx.world_size  # episodes done by all ranks after this step
            row = {"episode": episode.index, "done": done, "updated": updated, "state": state, **LAST_BATCH}
            records.write(json.dumps(row) + "\n")
            records.flush()
            if hang_at and done >= hang_at:
                if ctx.is_main:
                    (run_dir / "hanging").write_text(str(done))
                time.sleep(HANG_SECONDS)  # the test kills the process now; never left behind if it does not
                os._exit(3)

        Trainer(cfg, run_dir, log=lambda *a: None, ctx=ctx, device=device, clips=clips, on_step=on_step).fit()


LAST_BATCH: dict[str, str] = {}
_real_forward = EpisodeStep.forward


def _recording_forward(self, support, query):
    loss, logits = _real_forward(self, support, query)
    LAST_BATCH["batch"] = digest(batch_tensors(support) + batch_tensors(query))
    LAST_BATCH["loss"] = float(loss.detach()).hex()
    return loss, logits


def kill_phase(workers: int, root: Path, methods: list[str]) -> None:
    import torch.distributed as dist

    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    children = []
    for method in methods:
        run_dir = root / method / "killed"
        run_dir.mkdir(parents=True, exist_ok=True)
        pid = os.fork()
        if pid:
            children.append(pid)
            continue
        code = 0
        try:
            ctx = DistContext(rank, world, rank)
            if world > 1:
                store = root / method / "process_group"
                dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
            train(method, workers, run_dir, "kill", ctx, torch.device("cpu"), hang_at=HANG_AT)
        except BaseException:  # noqa: BLE001 - reported to the test through the file
            (run_dir / "failed").write_text(f"rank {rank}:\n{traceback.format_exc()}")
            code = 1
        finally:
            os._exit(code)
    for pid in children:
        os.waitpid(pid, 0)


def resume_phase(workers: int, root: Path, methods: list[str]) -> None:
    ctx, device = init_distributed("cpu")
    try:
        for method in methods:
            try:
                train(method, workers, root / method / "full", "resume", ctx, device)
                train(method, workers, root / method / "killed", "resume", ctx, device)
            except Exception:  # noqa: BLE001 - reported to the test through the file
                (root / method / "failed").write_text(f"rank {ctx.rank}:\n{traceback.format_exc()}")
    finally:
        shutdown(ctx)


def main(argv: list[str]) -> None:
    phase, workers, root, methods = argv[0], int(argv[1]), Path(argv[2]), argv[3:]
    import torch._dynamo  # noqa: F401 - imported by the first optimiser anyway: once here, not in every child

    t_quantile_975(1)  # cached: computed once before forking
    EpisodeStep.forward = _recording_forward
    (kill_phase if phase == "kill" else resume_phase)(workers, root, methods)


if __name__ == "__main__":
    main(sys.argv[1:])
