"""Allow ``python -m fsar`` (and ``torchrun -m fsar``)."""

from fsar.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
