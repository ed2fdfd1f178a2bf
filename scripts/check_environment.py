"""Fail when packages that break this project's environment are installed.

torchvision, timm and torchcodec from PyPI are CUDA builds; with torchvision merely present,
``from transformers import Dinov2Model`` fails. See ../shared/specs/dependencies.md.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import sys

FORBIDDEN = ("torchvision", "timm", "torchcodec")


def main() -> int:
    found = []
    for name in FORBIDDEN:
        with contextlib.suppress(md.PackageNotFoundError):
            found.append(f"{name}=={md.version(name)}")
    if found:
        print(
            "error: forbidden packages installed: " + ", ".join(found) + ". "
            "They are CUDA-linked and break transformers' model imports here; "
            "remove them with `pip uninstall -y " + " ".join(f.split("==")[0] for f in found) + "`.",
            file=sys.stderr,
        )
        return 1
    torch_version = md.version("torch")
    print(f"environment ok: torch {torch_version}, transformers {md.version('transformers')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
