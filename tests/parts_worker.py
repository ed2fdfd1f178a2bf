"""Runs an ``fsar`` command that kills itself with SIGKILL (kill -9) at a chosen point, for the ``--part`` tests.

``python -m tests.parts_worker MODULE.FUNCTION K fsar-args...``: the process dies when ``MODULE.FUNCTION`` is
called for the (K+1)-th time, before that call does anything (so K units are finished and the rest are not).
"""

import importlib
import os
import signal
import sys

from fsar.cli.main import main


def die_on_call(module, name: str, after: int) -> None:
    original = getattr(module, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        if calls[0] == after:
            os.kill(os.getpid(), signal.SIGKILL)
        calls[0] += 1
        return original(*args, **kwargs)

    setattr(module, name, wrapper)


if __name__ == "__main__":
    target, after, *argv = sys.argv[1:]
    module_name, name = target.rsplit(".", 1)
    die_on_call(importlib.import_module(module_name), name, int(after))
    sys.exit(main(argv))
