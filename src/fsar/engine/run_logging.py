"""Run logs: CSV files always, TensorBoard events by default, Weights & Biases when asked for (optional extra)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


class RunLogger:
    """Append rows to ``<run_dir>/<stream>.csv`` and scalars to TensorBoard (and W&B when ``wandb=True``).

    Only the main process of a distributed run should create one."""

    def __init__(
        self, run_dir: Path, tensorboard: bool = True, wandb: bool = False, config: dict | None = None
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._tb = None
        self._wandb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
        if wandb:
            try:
                import wandb as wandb_module
            except ImportError:
                raise ImportError(
                    "train.wandb=true needs the optional extra: pip install 'fsar[wandb]'"
                ) from None
            self._wandb = wandb_module.init(dir=str(self.run_dir), config=config or {})

    def rewrite(self, stream: str, rows: list[dict[str, Any]]) -> None:
        """(Re)write a whole CSV stream (used on resume so files match the checkpoint)."""
        path = self.run_dir / f"{stream}.csv"
        if not rows:
            path.unlink(missing_ok=True)
            return
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    def log(self, stream: str, row: dict[str, Any], step: int) -> None:
        path = self.run_dir / f"{stream}.csv"
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        scalars = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(f"{stream}/{key}", value, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log({f"{stream}/{k}": v for k, v in scalars.items()}, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
