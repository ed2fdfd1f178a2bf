"""Parity with the original TA2N code (ta2n.md §10 items 6-8), run only against a local checkout of it.

Set FSAR_TA2N_REFERENCE to the root of a R00Kie-Liu/TA2N checkout (the folder holding ``models/ta2n.py``).
Nothing of it is vendored here: the module is imported from that path, with ``torch.Tensor.cuda`` patched to
the identity for the duration of the test (the original calls ``.cuda()`` in ``ACM.__init__`` and ``gen_mask``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fsar.models.ta2n import TA2N, convert_reference_state_dict, timewise_cos

from ._util import assert_grads_close

REFERENCE = os.environ.get("FSAR_TA2N_REFERENCE")
pytestmark = [
    pytest.mark.skipif(
        not REFERENCE or not (Path(REFERENCE) / "models" / "ta2n.py").is_file(),
        reason="set FSAR_TA2N_REFERENCE to a checkout of the original TA2N code (with models/ta2n.py) to run",
    ),
    pytest.mark.slow,
]


@pytest.fixture
def original(monkeypatch):
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    spec = importlib.util.spec_from_file_location("ta2n_original", Path(REFERENCE) / "models" / "ta2n.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _capture_align(stage, store):
    align = stage.align

    def wrapped(x, *args, **kwargs):
        out = align(x, *args, **kwargs)
        store.append(out[0] if isinstance(out, tuple) else out)
        return out

    stage.align = wrapped


@pytest.mark.parametrize("shot", [1, 5])
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_outputs_gradients_and_batchnorm_match_the_original(original, shot, train, impl):
    c, t, n, m = 16, 8, 5, 4
    torch.manual_seed(0)
    ref = original.TA2N(T=t, shot=shot, dim=(c, c), first_stage=True, second_stage=True, vis=True).double()
    with torch.no_grad():  # re-randomise the zero-initialised final layers (else theta is constant and o = 0)
        for layer in (ref.firststage.locnet[12], ref.secondstage.mvnet[12]):
            layer.weight.normal_(0, 0.5)
            layer.bias.normal_(0, 0.3)
    ours = TA2N(T=t, shot=shot, dim=(c, c), impl=impl).double()
    ours.load_state_dict(convert_reference_state_dict(ref.state_dict()), strict=True)
    ref.train(train)
    ours.train(train)

    captured = {"ref_ttm": [], "ours_ttm": [], "ref_acm_in": [], "ours_acm_in": []}
    _capture_align(ref.firststage, captured["ref_ttm"])
    _capture_align(ours.ttm, captured["ours_ttm"])
    ref.secondstage.register_forward_pre_hook(lambda mod, args: captured["ref_acm_in"].append(args))
    ours.acm.register_forward_pre_hook(lambda mod, args: captured["ours_acm_in"].append(args))

    g = torch.Generator().manual_seed(1)
    support = torch.randn(n * shot, c, t, 7, 7, generator=g, dtype=torch.float64)
    query = torch.randn(m, c, t, 7, 7, generator=g, dtype=torch.float64)
    s_ref, q_ref = support.clone().requires_grad_(), query.clone().requires_grad_()
    s_ours, q_ours = support.clone().requires_grad_(), query.clone().requires_grad_()
    pairs_ref, offsets_ref, vis = ref(s_ref, q_ref)
    pairs_ours, offsets_ours, diag = ours(s_ours, q_ours, return_diagnostics=True)

    def close(a, b):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

    close(diag.theta_support, vis["first"]["theta_support"])
    close(diag.theta_query, vis["first"]["theta_query"])
    for a, b in zip(captured["ours_ttm"], captured["ref_ttm"]):
        close(a, b)
    proto_ref, queries_ref = captured["ref_acm_in"][0][:2]
    close(captured["ours_acm_in"][0][0], proto_ref)  # the prototype (= aligned support for shot 1)
    acm = ref.secondstage
    keys = acm.keynet(proto_ref.mean((-2, -1)))
    qs = acm.querynet(queries_ref.mean((-2, -1)))
    attention_ref = (torch.einsum("ncx,mcy->nmxy", keys, qs) / c**0.5).softmax(-1)
    close(diag.attention, attention_ref)
    close(offsets_ours, offsets_ref)
    close(pairs_ours, pairs_ref)
    dist_ref = timewise_cos(pairs_ref[:, :, :c], pairs_ref[:, :, c:])
    dist_ours = timewise_cos(pairs_ours[:, :, :c], pairs_ours[:, :, c:])
    close(dist_ours, dist_ref)

    labels = torch.arange(m) % n
    F.cross_entropy(-dist_ref.T, labels, reduction="sum").backward()
    F.cross_entropy(-dist_ours.T, labels, reduction="sum").backward()
    ref_grads = convert_reference_state_dict(
        {k: p.grad for k, p in ref.named_parameters() if p.grad is not None}
    )
    for name, p in ours.named_parameters():
        if name in ref_grads:
            assert_grads_close(p.grad, ref_grads[name], name, rtol=1e-4, atol=1e-9)
        else:
            assert p.grad is None or torch.count_nonzero(p.grad) == 0, name
    assert_grads_close(s_ours.grad, s_ref.grad, "support", atol=1e-9)
    assert_grads_close(q_ours.grad, q_ref.grad, "query", atol=1e-9)
    ref_buffers = convert_reference_state_dict(ref.state_dict())
    for name, value in ours.state_dict().items():
        torch.testing.assert_close(value, ref_buffers[name], rtol=1e-6, atol=1e-9, msg=name)
