import pytest
import torch

from fsar.models.ta2n import ACM, TA2N, TTM, TA2NDiagnostics, timewise_cos
from fsar.models.ta2n.masks import perturbation_offsets, pooling_weights

from ._util import assert_grads_close, episode, randomise_final_layers

C = 16


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_at_real_size():
    with torch.device("meta"):
        model = TA2N(T=8, shot=1, dim=(2048, 2048), first_stage=TTM, second_stage=ACM)
    assert _count(model.ttm) == 3_764_898
    assert _count(model.acm) == 27_190_210
    assert _count(model.acm.offset_net) == 14_607_298
    assert _count(model.fusion) == 12_582_912
    assert _count(model) == 43_538_020


def test_public_api_shapes_and_stage_switches():
    support, query = episode(5, 1, 3, C, dtype=torch.float32)
    pairs, offsets = TA2N(T=8, shot=1, dim=(C, C), first_stage=TTM, second_stage=ACM)(support, query)
    assert pairs.shape == (5, 3, 2 * C, 8, 1, 1) and offsets.shape == (15, 8, 2)
    dist = timewise_cos(pairs[:, :, :C], pairs[:, :, C:])
    assert dist.shape == (5, 3)
    # stage classes / True enable, False / None disable (the original dropped ACM when given the class)
    assert TA2N(dim=(C, C), first_stage=True, second_stage=ACM).acm is not None
    model = TA2N(dim=(C, C), first_stage=None, second_stage=False)
    assert model.ttm is None and model.acm is None
    pairs, offsets = model(support, query)
    assert pairs.shape == (5, 3, 2 * C, 8, 7, 7) and offsets is None
    torch.testing.assert_close(pairs[2, 1, :C], support[2])
    torch.testing.assert_close(pairs[2, 1, C:], query[1])
    with pytest.raises(TypeError, match="second_stage"):
        TA2N(dim=(C, C), second_stage="ACM")


def test_input_errors_are_clear():
    model = TA2N(dim=(C, C), shot=2)
    support, query = episode(3, 1, 2, C, dtype=torch.float32)
    with pytest.raises(ValueError, match="multiple of shot=2"):
        model(support, query)
    with pytest.raises(ValueError, match="C=16, T=8"):
        model(support[:, :8], query)
    with pytest.raises(ValueError, match=">= 4"):
        TA2N(dim=(C, C), first_stage=False)(support[..., :3, :3], query[..., :3, :3])


@pytest.mark.parametrize("shot", [1, 5])
@pytest.mark.parametrize("train", [False, True])
def test_fast_equals_reference_forward_and_backward(shot, train):
    models = []
    for impl in ("fast", "reference"):
        torch.manual_seed(0)
        model = TA2N(T=8, shot=shot, dim=(C, 24), impl=impl).double().train(train)
        randomise_final_layers(model)
        models.append(model)
    assert models[0].ttm.warp == "matrix" and models[1].ttm.warp == "grid_sample"
    support, query = episode(5, shot, 4, C)
    g = torch.Generator().manual_seed(3)
    r_pairs = torch.randn(5, 4, 2 * C, 8, 1, 1, generator=g, dtype=torch.float64)
    r_off = torch.randn(20, 8, 2, generator=g, dtype=torch.float64)
    outs, input_grads = [], []
    for model in models:
        s, q = support.clone().requires_grad_(), query.clone().requires_grad_()
        pairs, offsets = model(s, q)
        ((pairs * r_pairs).sum() + (offsets * r_off).sum()).backward()
        outs.append((pairs, offsets))
        input_grads.append((s.grad, q.grad))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-4, atol=1e-10)
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=1e-4, atol=1e-10)
    assert outs[0][1].abs().max() > 0.05  # offsets really vary
    assert_grads_close(input_grads[0][0], input_grads[1][0], "support")
    assert_grads_close(input_grads[0][1], input_grads[1][1], "query")
    grads_ref = dict(models[1].named_parameters())
    for name, p in models[0].named_parameters():
        assert_grads_close(p.grad, grads_ref[name].grad, name)
    if train:
        buffers_ref = dict(models[1].named_buffers())
        for name, b in models[0].named_buffers():
            torch.testing.assert_close(b, buffers_ref[name], rtol=1e-6, atol=1e-10, msg=name)


def test_zero_gradient_upstream_of_zero_initialised_final_layers():
    torch.manual_seed(0)
    model = TA2N(T=8, shot=1, dim=(C, C)).double().train()
    support, query = episode(5, 1, 5, C)
    pairs, _ = model(support, query)
    dist = timewise_cos(pairs[:, :, :C], pairs[:, :, C:])
    torch.nn.functional.cross_entropy(-dist.T, torch.arange(5), reduction="sum").backward()
    for stage in (model.ttm, model.acm.offset_net):
        for name, p in stage.named_parameters():
            if name.startswith("fc2."):
                continue
            assert p.grad is None or torch.count_nonzero(p.grad) == 0, name
    assert model.ttm.fc2.weight.grad.abs().sum() > 0
    assert model.acm.offset_net.fc2.weight.grad.abs().sum() > 0
    assert model.acm.key_proj.weight.grad.abs().sum() > 0  # the attention itself does learn


