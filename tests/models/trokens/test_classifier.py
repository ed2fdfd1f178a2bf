"""TrokensClassifier: TATs' few-shot API, head and loss around the Trokens network."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from fsar.models import MODELS
from fsar.models.tats.head import few_shot_logits, frame_descriptors
from fsar.models.tats.losses import tats_loss
from fsar.models.trokens import Trokens, TrokensClassifier

from ..tats.test_classifier import G, N, Patchify, T, make_batch


def make_model(**kwargs) -> TrokensClassifier:
    defaults = dict(num_frames=T, num_points=N, num_classes=7, num_heads=4, grid_size=G, num_bins=8)
    defaults.update(kwargs)
    return TrokensClassifier(Patchify(), **defaults)


def test_episode_loss_gradients_and_cached_encoding():
    support_batch = make_batch([0, 1, 2], [3, 0, 6], seed=1)
    query_batch = make_batch([2, 0, 1, 1], [6, 3, 0, 0], seed=2)
    model = make_model().train()
    assert isinstance(model.tats, Trokens) and model.tats.num_bins == 8
    support, query = model.encode(support_batch), model.encode(query_batch)
    model.process_support_set(support, support_batch.labels)
    logits = model(query)
    assert logits.shape == (4, 3)
    context = dict(support=support, query=query, support_batch=support_batch, query_batch=query_batch)
    loss = model.loss(logits, query_batch.labels, **context)
    expected = tats_loss(
        torch.cat([support["cls_logits"], query["cls_logits"]]),
        torch.tensor([3, 0, 6, 6, 3, 0, 0]),
        few_shot_logits(frame_descriptors(query["tokens"]), frame_descriptors(support["tokens"])),
        query_batch.labels,
    )
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    loss.backward()
    for name in ("hod_embed.fc1.weight", "rel_embed.fc2.bias", "blocks.0.mlp.fc1.weight", "space_pos"):
        assert model.tats.get_parameter(name).grad.abs().sum() > 0, name
    # eval encoding of one clip does not depend on the others (what the caching evaluator relies on)
    model.eval()
    with torch.no_grad():
        whole, single = model.encode(query_batch), model.encode(query_batch.select([2]))
    assert torch.allclose(whole["tokens"][2:3], single["tokens"], atol=1e-5)
    # the relative motion reads the batch's visibility
    with torch.no_grad():
        blind = model.encode(dataclasses.replace(query_batch.select([2]), visibility=None))
    assert not torch.allclose(blind["tokens"], single["tokens"])


def test_registered_with_an_inspectable_signature():
    model = MODELS.create(
        "trokens", backbone=Patchify(), num_frames=T, num_points=N, num_classes=7, num_heads=4, grid_size=G
    )
    assert isinstance(model, TrokensClassifier)
    params = inspect.signature(MODELS.get("trokens")).parameters
    assert {"num_bins", "use_hod", "use_relative_motion", "num_points"} <= set(params)
    assert params["num_bins"].default == 32 and params["use_hod"].default is True
    assert params["motion_gate"].default is None and model.tats.hod_gate is None  # the original: no gates
    gated = make_model(motion_gate=0.0)
    assert gated.tats.hod_gate.item() == 0.0 and gated.tats.rel_gate.item() == 0.0
    gated_groups = gated.param_groups()
    assert sum(len(g["params"]) for g in gated_groups) == sum(
        1 for p in gated.parameters() if p.requires_grad
    )
    hod_only = make_model(use_relative_motion=False)
    assert hod_only.tats.rel_embed is None and hod_only.tats.hod_embed is not None
    groups = model.param_groups()
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)


def test_query_mask_is_all_true_by_default_as_the_released_runs():
    batch = make_batch([0, 1, 2], [3, 0, 6], seed=1)
    assert not batch.query_mask.all()
    faithful, masked = make_model().eval(), make_model(use_query_mask=True).eval()
    with torch.no_grad():
        assert faithful.encode(batch)["point_mask"].all()
        assert torch.equal(masked.encode(batch)["point_mask"], batch.query_mask)
        assert not torch.allclose(faithful.encode(batch)["tokens"], masked.encode(batch)["tokens"])
