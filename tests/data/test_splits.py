import json
from collections import Counter

import pytest

from fsar.data.splits import (
    AnnotationRecord,
    SplitEntry,
    find_split_files,
    read_class_index_json,
    read_split_list,
    read_tats_csv,
    read_tats_json,
)
from fsar.errors import DataLayoutError, SplitFormatError

# (variant, folder, split id) -> {split: (lines, classes)}; ta2n.md §7 and field.md §5
EXPECTED = {
    ("ta2n", "hmdb_ARN", "03"): {"train": (4280, 31), "val": (1194, 10), "test": (1292, 10)},
    ("ta2n", "ucf_ARN", "03"): {"train": (9154, 70), "val": (1421, 10), "test": (2745, 21)},
    ("ta2n", "kinetics_CMN", "03"): {"train": (6387, 64), "val": (1200, 12), "test": (2397, 24)},
    ("ta2n", "ssv2_CMN", "03"): {"train": (6400, 64), "val": (1200, 12), "test": (2400, 24)},
    ("ta2n", "ssv2_OTAM", "03"): {"train": (77500, 64), "val": (1926, 12), "test": (2857, 24)},
    ("trx", "hmdb_ARN", "03"): {"train": (4280, 31), "val": (1194, 10), "test": (1292, 10)},
    ("trx", "ucf_ARN", "03"): {"train": (9154, 70), "val": (1421, 10), "test": (2745, 21)},
    ("trx", "kinetics_CMN", "03"): {"train": (6400, 64), "val": (1200, 12), "test": (2400, 24)},
    ("trx", "ssv2_CMN", "03"): {"train": (6400, 64), "val": (1200, 12), "test": (2400, 24)},
    ("trx", "ssv2_OTAM", "07"): {"train": (67013, 64), "val": (1926, 12), "test": (2857, 24)},
}


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_read_split_list_basic_and_spaces_in_class(tmp_path):
    f = write(tmp_path / "trainlist01.txt", "air drumming/-VtLx-mcPds_000012_000022\nabseiling/x1\n\n")
    assert read_split_list(f) == [
        SplitEntry("air drumming", "-VtLx-mcPds_000012_000022", 1),
        SplitEntry("abseiling", "x1", 2),
    ]
    crlf = write(tmp_path / "crlf.txt", "a/1\r\nb/2\r\n")
    assert [(e.class_name, e.video) for e in read_split_list(crlf)] == [("a", "1"), ("b", "2")]
    no_final_newline = write(tmp_path / "nf.txt", "a/1\nb/2")
    assert len(read_split_list(no_final_newline)) == 2
    bom = write(tmp_path / "bom.txt", "\ufeffa/1\n")
    assert read_split_list(bom)[0].class_name == "a"
    blank_end = write(
        tmp_path / "blank_end.txt", "a/1\n \t\n\n"
    )  # whitespace-only lines at the end are blank
    assert len(read_split_list(blank_end)) == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("a/1\nb2\n", r"line 2: expected `class/video` with exactly one '/', got 'b2'"),
        ("a/1\nb/2/3\n", r"line 2: expected `class/video`"),
        ("a/1\n/2\n", r"line 2: empty class or video name"),
        ("a/1\n\nb/2\n", r"line 2: blank line inside the list"),
        (
            "a/1 \n",
            r"line 1: leading or trailing whitespace .* in 'a/1 '; .*remove it \(for trailing whitespace: sed",
        ),
        ("a/1\nb/2\t\n", r"line 2: leading or trailing whitespace .* in 'b/2\\t'"),
        (
            "a/1\n b/2\n",
            r"line 2: leading or trailing whitespace .* in ' b/2'; names are matched exactly, so remove it$",
        ),
        ("a /1\n", r"line 1: leading or trailing whitespace .* in 'a /1'"),
        ("a/1\n  \nb/2\n", r"line 2: blank line inside the list"),
        ("a/1\nb/2\na/1\nb/2\n", r"duplicated entries: 'a/1' on lines 1, 3; 'b/2' on lines 2, 4"),
        ("\n\n", r"no entries"),
    ],
)
def test_read_split_list_errors_name_file_and_line(tmp_path, text, message):
    f = write(tmp_path / "bad.txt", text)
    with pytest.raises(SplitFormatError, match=r"bad\.txt: .*" + message):
        read_split_list(f)


