"""The closed-form backward of book/conventions/backward.md, and the memory gates of the
elementwise losses: bytes saved for backward and full-size tensors allocated, against the
native fused kernel of the same (or the nearest) loss, measured on the same tensors.

Timing is never asserted (benchmarks/ measures it); these counts are deterministic.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision

import lossbook
from lossbook.conventions.anatomy import reduce_loss
from lossbook.conventions.backward import full_size_allocations, pointwise_loss, saved_tensor_bytes

N = 4096


def _inputs(kind: str, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    input = torch.randn(N, generator=g).to(dtype).requires_grad_()
    if kind == "residual":
        return input, torch.randn(N, generator=g).to(dtype)
    signs = torch.randint(0, 2, (N,), generator=g).to(dtype) * 2 - 1
    return input, signs if kind == "sign" else (signs > 0).to(dtype)


def _sigmoid_focal_peer(input, target):
    return torchvision.ops.sigmoid_focal_loss(input, target, reduction="mean")


# (loss, peer, inputs, how many full-size tensors forward + backward may allocate beyond
# the peer's). The peer is the same loss where PyTorch has its kernel, else the nearest
# native one-kernel loss. The allocation budgets are today's counts: a regression gate
# (eager PyTorch allocates one temporary per operation of a formula; only a fused
# kernel removes them).
GATES = [
    (lossbook.mse_loss, F.mse_loss, "residual", 0),
    (lossbook.l1_loss, F.l1_loss, "residual", 0),
    (lossbook.smooth_l1_loss, F.smooth_l1_loss, "residual", 0),
    (lossbook.huber_loss, F.huber_loss, "residual", 0),
    (lossbook.charbonnier_loss, F.mse_loss, "residual", 5),
    (lossbook.log_cosh_loss, F.mse_loss, "residual", 22),
    (lossbook.quantile_loss, F.l1_loss, "residual", 5),
    (lossbook.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, "binary", 0),
    (lossbook.logistic_loss, F.soft_margin_loss, "sign", 8),
    (lossbook.hinge_loss, F.soft_margin_loss, "sign", 8),
    (lossbook.exponential_loss, F.soft_margin_loss, "sign", 8),
    (lossbook.sigmoid_focal_loss, _sigmoid_focal_peer, "binary", 7),
]


@pytest.mark.parametrize("loss, peer, kind, extra", GATES, ids=[gate[0].__name__ for gate in GATES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_saved_bytes_no_more_than_native(loss, peer, kind, extra, dtype):
    input, target = _inputs(kind, dtype)
    ours, native = saved_tensor_bytes(loss, input, target), saved_tensor_bytes(peer, input, target)
    if dtype == torch.bfloat16 and native:  # PyTorch's half kernels save float32 copies: hold ours to float32's
        native = saved_tensor_bytes(peer, *(t.float().requires_grad_(t.requires_grad) for t in (input, target)))
    assert ours <= native, f"{loss.__name__} saves {ours} bytes for backward, the native kernel {native}"


@pytest.mark.parametrize("loss, peer, kind, extra", GATES, ids=[gate[0].__name__ for gate in GATES])
def test_full_size_allocations_within_budget(loss, peer, kind, extra):
    input, target = _inputs(kind)
    ours = sum(full_size_allocations(loss, input, target))
    input.grad = None
    native = sum(full_size_allocations(peer, input, target))
    assert ours <= native + extra, f"{loss.__name__}: {ours} full-size tensors, native {native} + budget {extra}"


@pytest.mark.parametrize("loss, peer, kind, extra", GATES, ids=[gate[0].__name__ for gate in GATES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_blocked_allocations_no_more_than_native(loss, peer, kind, extra, dtype):
    """At sizes where pointwise_loss works in cache-sized blocks (CPU, eager), forward and
    backward each allocate no more full-size tensors than the native kernel: none but the
    gradient, whatever the formula."""
    g = torch.Generator().manual_seed(0)
    input = torch.randn(1 << 18, generator=g).to(dtype).requires_grad_()
    target = torch.randn(1 << 18, generator=g).to(dtype) if kind == "residual" else (torch.rand(1 << 18, generator=g) > 0.5).to(dtype)
    if kind == "sign":
        target = target * 2 - 1
    ours = full_size_allocations(loss, input, target)
    input.grad = None
    native = full_size_allocations(peer, input, target)
    assert ours[0] <= native[0] and ours[1] <= native[1], f"{loss.__name__}: {ours} full-size tensors, native {native}"


# --- pointwise_loss against autograd through the same formula ------------------------------

def _log_cosh(r):
    a = r.abs()
    return a + F.softplus(-2 * a) - math.log(2)


FORMULAS = {
    "log_cosh": (_log_cosh, torch.tanh, True),
    "pinball": (
        lambda r: torch.lerp(torch.relu(r), torch.relu(-r), 0.3),
        lambda r: torch.sign(r) * (0.5 + 0.2 * torch.sign(r)),
        True,
    ),
    "logistic": (lambda f, y: F.softplus(-y * f), lambda f, y: y * (torch.sigmoid(y * f) - 1), False),
}


@pytest.mark.parametrize("name", FORMULAS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_pointwise_equals_autograd_through_the_formula(name, reduction, device):
    value, derivative, residual = FORMULAS[name]
    g = torch.Generator().manual_seed(1)
    a = torch.randn(5, 4, generator=g, dtype=torch.float64).to(device).requires_grad_()
    b = torch.randn(5, 4, generator=g, dtype=torch.float64).to(device)
    if not residual:
        b = b.sign()
    b.requires_grad_(residual)
    ours = pointwise_loss(a, b, value, derivative, residual=residual, reduction=reduction)
    reference = reduce_loss(value(a - b) if residual else value(a, b), reduction)
    torch.testing.assert_close(ours, reference)
    weight = torch.rand(ours.shape, generator=g, dtype=torch.float64).to(device)
    inputs = (a, b) if residual else (a,)
    first = torch.autograd.grad((ours * weight).sum(), inputs, create_graph=True)
    expected = torch.autograd.grad((reference * weight).sum(), inputs, create_graph=True)
    for got, want in zip(first, expected):
        torch.testing.assert_close(got, want)
    second = torch.autograd.grad(first[0].sum(), a, allow_unused=True)[0]
    expected_second = torch.autograd.grad(expected[0].sum(), a, allow_unused=True)[0]
    torch.testing.assert_close(second, expected_second)
    assert torch.autograd.gradcheck(
        lambda x: pointwise_loss(x, b.detach(), value, derivative, residual=residual, reduction=reduction), (a,)
    )
    assert torch.autograd.gradgradcheck(
        lambda x: pointwise_loss(x, b.detach(), value, derivative, residual=residual, reduction=reduction), (a,)
    )


@pytest.mark.parametrize("name", FORMULAS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=["float64", "bfloat16"])
def test_pointwise_blocks_equal_one_pass(name, reduction, dtype):
    """elementwise=True on a large CPU input (blocks of 65,536 elements, the last one
    partial, a non-contiguous input) gives the one-pass values and gradients, for input and
    target, in the dtypes of the one-pass path."""
    value, derivative, residual = FORMULAS[name]
    g = torch.Generator().manual_seed(2)
    a = torch.randn(301, 700, generator=g, dtype=torch.float64).to(dtype).T.requires_grad_()  # 210,700 elements
    b = torch.randn(700, 301, generator=g, dtype=torch.float64).to(dtype)
    b = b.requires_grad_() if residual else b.sign()
    weight = torch.rand(700, 301, generator=g, dtype=torch.float64)
    results = []
    for elementwise in (False, True):
        loss = pointwise_loss(a, b, value, derivative, residual=residual, reduction=reduction, elementwise=elementwise)
        scale = weight.to(loss.dtype) if reduction == "none" else torch.ones((), dtype=loss.dtype)
        inputs = (a, b) if residual else (a,)
        results.append((loss, *torch.autograd.grad(loss, inputs, scale)))
    tolerance = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    for one_pass, blocked in zip(*results):
        assert blocked.dtype == one_pass.dtype and blocked.shape == one_pass.shape
        torch.testing.assert_close(blocked, one_pass, **tolerance)


def test_pointwise_blocks_keep_second_derivatives():
    """A backward under create_graph takes the one-pass formula, so second derivatives of a
    blocked loss are exact."""
    value, derivative, _ = FORMULAS["log_cosh"]
    a = torch.randn(1 << 18, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1 << 18, dtype=torch.float64)
    loss = pointwise_loss(a, b, value, derivative, residual=True, elementwise=True)
    (first,) = torch.autograd.grad(loss, a, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), a)
    torch.testing.assert_close(second, (1 - torch.tanh(a - b) ** 2).detach() / a.numel())


def test_pointwise_broadcast_target_gets_summed_gradient():
    a = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, 1, dtype=torch.float64, requires_grad=True)
    loss = pointwise_loss(a, b, torch.square, lambda r: 2 * r, residual=True)
    loss.backward()
    torch.testing.assert_close(b.grad, (-2 * (a - b) / 18).sum(1, keepdim=True).detach())
    assert b.grad.shape == b.shape


def test_pointwise_target_with_gradient_falls_back_to_autograd():
    f = torch.randn(5, dtype=torch.float64, requires_grad=True)
    y = torch.rand(5, dtype=torch.float64, requires_grad=True)
    loss = pointwise_loss(f, y, lambda f, y: (f * y).exp(), lambda f, y: y * (f * y).exp())
    loss.backward()
    torch.testing.assert_close(y.grad, (f * (f * y).exp() / 5).detach())
    assert loss.grad_fn.name() != "_PointwiseLossBackward"


def test_pointwise_half_precision_saves_the_originals():
    a = torch.randn(64, dtype=torch.float16, requires_grad=True)
    b = torch.randn(64, dtype=torch.float16)
    loss = pointwise_loss(a, b, torch.square, lambda r: 2 * r, residual=True)
    assert loss.dtype == torch.float32
    assert saved_tensor_bytes(lambda x, y: pointwise_loss(x, y, torch.square, lambda r: 2 * r, residual=True), a, b) == 0
    loss.backward()
    assert a.grad.dtype == torch.float16
    torch.testing.assert_close(a.grad.float(), (2 * (a.float() - b.float()) / 64).detach(), rtol=1e-3, atol=1e-4)


def test_pointwise_empty_mean_is_a_connected_zero():
    a = torch.empty(0, requires_grad=True)
    loss = pointwise_loss(a, torch.empty(0), torch.square, lambda r: 2 * r, residual=True)
    assert loss.item() == 0 and loss.requires_grad
    loss.backward()
    assert a.grad.shape == (0,)


def test_pointwise_compiles_with_its_closed_form_backward():
    a = torch.randn(7, requires_grad=True)
    b = torch.randn(7)

    def loss(x, y):
        return pointwise_loss(x, y, _log_cosh, torch.tanh, residual=True)

    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    value = compiled(a, b)
    (grad,) = torch.autograd.grad(value, a)
    torch.testing.assert_close(value, loss(a, b))
    torch.testing.assert_close(grad, torch.tanh(a - b).detach() / 7)


def test_saved_tensor_bytes_and_allocations_count_what_they_say():
    x = torch.randn(1000, requires_grad=True)
    assert saved_tensor_bytes(lambda t: (t * 2).sum(), x) == 0  # mul by a number saves nothing
    assert saved_tensor_bytes(lambda t: t.exp().sum(), x) == 4000  # exp saves its result
    assert full_size_allocations(lambda t: t.exp().sum(), x) == (1, 1)  # exp; backward: grad * exp (the ones are a view)
    x.grad = None
    assert full_size_allocations(lambda t: t.view(10, 100).sum(), x) == (0, 1)  # a view is not an allocation


@pytest.mark.parametrize("log_target", [False, True])
def test_half_precision_kl_div_saves_no_float32_copies(log_target):
    """kl_div of bfloat16 log-probabilities computes in float32 with the closed-form
    derivative -p: nothing beyond its inputs is saved, as F.kl_div on float32 tensors."""
    g = torch.Generator().manual_seed(3)
    input = torch.log_softmax(torch.randn(300, 500, generator=g), 1).bfloat16().requires_grad_()
    target = torch.softmax(torch.randn(300, 500, generator=g), 1)
    target = (target.log() if log_target else target).bfloat16()
    kl = lambda a, b: lossbook.kl_div(a, b, log_target=log_target)
    assert saved_tensor_bytes(kl, input, target) == 0
    reference = F.kl_div(input.float(), target.float(), log_target=log_target, reduction="batchmean")
    torch.testing.assert_close(kl(input, target), reference, rtol=1e-5, atol=1e-7)
