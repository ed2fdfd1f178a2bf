"""``key=value`` config overrides on the command line, accepted wherever they stand.

argparse hands a ``nargs="*"`` positional only the words that directly follow the positionals before it, so
``fsar train CONFIG --out DIR data.root=X`` used to fail with "unrecognized arguments". A command that takes
overrides declares them with :func:`add_overrides` (instead of its own ``overrides`` positional);
:func:`parse_command_line`, used by ``fsar.cli.main``, parses with ``parse_known_args`` and appends the leftover
words shaped ``section.key=value`` to ``args.overrides``, in command-line order (so a later override of the same key
still wins). Any other leftover word is a usage error (exit 2) from the command's own parser that names the word
and shows the expected form; a command without overrides rejects every leftover as argparse would.

    from fsar.cli.overrides import add_overrides

    def register(subparsers):
        p = subparsers.add_parser("prepare", ...)
        add_overrides(p, "config overrides, e.g. data.root=DIR")
"""

from __future__ import annotations

import argparse
import re
import sys

# section.key=value, section.sub.key=value (the value may be empty or hold '=')
OVERRIDE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*=")


def add_overrides(
    parser: argparse.ArgumentParser,
    help: str = "config overrides, e.g. data.root=DIR",
    absorb: tuple[str, ...] = (),
) -> None:
    """Give ``parser`` an ``overrides`` list (``key=value ...``) that may stand anywhere on the command line.

    ``absorb`` names other arguments that argparse may hand an override word to (an optional positional before
    the overrides, a ``nargs="+"`` option such as ``--query``); words of theirs shaped ``section.key=value`` are
    moved to the overrides (a file with such a name is given as ``./NAME``)."""
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=help)
    parser.set_defaults(overrides_parser=parser, overrides_absorb=tuple(absorb))


def is_override(word: str) -> bool:
    """True for ``section.key=value`` words."""
    return bool(OVERRIDE.match(word))


def parse_command_line(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` with ``parser`` (and its sub-commands), collecting ``key=value`` overrides wherever they
    stand (see the module docstring). Usage errors exit with status 2, as argparse does."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    owner: argparse.ArgumentParser | None = getattr(args, "overrides_parser", None)
    if owner is None:
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return args
    options = [w for w in extra if w.startswith("-")]
    if options:
        owner.error(f"unrecognized arguments: {' '.join(options)}")
    words = list(args.overrides or []) + extra
    for name in getattr(args, "overrides_absorb", ()):
        value = getattr(args, name, None)
        if isinstance(value, str) and is_override(value):
            words.append(value)
            setattr(args, name, None)
        elif isinstance(value, list):
            words += [w for w in value if is_override(w)]
            setattr(args, name, [w for w in value if not is_override(w)])
    # command-line order, so that a later override of the same key wins
    args.overrides = sorted(words, key=lambda w: argv.index(w) if w in argv else len(argv))
    bad = [w for w in args.overrides if not is_override(w)]
    if bad:
        owner.error(
            f"unexpected argument {bad[0]!r}: overrides look like section.key=value (e.g. data.root=DIR "
            "train.tasks=100); options start with --"
        )
    return args