def test_read_split_list_missing_file(tmp_path):
    with pytest.raises(SplitFormatError, match="split file not found"):
        read_split_list(tmp_path / "nope.txt")


def test_find_split_files(tmp_path):
    for name in ["trainlist03.txt", "vallist03.txt", "testlist03.txt", "classInd.json", "README"]:
        write(tmp_path / name, "a/1\n")
    found = find_split_files(tmp_path)
    assert found == {s: tmp_path / f"{s}list03.txt" for s in ("train", "val", "test")}
    assert find_split_files(tmp_path, 3) == found and find_split_files(tmp_path, "03") == found
    write(tmp_path / "trainlist07.txt", "a/1\n")
    with pytest.raises(DataLayoutError, match=r"several ids \(03, 07\).*--split-id"):
        find_split_files(tmp_path)
    assert find_split_files(tmp_path, "07") == {"train": tmp_path / "trainlist07.txt"}
    with pytest.raises(DataLayoutError, match=r"no split files with id '1'; ids found: 03, 07"):
        find_split_files(tmp_path, "1")
    with pytest.raises(DataLayoutError, match="splits folder not found"):
        find_split_files(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataLayoutError, match="no split files named"):
        find_split_files(empty)


def test_read_class_index_json(tmp_path):
    f = write(tmp_path / "classInd.json", '{"78687": 8, "42326": 50}')
    assert read_class_index_json(f) == {"78687": 8, "42326": 50}
    with pytest.raises(SplitFormatError, match=r"key '2': class id must be an integer, got '5'"):
        read_class_index_json(write(tmp_path / "b.json", '{"1": 3, "2": "5"}'))
    with pytest.raises(SplitFormatError, match=r"b2\.json: line 2, column \d+: invalid JSON"):
        read_class_index_json(write(tmp_path / "b2.json", '{"1": 3,\n "2" 5}'))
    with pytest.raises(SplitFormatError, match="expected a JSON object"):
        read_class_index_json(write(tmp_path / "b3.json", "[1, 2]"))


def test_read_tats_json(tmp_path):
    f = write(
        tmp_path / "train_few_shot.json", json.dumps([{"id": "78687", "label": 8}, {"id": 5, "label": "3"}])
    )
    assert read_tats_json(f) == [
        AnnotationRecord("78687", 8, None, None, None, 1),
        AnnotationRecord("5", 3, None, None, None, 2),
    ]
    with pytest.raises(SplitFormatError, match=r"entry 2: expected an object with keys"):
        read_tats_json(write(tmp_path / "b.json", json.dumps([{"id": "1", "label": 0}, {"id": "2"}])))
    with pytest.raises(SplitFormatError, match=r"entry 1: .*\"label\" an integer"):
        read_tats_json(write(tmp_path / "c.json", json.dumps([{"id": "1", "label": "pushing"}])))
    with pytest.raises(SplitFormatError, match=r"entry 2: video id '1' already listed at entry 1"):
        read_tats_json(
            write(tmp_path / "d.json", json.dumps([{"id": "1", "label": 0}, {"id": "1", "label": 0}]))
        )


