import json

import pytest

from fsar.data.twins import read_twin_classes, twin_labels
from fsar.errors import FsarError


def test_reads_meta_json_and_flat_files(tmp_path):
    (tmp_path / "meta.json").write_text(
        json.dumps({"twins": {"a_then_b": "b_then_a", "b_then_a": "a_then_b"}})
    )
    (tmp_path / "flat.json").write_text(json.dumps({"x": "y", "y": "x"}))
    assert read_twin_classes(tmp_path / "meta.json") == {"a_then_b": "b_then_a", "b_then_a": "a_then_b"}
    assert read_twin_classes(tmp_path / "flat.json") == {"x": "y", "y": "x"}


def test_bad_files_name_the_problem(tmp_path):
    with pytest.raises(FsarError, match="not found"):
        read_twin_classes(tmp_path / "none.json")
    (tmp_path / "asym.json").write_text(json.dumps({"x": "y"}))
    with pytest.raises(FsarError, match=r"asym.json.*\['x'\]"):
        read_twin_classes(tmp_path / "asym.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(FsarError, match="expected a JSON object"):
        read_twin_classes(tmp_path / "list.json")


def test_twin_labels_keep_pairs_inside_the_split():
    twins = {"a": "b", "b": "a", "c": "d", "d": "c"}
    assert twin_labels(twins, ["b", "x", "a", "c"]) == {0: 2, 2: 0}
