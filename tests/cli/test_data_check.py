import json

from fsar.cli.main import main
from tests.helpers import make_frames, write_encoded_video


def make_synth(out, missing=False):
    """The `fsar synth --out` layout: videos/<class>/<video>.mp4 and splits/{train,val,test}list01.txt."""
    for cls in ("a", "b"):
        write_encoded_video(out / "videos" / cls / f"{cls}0.mp4", make_frames(9, 32, 32, seed=ord(cls)))
    splits = out / "splits"
    splits.mkdir(parents=True)
    (splits / "trainlist01.txt").write_text("a/a0\n" + ("a/a_missing\n" if missing else ""))
    (splits / "vallist01.txt").write_text("b/b0\n")
    (splits / "testlist01.txt").write_text("b/b0\n")
    return out


def test_data_check_ok_exit_zero_and_json(tmp_path, capsys):
    out = make_synth(tmp_path / "synth")
    js = tmp_path / "report.json"
    rc = main(["data", "check", "--benchmark", "synthetic", "--root", str(out), "--json", str(js)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "Result: OK" in text and "train" in text and "short (<8)" in text
    data = json.loads(js.read_text())
    assert data["ok"] is True and [s["num_videos"] for s in data["splits"]] == [1, 1, 1]


def test_data_check_missing_exit_one_lists_video(tmp_path, capsys):
    out = make_synth(tmp_path / "synth", missing=True)
    rc = main(
        [
            "data",
            "check",
            "--benchmark",
            "synthetic",
            "--root",
            str(out / "videos"),
            "--splits",
            str(out / "splits"),
            "--frames",
            "10",
            "--only",
            "train",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 1
    assert "line 2: a/a_missing" in text and "a/a0: 9 frames" in text  # 9 < T=10 -> listed as short
    assert "PROBLEMS (1 missing, 0 unreadable)" in text


def test_data_check_usage_errors(tmp_path, capsys):
    assert main(["data", "check", "--benchmark", "ssv3", "--root", str(tmp_path)]) == 2
    assert "unknown benchmark 'ssv3'" in capsys.readouterr().err
    assert main(["data", "check", "--benchmark", "ucf101", "--root", str(tmp_path)]) == 2
    assert "--splits is required" in capsys.readouterr().err
    assert main(["data"]) == 2
    # a missing videos root is an fsar error: exit 1 with a message naming the folder
    rc = main(
        ["data", "check", "--benchmark", "ucf101", "--root", str(tmp_path / "no"), "--splits", str(tmp_path)]
    )
    assert rc == 1 and "videos root folder not found" in capsys.readouterr().err