def test_read_tats_csv_kinetics_and_ucf_layouts(tmp_path):
    k = write(
        tmp_path / "kinetics100.csv",
        "vid_base_path,split,feat_base_name,vid_id,label_id\n"
        "videos/air drumming/abc_000001_000011.mp4,train,train/0/abc_000001_000011.pkl,abc_000001_000011,0\n",
    )
    assert read_tats_csv(k) == [
        AnnotationRecord(
            "abc_000001_000011",
            0,
            "train",
            "videos/air drumming/abc_000001_000011.mp4",
            "train/0/abc_000001_000011.pkl",
            2,
        )
    ]
    u = write(
        tmp_path / "ucf_few_shot.csv",
        ",split,video_name,label,vid_base_name\n0,test,v_Diving_g01_c01,Diving,Diving/v_Diving_g01_c01.avi\n"
        "1,train,v_Punch_g01_c01,17,Punch/v_Punch_g01_c01.avi\n",
    )
    recs = read_tats_csv(u)
    assert [(r.video_id, r.label, r.split, r.video_path, r.line) for r in recs] == [
        ("v_Diving_g01_c01", "Diving", "test", "Diving/v_Diving_g01_c01.avi", 2),
        ("v_Punch_g01_c01", 17, "train", "Punch/v_Punch_g01_c01.avi", 3),
    ]
    with pytest.raises(SplitFormatError, match=r"bad\.csv: line 1: unknown CSV header"):
        read_tats_csv(write(tmp_path / "bad.csv", "id,label\n1,2\n"))
    with pytest.raises(SplitFormatError, match=r"line 2: label_id must be an integer"):
        read_tats_csv(
            write(tmp_path / "k2.csv", "vid_base_path,split,feat_base_name,vid_id,label_id\na,b,c,d,x\n")
        )
    with pytest.raises(SplitFormatError, match=r"line 3: expected 4 fields, got 3"):
        read_tats_csv(write(tmp_path / "u2.csv", "split,video_name,label,vid_base_name\na,b,c,d\na,b,c\n"))


# --------------------------------------------------------------------------------------- the real split files
@pytest.mark.parametrize("key", list(EXPECTED), ids=["/".join(k) for k in EXPECTED])
def test_shared_split_files_counts(shared_splits, key):
    variant, folder, split_id = key
    files = find_split_files(shared_splits / variant / folder)  # a single id per folder: auto-detected
    assert set(files) == {"train", "val", "test"}
    assert all(p.name.endswith(f"list{split_id}.txt") for p in files.values())
    classes_per_split = {}
    videos_per_split = {}
    for split, (n_lines, n_classes) in EXPECTED[key].items():
        entries = read_split_list(files[split])
        assert len(entries) == n_lines
        classes_per_split[split] = {e.class_name for e in entries}
        assert len(classes_per_split[split]) == n_classes
        videos_per_split[split] = {e.video.lower() for e in entries}
    # class sets and (lowercased) video names are disjoint across splits
    for a, b in [("train", "val"), ("train", "test"), ("val", "test")]:
        assert not classes_per_split[a] & classes_per_split[b]
        assert not videos_per_split[a] & videos_per_split[b]


def test_shared_ssv2_class_index_json(shared_splits):
    otam = read_class_index_json(shared_splits / "ta2n" / "ssv2_OTAM" / "classInd.json")
    assert len(otam) == 82_283
    cmn = read_class_index_json(shared_splits / "ta2n" / "ssv2_CMN" / "classInd_cmn.json")
    assert len(cmn) == 10_000
    assert sorted(set(cmn.values())) == list(range(100))
    for folder, index in [("ssv2_OTAM", otam), ("ssv2_CMN", cmn)]:
        listed = 0
        for split in ("train", "val", "test"):
            for e in read_split_list(shared_splits / "ta2n" / folder / f"{split}list03.txt"):
                assert index[e.video] == int(e.class_name[len(split) :])  # `train8/78687` -> 8
                listed += 1
        assert listed == len(index)  # exactly train + val + test
    per_class = Counter(
        e.class_name for e in read_split_list(shared_splits / "ta2n/ssv2_CMN/trainlist03.txt")
    )
    assert set(per_class.values()) == {100}
