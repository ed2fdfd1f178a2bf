"""A training process for the kill -9 test: in-memory data, a pause after every episode."""

import sys
import time

from fsar.engine.config import load_config
from fsar.engine.trainer import Trainer
from tests.engine.fake_data import fake_clips
from tests.engine.test_trainer import BASE

# one thread: multi-threaded CPU kernels can reduce in a different order on a loaded machine, which would make
# the comparison test the scheduler instead of the resume logic
OVERRIDES = BASE + [
    "model.name=otam",
    "train.tasks=12",
    "train.checkpoint_every=2",
    "train.val_every=6",
    "train.threads=1",
]

if __name__ == "__main__":
    out, pause = sys.argv[1], float(sys.argv[2])
    Trainer(
        load_config(None, OVERRIDES),
        out,
        log=lambda *a: None,
        clips=fake_clips(),
        on_step=lambda *a: time.sleep(pause),
    ).fit()
