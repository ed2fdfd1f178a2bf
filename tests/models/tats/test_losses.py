"""TATs losses (tats.md §5.4): label-smoothed CE golden value and the two-term episode loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fsar.models.tats import label_smoothed_cross_entropy, tats_loss


def test_label_smoothed_ce_golden_value():
    loss = label_smoothed_cross_entropy(torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0]))
    assert loss.item() == pytest.approx(0.37288, abs=1e-5)
    # = 0.9 * NLL + 0.1 * mean_k(-log p_k)
    logp = torch.log_softmax(torch.tensor([2.0, 0.0, 0.0]), 0)
    assert loss.item() == pytest.approx((0.9 * -logp[0] + 0.1 * -logp.mean()).item(), abs=1e-6)


def test_episode_loss_is_the_weighted_sum_of_both_terms():
    gen = torch.Generator().manual_seed(0)
    cls_logits = torch.randn(8, 6, generator=gen, requires_grad=True)
    global_labels = torch.tensor([0, 5, 2, 2, 1, 3, 4, 0])
    fs_logits = torch.randn(3, 3, generator=gen, requires_grad=True)
    query_labels = torch.tensor([2, 0, 1])
    class_term = F.cross_entropy(cls_logits, global_labels, label_smoothing=0.1)
    q2s_term = F.cross_entropy(fs_logits, query_labels)
    total = tats_loss(cls_logits, global_labels, fs_logits, query_labels)
    assert total.item() == pytest.approx((class_term + q2s_term).item(), abs=1e-6)
    weighted = tats_loss(cls_logits, global_labels, fs_logits, query_labels, class_weight=0.5, q2s_weight=2.0)
    assert weighted.item() == pytest.approx((0.5 * class_term + 2 * q2s_term).item(), abs=1e-6)
    total.backward()
    assert cls_logits.grad.abs().sum() > 0 and fs_logits.grad.abs().sum() > 0


def test_global_labels_outside_the_base_classes_are_rejected():
    with pytest.raises(ValueError, match=r"\[0, 4\).*\[-1, 7\]"):
        tats_loss(torch.zeros(3, 4), torch.tensor([-1, 2, 7]), torch.zeros(1, 2), torch.tensor([0]))
    with pytest.raises(ValueError, match="smoothing"):
        label_smoothed_cross_entropy(torch.zeros(1, 2), torch.tensor([0]), smoothing=1.0)
