"""On a CUDA GPU, one training episode (forward + backward) of OTAM, TA2N (fast and reference paths) and TATs gives
the logits, loss and gradients of the same model on the CPU. TF32 is switched off so that fp32 means fp32."""

import copy

import pytest
import torch

from tests.models.stand_ins import StandInBackbone
from tests.models.stand_ins import random_batch as ta2n_batch
from tests.models.tats.test_classifier import make_batch as tats_batch
from tests.models.tats.test_classifier import make_model as tats_model
from tests.models.test_protonet import clips, tiny_backbone

pytestmark = pytest.mark.cuda


@pytest.fixture(autouse=True)
def full_fp32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def train_episode(model, support, query, device):
    model = model.to(device).train()
    support, query = support.to(device), query.to(device)
    s, q = model.encode(support), model.encode(query)
    logits = model.episode_logits(s, support.labels, q)
    loss = model.loss(logits, query.labels, support=s, query=q, support_batch=support, query_batch=query)
    loss.backward()
    assert logits.device.type == torch.device(device).type
    grads = {n: p.grad.detach().cpu() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach().cpu(), loss.detach().cpu(), grads


def assert_cuda_matches_cpu(model, support, query):
    on_cpu = train_episode(copy.deepcopy(model), support, query, "cpu")
    on_gpu = train_episode(copy.deepcopy(model), support, query, "cuda")
    torch.testing.assert_close(on_gpu[0], on_cpu[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(on_gpu[1], on_cpu[1], rtol=1e-4, atol=1e-4)
    assert on_cpu[2] and on_gpu[2].keys() == on_cpu[2].keys()
    for name, grad in on_cpu[2].items():
        torch.testing.assert_close(
            on_gpu[2][name], grad, rtol=2e-3, atol=2e-4, msg=lambda m, n=name: f"{n}: {m}"
        )
    assert any(g.abs().sum() > 0 for g in on_cpu[2].values())


def test_otam():
    from fsar.models.otam import OTAM

    support = clips(3, frames=5, seed=0, labels=[0, 1, 2])
    query = clips(4, frames=5, seed=1, labels=[2, 0, 1, 1])
    assert_cuda_matches_cpu(OTAM(tiny_backbone(), gamma=0.1), support, query)


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("shot", [1, 2])
def test_ta2n(impl, shot):
    from fsar.models.ta2n import TA2NClassifier

    torch.manual_seed(0)
    model = TA2NClassifier(StandInBackbone(32), num_frames=8, way=3, dropout=0.0, impl=impl)
    with torch.no_grad():  # non-zero warps and offsets (their last layers start at zero)
        gen = torch.Generator().manual_seed(1)
        for layer in (model.ta2n.ttm.fc2, model.ta2n.acm.offset_net.fc2):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * 0.5)
    support = ta2n_batch([c for c in range(3) for _ in range(shot)], seed=1)
    query = ta2n_batch([2, 0, 1, 1, 0, 2], seed=2)
    assert_cuda_matches_cpu(model, support, query)


def test_tats():
    support = tats_batch([0, 1, 2], [3, 0, 6], seed=1)
    query = tats_batch([2, 0, 1, 1], [6, 3, 0, 0], seed=2)
    assert_cuda_matches_cpu(tats_model(), support, query)
