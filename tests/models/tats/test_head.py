"""Few-shot head (tats.md §5): worked example, prototype-before-ReLU, epsilon, point averaging options."""

from __future__ import annotations

import pytest
import torch

from fsar.models.tats import bi_mhm_distance, frame_descriptors
from fsar.models.tats.head import class_prototypes, few_shot_logits, frame_distances


def test_worked_example():
    query = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    proto = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    d = frame_distances(query, proto)[0, 0]
    assert torch.allclose(d, torch.tensor([[0.009901, 0.297858], [1.0, 0.297858]]), atol=1e-6)
    assert bi_mhm_distance(query, proto).item() == pytest.approx(0.615518, abs=1e-6)
    assert few_shot_logits(query, proto).item() == pytest.approx(-0.615518, abs=1e-6)
    assert few_shot_logits(query, proto, temperature=2.0).item() == pytest.approx(-0.307759, abs=1e-6)


def test_epsilon_sits_in_the_denominator():
    a = torch.tensor([[[3.0, 4.0]]])  # |a| = 5
    d = frame_distances(a, a)  # 1 - 25 / (25 + 0.01)
    assert d.item() == pytest.approx(1 - 25 / 25.01, abs=1e-7)  # not 1 - 25 / 5.01**2 (eps on each norm)
    assert frame_distances(a, a, eps=0.0).item() == pytest.approx(0.0, abs=1e-7)


def test_bi_mhm_is_symmetric_and_sums_both_directions():
    gen = torch.Generator().manual_seed(0)
    q, p = torch.rand(3, 4, 6, generator=gen), torch.rand(5, 4, 6, generator=gen)
    dist = bi_mhm_distance(q, p)
    assert dist.shape == (3, 5)
    assert torch.allclose(dist, bi_mhm_distance(p, q).T, atol=1e-6)
    d = frame_distances(q, p)
    manual = d[1, 2].min(1).values.sum() + d[1, 2].min(0).values.sum()
    assert dist[1, 2].item() == pytest.approx(manual.item(), abs=1e-6)
    # frame order does not matter to a Hausdorff-style distance
    assert torch.allclose(bi_mhm_distance(q.flip(1), p), dist, atol=1e-6)


def test_descriptors_average_relu_over_all_points_including_masked():
    tokens = torch.tensor([[[[1.0, -2.0], [3.0, 4.0], [-5.0, 6.0]]]])  # [1, 1, 3, 2]
    mask = torch.tensor([[[True, True, False]]])
    assert torch.allclose(frame_descriptors(tokens), torch.tensor([[[4 / 3, 10 / 3]]]))
    existing = frame_descriptors(tokens, mask, point_average="existing")
    assert torch.allclose(existing, torch.tensor([[[2.0, 2.0]]]))
    with pytest.raises(ValueError, match="point mask"):
        frame_descriptors(tokens, point_average="existing")


def test_prototypes_average_raw_tokens_before_the_relu():
    # two shots of one class with opposite tokens: the raw mean is 0, so ReLU-then-mean would give 0.5
    shot = torch.ones(1, 2, 3, 4)
    tokens = torch.cat([shot, -shot])  # [way*shot=2, T=2, N=3, D=4]
    protos, mask = class_prototypes(tokens, way=1, shot=2)
    assert mask is None
    assert torch.equal(frame_descriptors(protos), torch.zeros(1, 2, 4))


def test_existing_prototypes_use_a_masked_mean_over_shots():
    tokens = torch.stack([torch.full((1, 2, 1), 2.0), torch.full((1, 2, 1), 6.0)])  # [2, T=1, N=2, D=1]
    mask = torch.tensor([[[True, False]], [[True, True]]])
    protos, proto_mask = class_prototypes(tokens, 1, 2, mask, "existing")
    assert protos.flatten().tolist() == [4.0, 6.0]  # point 1 exists only in the second shot
    assert proto_mask.flatten().tolist() == [True, True]


def test_head_errors():
    with pytest.raises(ValueError, match="way\\*shot"):
        class_prototypes(torch.zeros(5, 2, 3, 4), way=2, shot=2)
    with pytest.raises(ValueError, match="temperature"):
        few_shot_logits(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), temperature=0.0)
    with pytest.raises(ValueError, match="prototype frames"):
        bi_mhm_distance(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4))
