"""Tests of book/metric_learning/circle.md: circle_loss against pytorch-metric-learning and NumPy."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from pytorch_metric_learning.losses import CircleLoss

import lossbook
from lossbook import circle_loss

SETTINGS = [(0.25, 256.0), (0.4, 80.0), (0.1, 16.0), (0.0, 1.0)]


def random_batch(n=16, dim=8, classes=5, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=generator, dtype=dtype), torch.randint(0, classes, (n,), generator=generator)


def circle_numpy(embeddings, labels, m, gamma):
    """Equation (2) of the chapter per anchor in float64 NumPy, one anchor at a time;
    ``nan`` marks anchors without a positive or a negative."""
    h = np.asarray(embeddings, np.float64)
    h = h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-8)
    s = h @ h.T
    labels = np.asarray(labels)
    out = np.full(len(labels), np.nan)
    for i in range(len(labels)):
        others = np.arange(len(labels)) != i
        s_p, s_n = s[i][others & (labels == labels[i])], s[i][labels != labels[i]]
        if len(s_p) == 0 or len(s_n) == 0:
            continue
        a_p, a_n = np.maximum(1 + m - s_p, 0), np.maximum(s_n + m, 0)
        x_n, x_p = gamma * a_n * (s_n - m), -gamma * a_p * (s_p - 1 + m)
        z = np.logaddexp.reduce(x_n) + np.logaddexp.reduce(x_p)
        out[i] = np.logaddexp(0.0, z)
    return out


@pytest.mark.parametrize("m, gamma", SETTINGS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_pytorch_metric_learning(m, gamma, seed):
    x, y = random_batch(seed=seed, classes=3 + seed * 3)
    ours_input, theirs_input = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = circle_loss(ours_input, y, m=m, gamma=gamma)
    theirs = CircleLoss(m=m, gamma=gamma)(theirs_input, y)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(ours_input.grad, theirs_input.grad, rtol=1e-8, atol=1e-12)


def test_module_equals_pytorch_metric_learning_defaults():
    x, y = random_batch(seed=5)
    torch.testing.assert_close(lossbook.nn.CircleLoss(m=0.4, gamma=80.0)(x, y), CircleLoss()(x, y))
    assert repr(lossbook.nn.CircleLoss()) == "CircleLoss(m=0.25, gamma=256.0, reduction='mean')"


@pytest.mark.parametrize("m, gamma", SETTINGS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_numpy_oracle_every_reduction(m, gamma, reduction):
    x, y = random_batch(n=13, classes=6, seed=3)
    y[-1] = 99  # a class of one: no positive
    expected = circle_numpy(x, y, m, gamma)
    valid = ~np.isnan(expected)
    per_anchor = np.where(valid, expected, 0.0)
    result = circle_loss(x, y, m=m, gamma=gamma, reduction=reduction)
    want = {"none": per_anchor, "sum": per_anchor.sum(), "mean": per_anchor.sum() / valid.sum()}[reduction]
    np.testing.assert_allclose(result.numpy(), want, rtol=1e-10, atol=1e-12)
    assert not valid[-1]


def test_hand_derived_gradient_on_similarities():
    """Equation (6): dL/ds_n = sigma(Z) pi_n gamma alpha_n, dL/ds_p = -sigma(Z) pi_p gamma alpha_p."""
    m, gamma = 0.25, 32.0
    generator = torch.Generator().manual_seed(0)
    s_p = (0.2 + 0.7 * torch.rand(3, generator=generator, dtype=torch.float64)).requires_grad_()
    s_n = (-0.3 + 0.9 * torch.rand(5, generator=generator, dtype=torch.float64)).requires_grad_()
    a_p, a_n = (1 + m - s_p).clamp_min(0).detach(), (s_n + m).clamp_min(0).detach()
    x_p, x_n = -gamma * a_p * (s_p - 1 + m), gamma * a_n * (s_n - m)
    z = torch.logsumexp(x_p, 0) + torch.logsumexp(x_n, 0)
    g_p, g_n = torch.autograd.grad(torch.nn.functional.softplus(z), (s_p, s_n))
    sigma = torch.sigmoid(z.detach())
    torch.testing.assert_close(g_n, sigma * torch.softmax(x_n.detach(), 0) * gamma * a_n)
    torch.testing.assert_close(g_p, -sigma * torch.softmax(x_p.detach(), 0) * gamma * a_p)


def test_gradient_through_embeddings_matches_chain_rule():
    """The embedding gradient is the similarity gradient (6) pushed through s = h_hat h_hat^T."""
    x, y = random_batch(n=8, classes=3, seed=4)
    x.requires_grad_()
    circle_loss(x, y, m=0.3, gamma=20.0, reduction="sum").backward()
    unit = torch.nn.functional.normalize(x.detach(), dim=1).requires_grad_()
    s = unit @ unit.T
    m, gamma = 0.3, 20.0
    positive = (y[:, None] == y[None, :]) & ~torch.eye(8, dtype=torch.bool)
    negative = y[:, None] != y[None, :]
    x_p = torch.where(positive, -gamma * (1 + m - s.detach()).clamp_min(0) * (s - 1 + m), -1e300)
    x_n = torch.where(negative, gamma * (s.detach() + m).clamp_min(0) * (s - m), -1e300)
    loss = torch.nn.functional.softplus(torch.logsumexp(x_p, 1) + torch.logsumexp(x_n, 1)).sum()
    (grad_unit,) = torch.autograd.grad(loss, unit)
    norm = x.detach().norm(dim=1, keepdim=True)
    expected = (grad_unit - (grad_unit * unit.detach()).sum(1, keepdim=True) * unit.detach()) / norm
    torch.testing.assert_close(x.grad, expected)


def test_decision_boundary_is_the_circle():
    for m in [0.1, 0.25, 0.4]:
        for angle in np.linspace(0.1, 3.0, 7):
            s_n, s_p = math.sqrt(2) * m * math.sin(angle), 1 - math.sqrt(2) * m * math.cos(angle)
            exponent = (s_n + m) * (s_n - m) - (1 + m - s_p) * (s_p - 1 + m)
            assert abs(exponent) < 1e-12


def test_no_valid_anchor_gives_a_connected_zero():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    for labels in (torch.tensor([0, 1, 2, 3]), torch.tensor([1, 1, 1, 1])):
        loss = circle_loss(x, labels)
        assert loss.item() == 0.0 and loss.requires_grad
        loss.backward()
        assert torch.equal(x.grad, torch.zeros_like(x))
        x.grad = None
    torch.testing.assert_close(circle_loss(x, torch.tensor([0, 1, 2, 3]), reduction="none"), torch.zeros(4, dtype=torch.float64))


@given(st.integers(0, 2**31 - 1), st.floats(0.05, 4.0), st.floats(0.0, 0.5), st.floats(1.0, 256.0))
def test_properties(seed, scale, m, gamma):
    """Non-negative; invariant to the scale of each embedding and to a rotation; equivariant
    to a permutation of the batch; relabelling classes changes nothing."""
    x, y = random_batch(n=10, dim=4, classes=3, seed=seed)
    per_anchor = circle_loss(x, y, m=m, gamma=gamma, reduction="none")
    assert (per_anchor >= 0).all()
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    scales = scale * (1 + torch.arange(10, dtype=torch.float64))[:, None]
    torch.testing.assert_close(circle_loss(scales * x @ rotation, y, m=m, gamma=gamma, reduction="none"), per_anchor,
                               rtol=1e-7, atol=1e-9)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(circle_loss(x[order], y[order], m=m, gamma=gamma, reduction="none"), per_anchor[order])
    torch.testing.assert_close(circle_loss(x, 7 - 2 * y, m=m, gamma=gamma, reduction="none"), per_anchor)


def test_perfect_embedding_has_small_loss_and_is_log2_at_m_zero():
    """Orthogonal class directions with identical members sit at s_p = 1, s_n = 0: inside
    the circle for m > 0 (loss -> 0 with gamma), exactly on it for m = 0 (every exponent 0: log(1 + 1 positive x 4 negatives))."""
    x = torch.eye(3, dtype=torch.float64).repeat_interleave(2, dim=0)
    y = torch.arange(3).repeat_interleave(2)
    assert circle_loss(x, y, m=0.25, gamma=256.0).item() < 1e-6
    torch.testing.assert_close(circle_loss(x, y, m=0.0, gamma=256.0), torch.tensor(math.log(1 + 4), dtype=torch.float64))


@pytest.mark.parametrize("label_dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64])
def test_labels_of_any_integer_dtype(label_dtype):
    x, y = random_batch(classes=4, seed=7)
    torch.testing.assert_close(circle_loss(x, y.to(label_dtype)), circle_loss(x, y))


def test_refusals():
    x, y = random_batch()
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        circle_loss(x, y.double())
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\) = \(16,\)"):
        circle_loss(x, y[:-1])
    with pytest.raises(ValueError, match=r"embeddings must have shape \(N, D\)"):
        circle_loss(x[None], y)
    with pytest.raises(ValueError, match="m must be a non-negative number"):
        lossbook.nn.CircleLoss(m=-1.0)
    with pytest.raises(ValueError, match="gamma must be a positive number"):
        lossbook.nn.CircleLoss(gamma=-80.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_and_autocast_stay_finite(dtype, device):
    """PML issue 121: no infinite fill. Extreme embeddings, classes without positives, gamma = 256."""
    x, y = random_batch(n=32, dim=16, classes=20, seed=9, dtype=torch.float32)
    x = (1e3 * x).to(device, dtype).requires_grad_()
    y = y.to(device)
    loss = circle_loss(x, y)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(x.grad).all()
    with torch.autocast(device_type=device.type, dtype=dtype):
        inside = circle_loss(x.detach().float(), y)
    assert inside.dtype == torch.float32 and torch.isfinite(inside)
    reference = circle_loss(x.detach().float(), y)
    torch.testing.assert_close(inside, reference, rtol=2e-2, atol=1e-2)


def test_device_parity(device):
    x, y = random_batch(seed=11)
    torch.testing.assert_close(circle_loss(x.to(device), y.to(device), reduction="none").cpu(), circle_loss(x, y, reduction="none"))


def test_gradient_is_the_numerical_gradient_with_frozen_weights():
    """With the weights alpha computed once from x0 and held fixed, the loss is an ordinary
    smooth function; its numerical gradient at x0 (gradcheck) is circle_loss's gradient."""
    x0, y = random_batch(n=7, dim=3, classes=3, seed=12)
    m, gamma = 0.3, 10.0
    unit0 = torch.nn.functional.normalize(x0, dim=1)
    s0 = unit0 @ unit0.T
    a_p, a_n = (1 + m - s0).clamp_min(0), (s0 + m).clamp_min(0)
    positive = (y[:, None] == y[None, :]) & ~torch.eye(7, dtype=torch.bool)
    negative = y[:, None] != y[None, :]
    valid = positive.any(1) & negative.any(1)

    def frozen(x):
        unit = torch.nn.functional.normalize(x, dim=1)
        s = unit @ unit.T
        z = (torch.logsumexp(torch.where(positive, -gamma * a_p * (s - 1 + m), -1e300), 1)
             + torch.logsumexp(torch.where(negative, gamma * a_n * (s - m), -1e300), 1))
        return torch.where(valid, torch.nn.functional.softplus(torch.where(valid, z, 0.0)), 0.0).sum()

    x = x0.clone().requires_grad_()
    assert torch.autograd.gradcheck(frozen, (x,))
    (expected,) = torch.autograd.grad(frozen(x), x)
    (ours,) = torch.autograd.grad(circle_loss(x, y, m=m, gamma=gamma, reduction="sum"), x)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(circle_loss(x0, y, m=m, gamma=gamma, reduction="sum"), frozen(x0))
