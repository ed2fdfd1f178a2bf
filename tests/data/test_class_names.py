"""Class names as text: the name map, split tokens, and names carried by clip batches and splits."""

import json

import numpy as np
import pytest
import torch

from fsar.data.batch import ClipBatch
from fsar.data.class_names import class_texts, read_class_name_map
from fsar.data.splits import find_split_files, read_split_list
from fsar.engine.episode_data import SplitClips
from fsar.errors import DataLayoutError
from tests.engine.fake_data import fake_split


def test_name_map_and_tokens(tmp_path):
    path = tmp_path / "names.json"
    path.write_text(json.dumps({"train8": "Pouring something into something", "test3": "Tearing something"}))
    mapping = read_class_name_map(path)
    assert class_texts(["train8", "kick_ball", "test3"], mapping) == [
        "Pouring something into something",
        "kick_ball",
        "Tearing something",
    ]
    with pytest.raises(DataLayoutError, match=r"\['test18', 'val2'\] are split-file tokens"):
        class_texts(["val2", "test18", "air drumming"], mapping)
    path.write_text(json.dumps({"train8": ""}))
    with pytest.raises(DataLayoutError, match="train8"):
        read_class_name_map(path)
    path.write_text("[1, 2]")
    with pytest.raises(DataLayoutError, match="JSON object"):
        read_class_name_map(path)
    with pytest.raises(DataLayoutError, match="not found"):
        read_class_name_map(tmp_path / "missing.json")


def _batch(n, names):
    lab = torch.arange(n)
    return ClipBatch(torch.zeros(n, 2, 3, 4, 4), lab, lab, [f"v{i}" for i in range(n)], class_names=names)


def test_clip_batch_carries_class_names_through_select_and_cat():
    a = _batch(3, ["kick", "pick", "run"])
    assert a.select([2, 0]).class_names == ["run", "kick"]
    assert ClipBatch.cat([a, _batch(1, ["sit"])]).class_names == ["kick", "pick", "run", "sit"]
    assert ClipBatch.cat([_batch(1, []), _batch(2, [])]).class_names == []
    with pytest.raises(ValueError, match="class_names"):
        ClipBatch.cat([a, _batch(1, [])])
    assert a.to("cpu").class_names == a.class_names


def test_split_clips_fill_class_names_by_record():
    split = fake_split("train", classes=3, videos=2)
    batch = split.batch([5, 0, 3], [0, 1, 2], train=False, rngs=[np.random.default_rng(0)] * 3)
    assert batch.class_names == ["c2", "c0", "c1"] and batch.global_labels.tolist() == [2, 0, 1]
    assert split.class_names == ["c0", "c1", "c2"]
    given = SplitClips("train", split.records, split.load_video, classes=["x", "y", "z", "w"])
    assert given.class_names == [
        "x",
        "y",
        "z",
        "w",
    ]  # the split file's full list wins (e.g. a class all missing)
    gap = SplitClips("train", [r for r in split.records if r.label != 1], split.load_video)
    with pytest.raises(ValueError, match="not 0..n-1"):
        _ = gap.class_names


@pytest.mark.parametrize(
    "variant,folder,tokens",
    [
        ("trx", "ucf_ARN", False),
        ("trx", "hmdb_ARN", False),
        ("trx", "kinetics_CMN", False),
        ("trx", "ssv2_CMN", False),
        ("ta2n", "ssv2_CMN", True),
        ("trx", "ssv2_OTAM", True),
        ("ta2n", "ssv2_OTAM", True),
    ],
)
def test_where_the_real_benchmarks_names_come_from(shared_splits, variant, folder, tokens):
    files = find_split_files(shared_splits / variant / folder)
    names = list(dict.fromkeys(e.class_name for e in read_split_list(files["test"])))
    if tokens:
        with pytest.raises(DataLayoutError, match="split-file tokens"):
            class_texts(names)
        mapping = {n: f"class {i}" for i, n in enumerate(names)}
        assert class_texts(names, mapping)[:2] == ["class 0", "class 1"]
    else:
        assert class_texts(names) == names  # verbatim
