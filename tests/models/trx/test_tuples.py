import math
from itertools import combinations

import pytest
import torch

from fsar.models.trx import frame_tuples, group_by_label


def test_tuple_counts_and_order():
    assert frame_tuples(8, 2).shape == (28, 2) and frame_tuples(8, 3).shape == (56, 3)
    assert frame_tuples(8, 1).shape == (8, 1) and frame_tuples(8, 8).shape == (1, 8)
    assert frame_tuples(5, 3).tolist() == [list(t) for t in combinations(range(5), 3)]
    pairs = frame_tuples(8, 2)
    assert (
        pairs[0].tolist() == [0, 1]
        and pairs[-1].tolist() == [6, 7]
        and bool((pairs[:, 0] < pairs[:, 1]).all())
    )
    assert frame_tuples(16, 4).shape[0] == math.comb(16, 4) == 1820
    for bad in (0, 9):
        with pytest.raises(ValueError, match="cardinality"):
            frame_tuples(8, bad)


def test_grouping_of_shuffled_labels():
    groups = group_by_label(torch.tensor([7, 2, 2, 5, 7, 5]))
    assert groups.classes.tolist() == [2, 5, 7] and groups.way == 3 and groups.mask is None
    assert groups.index.tolist() == [[1, 2], [3, 5], [0, 4]]


def test_grouping_with_unequal_shots_pads_and_masks():
    groups = group_by_label(torch.tensor([1, 0, 1, 1, 2]))
    assert groups.classes.tolist() == [0, 1, 2]
    assert groups.index.tolist() == [[1, 1, 1], [0, 2, 3], [4, 4, 4]]
    assert groups.mask.tolist() == [[True, False, False], [True, True, True], [True, False, False]]


def test_grouping_errors():
    with pytest.raises(ValueError, match="integers"):
        group_by_label(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="non-empty 1-D"):
        group_by_label(torch.zeros(0, dtype=torch.long))
