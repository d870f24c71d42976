"""The Jittor backend's own fast paths against PyTorch: bilinear resizing as matrix products,
training-mode BatchNorm and Adam as OpenMP kernels (plugins/jmedbench_jittor/kernels.py).
Each must compute what its torch counterpart computes, forward and backward; their speed is
measured by benchmarks/bench_jittor.py, not here."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import jittor_module, needs_jittor

pytestmark = needs_jittor



def test_bilinear_matrix_known_answers():
    from jmedbench_jittor.layers import bilinear_matrix

    # doubling: each output is 3/4 of its nearest input and 1/4 of the next, edges clamped
    assert np.allclose(bilinear_matrix(2, 4) @ np.array([0.0, 1.0]), [0.0, 0.25, 0.75, 1.0])
    assert np.array_equal(bilinear_matrix(3, 3), np.eye(3, dtype=np.float32))
    halving = bilinear_matrix(4, 2)  # source coordinates 0.5 and 2.5: means of neighbours
    assert np.allclose(halving @ np.array([0.0, 2.0, 4.0, 6.0]), [1.0, 5.0])
    assert np.allclose(bilinear_matrix(5, 13).sum(axis=1), 1.0)  # weights of a row sum to 1


@pytest.mark.parametrize("shape,size", [((2, 3, 8, 8), (16, 16)), ((1, 2, 5, 7), (11, 3)),
                                        ((1, 1, 3, 3), (1, 1)), ((2, 2, 6, 6), (6, 6)),
                                        ((1, 4, 4, 9), (4, 18))])
def test_resize_bilinear_matches_torch_forward_and_backward(shape, size):
    import torch
    import torch.nn.functional as F

    jt = jittor_module()
    from jmedbench_jittor.layers import resize_bilinear

    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype(np.float32)
    upstream = rng.normal(size=shape[:2] + size).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_(True)
    expected = F.interpolate(tx, size=size, mode="bilinear", align_corners=False)
    (expected * torch.from_numpy(upstream)).sum().backward()

    jx = jt.array(x)
    got = resize_bilinear(jx, size)
    grad = jt.grad((got * jt.array(upstream)).sum(), jx)
    assert tuple(got.shape) == shape[:2] + size
    assert np.abs(got.numpy() - expected.detach().numpy()).max() < 1e-5
    assert np.abs(grad.numpy() - tx.grad.numpy()).max() < 1e-5


@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_batch_norm_trains_as_torch_does(eps):
    """Two training steps' outputs, gradients (input, weight, bias) and running statistics
    (torch keeps the unbiased variance), then eval mode on those statistics."""
    import torch

    jt = jittor_module()
    from jmedbench_jittor.layers import BatchNorm2d

    rng = np.random.default_rng(1)
    torch_bn = torch.nn.BatchNorm2d(6, eps=eps)
    with torch.no_grad():
        torch_bn.weight.uniform_(0.5, 1.5)
        torch_bn.bias.uniform_(-0.5, 0.5)
    jittor_bn = BatchNorm2d(6, eps=eps)
    jittor_bn.weight.assign(jt.array(torch_bn.weight.detach().numpy()))
    jittor_bn.bias.assign(jt.array(torch_bn.bias.detach().numpy()))
    torch_bn.train()
    jittor_bn.train()
    for step in range(2):
        x = rng.normal(3.0 * step, 2.0, (3, 6, 9, 7)).astype(np.float32)  # shifted mean
        upstream = rng.normal(size=x.shape).astype(np.float32)
        tx = torch.from_numpy(x).requires_grad_(True)
        torch_bn.zero_grad()
        expected = torch_bn(tx)
        (expected * torch.from_numpy(upstream)).sum().backward()
        jx = jt.array(x)
        got = jittor_bn(jx)
        grads = jt.grad((got * jt.array(upstream)).sum(), [jx, jittor_bn.weight, jittor_bn.bias])
        pairs = [(got, expected), (grads[0], tx.grad), (grads[1], torch_bn.weight.grad),
                 (grads[2], torch_bn.bias.grad), (jittor_bn.running_mean, torch_bn.running_mean),
                 (jittor_bn.running_var, torch_bn.running_var)]
        for index, (mine, theirs) in enumerate(pairs):
            theirs = theirs.detach().numpy()
            scale = max(1.0, float(np.abs(theirs).max()))
            assert np.abs(mine.numpy() - theirs).max() < 1e-5 * scale, (step, index)

    x = rng.normal(size=(2, 6, 4, 4)).astype(np.float32)
    torch_bn.eval()
    jittor_bn.eval()
    with torch.no_grad():
        expected = torch_bn(torch.from_numpy(x)).numpy()
    assert np.abs(jittor_bn(jt.array(x)).numpy() - expected).max() < 1e-5


def test_adam_follows_torch_adam_with_weight_decay():
    import torch

    jt = jittor_module()
    from jmedbench_jittor.kernels import Adam

    rng = np.random.default_rng(2)
    start = [rng.normal(size=(70_000,)).astype(np.float32),  # above the threading threshold
             rng.normal(size=(3, 4)).astype(np.float32)]
    torch_params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in start]
    jittor_params = [jt.array(p.copy()) for p in start]
    torch_opt = torch.optim.Adam(torch_params, lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-2)
    jittor_opt = Adam(jittor_params, lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-2)
    for _ in range(6):
        grads = [rng.normal(size=p.shape).astype(np.float32) for p in start]
        for param, grad in zip(torch_params, grads):
            param.grad = torch.from_numpy(grad)
        torch_opt.step()
        jittor_opt.apply([jt.array(g) for g in grads])
    for mine, theirs in zip(jittor_params, torch_params):
        assert np.abs(mine.numpy() - theirs.detach().numpy()).max() < 1e-5
    assert np.abs(jittor_params[0].numpy() - start[0]).max() > 0.03  # it really moved


def test_adam_step_from_a_loss_decreases_it():
    jt = jittor_module()
    from jmedbench_jittor.kernels import Adam

    weight = jt.array(np.array([3.0, -2.0], np.float32))
    optimiser = Adam([weight], lr=0.1)
    losses = []
    for _ in range(20):
        loss = (weight * weight).sum()
        losses.append(loss.item())
        optimiser.step(loss)
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="no parameters"):
        Adam([], lr=0.1)


def test_adam_steps_keep_no_graph_alive():
    """Each step's new weights must not hold on to the graph that computed them: the number of
    live Jittor variables stays flat over steps (it grew by the graph's size per step when the
    update ran with gradients on, until a bench ran out of memory)."""
    jt = jittor_module()
    from jittor import nn

    from jmedbench_jittor.kernels import Adam

    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    optimiser = Adam(model.parameters(), lr=0.01)
    x = jt.array(np.ones((4, 8), np.float32))
    live = []
    for _ in range(6):
        optimiser.step((model(x) ** 2).mean())
        jt.sync_all()
        live.append(jt.number_of_lived_vars())
    assert live[-1] == live[2], live