def test_batchnorm_bookkeeping_after_one_train_forward():
    model = TA2N(T=8, shot=1, dim=(C, C)).train()
    model(*episode(5, 1, 3, C, dtype=torch.float32))
    assert int(model.ttm.bn1.num_batches_tracked) == 2 and int(model.ttm.bn2.num_batches_tracked) == 2
    assert int(model.acm.offset_net.bn1.num_batches_tracked) == 1
    assert int(model.acm.offset_net.bn2.num_batches_tracked) == 1


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_init_pooling_with_valuenet_zeroed_and_ttm_off(impl):
    model = TA2N(T=8, shot=1, dim=(C, C), first_stage=False, impl=impl).double().eval()
    with torch.no_grad():
        model.acm.value_proj.weight.zero_()
    support, query = episode(3, 1, 2, C)
    pairs, offsets = model(support, query)
    assert torch.count_nonzero(offsets) == 0
    w0 = pooling_weights(perturbation_offsets(0.2, torch.float64).reshape(1, 1, 9, 2), 7, 7)[0, 0]
    assert abs(float(w0[0, 0]) - 0.0145289) < 1e-6
    expected_support = torch.einsum("hw,ncthw->nct", w0, support)
    expected_query = torch.einsum("hw,mcthw->mct", w0, query)
    for n in range(3):
        for m in range(2):
            torch.testing.assert_close(pairs[n, m, :C, :, 0, 0], expected_support[n], atol=1e-4, rtol=0)
            torch.testing.assert_close(pairs[n, m, C:, :, 0, 0], expected_query[m], atol=1e-4, rtol=0)


def test_multishot_prototype_depends_on_shot_zero_only_by_position():
    torch.manual_seed(0)
    model = TA2N(T=8, shot=4, dim=(C, C), first_stage=False).double()
    support, _ = episode(2, 4, 1, C)
    proto = model.fuse_support(support, 4)[0]
    permuted = support.reshape(2, 4, *support.shape[1:])[:, [0, 3, 1, 2]].reshape(support.shape)
    torch.testing.assert_close(model.fuse_support(permuted, 4)[0], proto)
    swapped = support.reshape(2, 4, *support.shape[1:])[:, [1, 0, 2, 3]].reshape(support.shape)
    assert (model.fuse_support(swapped, 4)[0] - proto).abs().max() > 1e-3


def test_diagnostics_output():
    torch.manual_seed(0)
    model = TA2N(T=8, shot=2, dim=(C, C))
    randomise_final_layers(model)
    support, query = episode(3, 2, 4, C, dtype=torch.float32)
    pairs, offsets, diag = model(support, query, return_diagnostics=True)
    assert isinstance(diag, TA2NDiagnostics)
    assert diag.theta_support.shape == (6, 2) and diag.theta_query.shape == (4, 2)
    assert diag.attention.shape == (3, 4, 8, 8) and diag.fusion_attention.shape == (3, 2, 8, 8)
    torch.testing.assert_close(diag.attention.sum(-1), torch.ones(3, 4, 8))  # softmax over query frames
    torch.testing.assert_close(diag.fusion_attention.sum(2), torch.ones(3, 2, 8))  # softmax over shot frames
    torch.testing.assert_close(diag.offsets, offsets.detach())
    assert not diag.offsets.requires_grad and diag.source_frames("query").shape == (4, 8)
    torch.testing.assert_close(model(support, query)[0], pairs)  # default return unchanged


def test_perturbation_buffer_options():
    model = TA2N(T=8, dim=(C, C), perturbation=0.3, offset_scale=0.5)
    assert "acm.perturb" not in model.state_dict()
    assert dict(model.named_buffers())["acm.perturb"].shape == (9, 2)
    torch.testing.assert_close(model.acm.perturb[5], torch.tensor([0.3, 0.3]))
    assert model.double().acm.perturb.dtype == torch.float64  # moves with the module

    support, query = episode(2, 1, 2, C, dtype=torch.float32)
    faithful = TA2N(T=8, dim=(C, C), first_stage=False).eval()
    with torch.no_grad():
        faithful.acm.value_proj.weight.zero_()
    no_eval_perturb = TA2N(T=8, dim=(C, C), first_stage=False, perturb_at_eval=False).eval()
    no_eval_perturb.load_state_dict(faithful.state_dict())
    a, b = faithful(support, query)[0], no_eval_perturb(support, query)[0]
    # o = 0 and no perturbation: plain average pooling instead of W0
    torch.testing.assert_close(b[0, 0, :C, :, 0, 0], support[0].mean((-2, -1)), atol=1e-5, rtol=0)
    assert (a - b).abs().max() > 1e-3
    no_eval_perturb.train()
    torch.testing.assert_close(no_eval_perturb(support, query)[0].shape, a.shape)


def test_offset_scale_bounds_offsets():
    torch.manual_seed(0)
    model = TA2N(T=8, dim=(C, C), offset_scale=0.1)
    with torch.no_grad():
        model.acm.offset_net.fc2.bias.fill_(50.0)  # tanh saturates at 1
    _, offsets = model(*episode(2, 1, 2, C, dtype=torch.float32))
    torch.testing.assert_close(offsets, torch.full_like(offsets, 0.1))


def test_non_square_maps_fast_equals_reference():
    outs = []
    support, query = episode(3, 1, 2, C, h=5, w=6)
    for impl in ("fast", "reference"):
        torch.manual_seed(0)
        model = TA2N(T=8, shot=1, dim=(C, C), impl=impl).double().train()
        randomise_final_layers(model)
        s = support.clone().requires_grad_()
        pairs, offsets = model(s, query)
        (pairs.square().sum() + offsets.sum()).backward()
        outs.append((pairs, offsets, s.grad))
    assert outs[0][0].shape == (3, 2, 2 * C, 8, 1, 1)
    for a, b in zip(outs[0], outs[1]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
