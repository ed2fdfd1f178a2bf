"""On a CUDA GPU, a STRM episode (forward + backward, dropout off so that both devices compute the same function)
gives the CPU's logits, loss and gradients. TF32 is switched off so that fp32 means fp32."""

import copy

import pytest
import torch

from fsar.models.strm import STRMClassifier
from tests.models.stand_ins import StandInBackbone, random_batch

pytestmark = pytest.mark.cuda


def episode(model, support, query, device):
    model = model.to(device).eval()  # eval: no dropout draws, which differ between devices
    support, query = support.to(device), query.to(device)
    s, q = model.encode(support), model.encode(query)
    logits = model.episode_logits(s, support.labels, q)
    loss = model.loss(logits, query.labels)
    loss.backward()
    assert logits.device.type == torch.device(device).type
    grads = {n: p.grad.detach().cpu() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach().cpu(), loss.detach().cpu(), grads


@pytest.mark.parametrize("train_clsw", [False, True])
def test_strm_on_cuda_matches_cpu(train_clsw):
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        torch.manual_seed(0)
        model = STRMClassifier(StandInBackbone(16), out_dim=24, cardinalities=(2, 3), train_clsw=train_clsw)
        with torch.no_grad():
            model.head.patch_attention.gamma.fill_(0.5)
        support, query = random_batch([2, 0, 1, 1, 0, 2], seed=2), random_batch([1, 2, 0, 0], seed=3)
        on_cpu = episode(copy.deepcopy(model), support, query, "cpu")
        on_gpu = episode(copy.deepcopy(model), support, query, "cuda")
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    torch.testing.assert_close(on_gpu[0], on_cpu[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(on_gpu[1], on_cpu[1], rtol=1e-4, atol=1e-4)
    assert (
        on_gpu[2].keys() == on_cpu[2].keys() and ("head.similarity.0.clsW.weight" in on_cpu[2]) == train_clsw
    )
    for name, grad in on_cpu[2].items():
        torch.testing.assert_close(
            on_gpu[2][name], grad, rtol=2e-3, atol=2e-4, msg=lambda m, n=name: f"{n}: {m}"
        )
