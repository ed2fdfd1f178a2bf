"""`key=value` overrides are accepted wherever they stand on the command line, for every command that takes them."""

import pytest

from fsar.cli.main import build_parser
from fsar.cli.overrides import is_override, parse_command_line

# command -> (words before the overrides' positions, options), for every command that takes overrides
COMMANDS = {
    "train": (["train", "demo_otam_tiny"], ["--out", "runs/x", "--nproc", "1"]),
    "eval": (["eval", "best.pt"], ["--episodes", "100", "--split", "val"]),
    "extract-features": (["extract-features", "demo_otam_tiny"], ["--out", "cache", "--dtype", "float32"]),
    "viz ta2n": (["viz", "ta2n", "best.pt"], ["--out", "a.png", "--episode", "3"]),
    "demo": (["demo"], ["--out", "runs/demo", "--tasks", "4"]),
    "predict": (["predict", "best.pt"], ["--support", "S", "--query", "q.mp4"]),
}


def parse(argv):
    return parse_command_line(build_parser(), argv)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_overrides_anywhere(command):
    head, options = COMMANDS[command]
    a, b = "data.root=/data/x", "train.tasks=7"
    for argv in (
        head + [a, b] + options,  # before the options (always worked)
        head + options + [a, b],  # after them (failed with "unrecognized arguments")
        head + [a] + options + [b],  # on both sides
        head + options[:2] + [a] + options[2:] + [b],  # between two options
    ):
        args = parse(argv)
        assert args.overrides == [a, b], argv
        assert getattr(args, "func", None) is not None
    later = parse(head + ["train.tasks=1"] + options + ["train.tasks=2"])
    assert later.overrides == ["train.tasks=1", "train.tasks=2"]  # command-line order: the later one wins


def test_options_keep_their_values():
    args = parse(["eval", "best.pt", "--episodes", "100", "data.root=X", "--shot", "5"])
    assert (args.checkpoint, args.episodes, args.shot, args.overrides) == ("best.pt", 100, 5, ["data.root=X"])
    args = parse(["train", "cfg.yaml", "--out", "runs/a", "data.root=X", "--no-resume"])
    assert (args.config, args.out, args.no_resume, args.overrides) == (
        "cfg.yaml",
        "runs/a",
        True,
        ["data.root=X"],
    )
    args = parse(
        ["predict", "--backbone", "resnet18", "data.num_frames=4", "--support", "S", "--query", "a.mp4"]
    )
    assert (args.checkpoint, args.query, args.overrides) == (None, ["a.mp4"], ["data.num_frames=4"])
    args = parse(["predict", "--support", "S", "--query", "a.mp4", "./x=1.mp4", "data.num_frames=4"])
    assert (args.query, args.overrides) == (["a.mp4", "./x=1.mp4"], ["data.num_frames=4"])


def test_words_that_are_not_overrides_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        parse(["train", "demo_otam_tiny", "--out", "x", "oops"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "usage: fsar train" in err
    assert "unexpected argument 'oops': overrides look like section.key=value" in err
    with pytest.raises(SystemExit) as exc:
        parse(["eval", "best.pt", "--episodes", "3", "--bogus", "data.root=X"])
    assert exc.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # a command without overrides rejects them as before
        parse(["synth", "--out", "x", "data.root=X"])
    assert exc.value.code == 2 and "unrecognized arguments: data.root=X" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["viz", "tracks", "--video", "v", "--tracks", "t", "--out", "o", "data.root=X"])


def test_is_override():
    for word in ("data.root=/x", "a=1", "model.kwargs.metric=l2", "train.tasks=", "x.y=a=b"):
        assert is_override(word), word
    for word in ("oops", "=1", "data.=1", ".a=1", "a/b=1", "./x=1.mp4", "--out=x", "1a=2"):
        assert not is_override(word), word
