import json

import pytest

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


def test_data_check_full_lists_a_corrupt_frame_the_sampled_check_misses(tmp_path, capsys):
    from tests.helpers import write_frame_folder

    out = make_synth(tmp_path / "synth")
    folder = write_frame_folder(out / "videos" / "a" / "a1", make_frames(20, 32, 32, seed=5))
    (folder / "img_4.jpg").write_bytes(b"\xff\xd8 broken")
    (out / "splits" / "trainlist01.txt").write_text("a/a0\na/a1\n")
    assert main(["data", "check", "--benchmark", "synthetic", "--root", str(out)]) == 0
    capsys.readouterr()
    rc = main(["data", "check", "--benchmark", "synthetic", "--root", str(out), "--full", "--workers", "2"])
    text = capsys.readouterr().out
    assert rc == 1 and "line 2: a/a1" in text and "img_4.jpg: unreadable frame image" in text
    assert "every frame of every video" in text
    with pytest.raises(SystemExit) as exc:
        main(["data", "check", "--benchmark", "synthetic", "--root", str(out), "--full", "--no-decode"])
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_data_check_reports_an_empty_split_list_and_checks_the_others(tmp_path, capsys):
    out = make_synth(tmp_path / "synth", missing=False)
    (out / "splits" / "trainlist01.txt").write_text("")
    (out / "splits" / "testlist01.txt").write_text("b/b0\nb/b_missing\n")
    rc = main(["data", "check", "--benchmark", "synthetic", "--root", str(out)])
    text = capsys.readouterr().out
    assert rc == 1
    assert "Split file problem, train" in text and "trainlist01.txt: the split list has no entries" in text
    assert "line 2: b/b_missing" in text  # the test split was still checked
    assert "PROBLEMS (1 missing, 0 unreadable, 1 unreadable split file)" in text
