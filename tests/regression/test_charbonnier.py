"""Tests of book/regression/charbonnier.md: charbonnier_loss."""

import inspect
import math
import re

import numpy as np
import pytest
import scipy.special
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import finite_arrays, random_pair

import lossbook.nn
from lossbook import charbonnier_loss, l1_loss

EPS_VALUES = [1e-3, 0.1, 1.0, 3.0]
widths = st.floats(1e-6, 1e3, allow_nan=False, allow_infinity=False)


def numpy_charbonnier(input, target, eps, reduction="mean"):
    """Equation (1) of the chapter, transcribed in float64 NumPy: sqrt(r^2 + eps^2)."""
    r = np.asarray(input, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    loss = np.sqrt(r**2 + eps**2)
    return {"none": loss, "mean": np.mean(loss), "sum": np.sum(loss)}[reduction]


def barron(r, alpha, c):
    """Barron's general robust loss rho(r, alpha, c), for alpha not in {0, 2}."""
    return abs(alpha - 2) / alpha * (((r / c) ** 2 / abs(alpha - 2) + 1) ** (alpha / 2) - 1)


def per_element(arrays, eps):
    input, target = (torch.from_numpy(a) for a in arrays)
    return charbonnier_loss(input, target, eps=eps, reduction="none"), input - target


# --- oracle -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1,), (7,), (4, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("eps", EPS_VALUES)
def test_matches_numpy_oracle(eps, reduction, shape, device):
    input, target = random_pair(shape, device=device, scale=2.0)
    ours = charbonnier_loss(input, target, eps=eps, reduction=reduction)
    expected = numpy_charbonnier(input.cpu().numpy(), target.cpu().numpy(), eps, reduction)
    assert ours.dtype == torch.float64 and ours.device == input.device
    np.testing.assert_allclose(ours.cpu().numpy(), expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("eps", EPS_VALUES)
def test_matches_scipy_pseudo_huber_and_barron(eps):
    """Equation (5): eps + PseudoHuber_eps(r) / eps = eps * (1 + rho(r, 1, eps))."""
    input, target = random_pair((50,), scale=3.0, seed=4)
    ours = charbonnier_loss(input, target, eps=eps, reduction="none").numpy()
    r = (input - target).numpy()
    np.testing.assert_allclose(ours, eps + scipy.special.pseudo_huber(eps, r) / eps, rtol=1e-12)
    np.testing.assert_allclose(ours, eps * (1 + barron(r, 1.0, eps)), rtol=1e-12)


def test_worked_values_and_default_eps():
    assert inspect.signature(charbonnier_loss).parameters["eps"].default == 1e-3
    x = torch.tensor([0.0, 3.0], dtype=torch.float64)
    y = torch.tensor([0.0, -1.0], dtype=torch.float64)
    assert charbonnier_loss(x, y, reduction="none").tolist() == [1e-3, math.hypot(4.0, 1e-3)]
    assert charbonnier_loss(torch.tensor([3.0, 1.0]), torch.tensor([-1.0, 1.0]), eps=3.0).item() == 4.0
    # the minimum is eps, not 0: a batch of perfect predictions has mean loss eps
    perfect = torch.rand(5, 7, dtype=torch.float64)
    assert charbonnier_loss(perfect, perfect).item() == pytest.approx(1e-3, rel=1e-15)
    assert charbonnier_loss(perfect, perfect, eps=0.25, reduction="sum").item() == pytest.approx(35 * 0.25)


def test_survey_snippet_adds_eps_squared():
    """``sqrt(d * d + 1e-6)`` (the circulated snippet) is this loss with eps = 1e-3, not 1e-6."""
    input, target = random_pair((4, 3, 8, 8), seed=7)
    d = input - target
    torch.testing.assert_close(torch.sqrt(d * d + 1e-6).mean(), charbonnier_loss(input, target, eps=1e-3))
    torch.testing.assert_close(
        torch.sqrt(d * d + 1e-3).mean(), charbonnier_loss(input, target, eps=math.sqrt(1e-3))
    )


# --- gradients --------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [1e-3, 0.5])
def test_hand_derived_gradient(eps, device):
    """Equation (4): d loss / d input = r / sqrt(r^2 + eps^2), divided by N for the mean."""
    input, target = random_pair((5, 3), seed=2, device=device)
    input[0] = target[0]  # perfect predictions: the gradient there is 0, not NaN
    input.requires_grad_()
    residual = (input - target).detach()
    by_hand = residual / torch.sqrt(residual**2 + eps**2)
    (mean_grad,) = torch.autograd.grad(charbonnier_loss(input, target, eps=eps), input)
    torch.testing.assert_close(mean_grad, by_hand / residual.numel(), rtol=1e-13, atol=1e-16)
    (sum_grad,) = torch.autograd.grad(charbonnier_loss(input, target, eps=eps, reduction="sum"), input)
    torch.testing.assert_close(sum_grad, by_hand, rtol=1e-13, atol=1e-16)
    assert torch.equal(sum_grad[0], torch.zeros_like(sum_grad[0]))
    (target_grad,) = torch.autograd.grad(
        charbonnier_loss(input.detach(), target.requires_grad_(), eps=eps, reduction="sum"), target
    )
    torch.testing.assert_close(target_grad, -by_hand, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("eps", [1e-3, 0.1, 2.0])
def test_smooth_at_zero_with_curvature_one_over_eps(eps):
    """At r = 0 the gradient is 0 and the second derivative is 1/eps (equation (4))."""
    r = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(
        charbonnier_loss(r, torch.zeros(3, dtype=torch.float64), eps=eps, reduction="sum"), r,
        create_graph=True,
    )
    assert torch.equal(gradient.detach(), torch.zeros(3, dtype=torch.float64))
    (curvature,) = torch.autograd.grad(gradient.sum(), r)
    torch.testing.assert_close(curvature, torch.full((3,), 1 / eps, dtype=torch.float64))
    # continuity: the gradient just off zero is tiny, unlike the jump of sign(r)
    tiny = torch.tensor([-1e-12, 1e-12], dtype=torch.float64, requires_grad=True)
    (near,) = torch.autograd.grad(
        charbonnier_loss(tiny, torch.zeros(2, dtype=torch.float64), eps=eps, reduction="sum"), tiny
    )
    assert near.abs().max().item() <= 1e-12 / eps * (1 + 1e-9)


# --- properties and limits (hypothesis) -------------------------------------------------


@given(finite_arrays(), widths)
def test_properties(arrays, eps):
    loss, _ = per_element(arrays, eps)
    input, target = (torch.from_numpy(a) for a in arrays)
    assert (loss >= eps).all()  # non-negative, and at least eps
    assert torch.equal(loss, charbonnier_loss(target, input, eps=eps, reduction="none"))  # symmetric
    assert charbonnier_loss(input, input, eps=eps).item() == pytest.approx(eps, rel=1e-15)  # min at r = 0
    torch.testing.assert_close(  # translation invariance: only the residual matters
        charbonnier_loss(input + 3.0, target + 3.0, eps=eps), charbonnier_loss(input, target, eps=eps),
        rtol=1e-9, atol=1e-9,
    )


@given(finite_arrays(), widths)
def test_within_eps_of_l1(arrays, eps):
    """Equation (2): 0 <= charbonnier - |r| <= eps for every residual, so eps -> 0 gives L1."""
    loss, r = per_element(arrays, eps)
    gap = loss - r.abs()
    assert (gap >= 0).all()
    assert (gap <= eps + 4e-16 * (r.abs() + eps)).all()
    input, target = (torch.from_numpy(a) for a in arrays)
    mean_gap = charbonnier_loss(input, target, eps=eps) - l1_loss(input, target)
    assert -1e-12 * (1 + r.abs().max()) <= mean_gap.item() <= eps * (1 + 1e-12) + 1e-12 * r.abs().max()


@given(finite_arrays(bound=10.0))
def test_tends_to_l1_as_eps_shrinks(arrays):
    input, target = (torch.from_numpy(a) for a in arrays)
    l1 = l1_loss(input, target).item()
    for eps in [1e-1, 1e-3, 1e-6, 1e-9]:
        assert abs(charbonnier_loss(input, target, eps=eps).item() - l1) <= eps * (1 + 1e-12) + 1e-14


@given(
    st.floats(-0.5, 0.5, allow_nan=False),
    st.floats(1e-4, 1e3, allow_nan=False),
)
def test_quadratic_near_zero(t, eps):
    """Equation (3): for |r| <= eps / 2, eps + r^2/(2 eps) - r^4/(8 eps^3) <= loss <= eps + r^2/(2 eps)."""
    r = torch.tensor([t * eps], dtype=torch.float64)
    loss = charbonnier_loss(r, torch.zeros(1, dtype=torch.float64), eps=eps).item()
    r = r.item()
    parabola = eps + r**2 / (2 * eps)
    tolerance = 4e-16 * eps
    assert loss <= parabola + tolerance
    assert loss >= parabola - r**4 / (8 * eps**3) - tolerance


@given(finite_arrays(), widths)
def test_pseudo_huber_and_barron_relation(arrays, eps):
    """Equation (5): eps * (loss - eps) is the pseudo-Huber loss with delta = eps."""
    loss, r = per_element(arrays, eps)
    loss, r = loss.numpy(), r.numpy()
    scale = eps * (eps + np.abs(r))  # loss - eps cancels digits: compare to the size of the terms
    assert np.all(np.abs(eps * (loss - eps) - scipy.special.pseudo_huber(eps, r)) <= 1e-14 * scale)
    np.testing.assert_allclose(loss, eps * (1 + barron(r, 1.0, eps)), rtol=1e-12)


@given(finite_arrays(), widths, st.floats(1e-3, 1e3, allow_nan=False))
def test_homogeneous(arrays, eps, c):
    """loss(c r; c eps) = c loss(r; eps): eps has the units of the residual."""
    r = torch.from_numpy(arrays[0] - arrays[1])  # scale the residual itself, not two close numbers
    zero = torch.zeros_like(r)
    torch.testing.assert_close(
        charbonnier_loss(c * r, zero, eps=c * eps, reduction="none"),
        c * charbonnier_loss(r, zero, eps=eps, reduction="none"),
        rtol=1e-12, atol=0,
    )


@given(finite_arrays(), widths)
def test_gradient_bounded_by_one_and_convex(arrays, eps):
    input, target = (torch.from_numpy(a) for a in arrays)
    input.requires_grad_()
    (gradient,) = torch.autograd.grad(charbonnier_loss(input, target, eps=eps, reduction="sum"), input)
    assert torch.isfinite(gradient).all() and (gradient.abs() <= 1).all()
    r = (input - target).detach().flatten()
    s = r.flip(0)
    zero = torch.zeros_like(r)
    midpoint = charbonnier_loss((r + s) / 2, zero, eps=eps, reduction="none")
    chord = (charbonnier_loss(r, zero, eps=eps, reduction="none") + charbonnier_loss(s, zero, eps=eps, reduction="none")) / 2
    assert (midpoint <= chord * (1 + 1e-14)).all()


# --- numerics: the hypot form -----------------------------------------------------------


def test_tiny_eps_keeps_a_finite_gradient_in_float32():
    """eps ** 2 underflows in float32 for eps = 1e-30; hypot never squares it."""
    prediction = torch.tensor([0.5, 0.0, -1.0], requires_grad=True)
    target = torch.zeros(3)
    loss = charbonnier_loss(prediction, target, eps=1e-30, reduction="none")
    assert loss[1].item() == pytest.approx(1e-30, rel=1e-6)
    loss.sum().backward()
    assert prediction.grad.tolist() == [1.0, 0.0, -1.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_infinite_residuals_have_the_gradient_of_l1(dtype, reduction, device):
    """At r = +-inf the loss is inf and its gradient sign(r) (+-1/n for the mean), as for L1
    and Huber, not hypot's inf / inf = NaN; the other elements keep r / sqrt(r^2 + eps^2)."""
    huge = torch.finfo(dtype).max
    input = torch.tensor([math.inf, -math.inf, huge, 0.5, 0.0, math.nan], dtype=dtype, device=device)
    target = torch.tensor([0.0, 1.0, -huge, 0.0, 0.0, 0.0], dtype=dtype, device=device)
    input.requires_grad_()
    target.requires_grad_()
    loss = charbonnier_loss(input, target, eps=0.5, reduction="none")
    # huge - (-huge) overflows in the compute dtype (float32 for half inputs) unless float16's
    overflow = 2 * huge if dtype == torch.float16 else math.inf
    assert loss[:3].tolist() == [math.inf, math.inf, overflow] and math.isnan(loss[5].item())
    total = charbonnier_loss(input[:5], target[:5], eps=0.5, reduction=reduction)
    assert total.item() == math.inf
    input_grad, target_grad = torch.autograd.grad(total, (input, target))
    scale = 1 / 5 if reduction == "mean" else 1.0
    expected = [scale, -scale, scale, scale * 0.5 / math.hypot(0.5, 0.5), 0.0, 0.0]
    torch.testing.assert_close(input_grad.float().cpu(), torch.tensor(expected), rtol=torch.finfo(dtype).eps, atol=0)
    torch.testing.assert_close(target_grad, -input_grad)
    (nan_grad,) = torch.autograd.grad(charbonnier_loss(input, target.detach(), eps=0.5, reduction="sum"), input)
    assert torch.isfinite(nan_grad[:5]).all() and torch.isnan(nan_grad[5])  # a NaN residual stays NaN


def test_infinite_residuals_keep_the_curvature_elsewhere():
    """Second derivatives through the guard of infinite residuals: eps^2 / (r^2 + eps^2)^(3/2)."""
    r = torch.tensor([0.0, 0.3, -2.0, math.inf], dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(
        charbonnier_loss(r, torch.zeros_like(r), eps=0.5, reduction="sum"), r, create_graph=True
    )
    (curvature,) = torch.autograd.grad(gradient.sum(), r)
    finite = r.detach()[:3]
    torch.testing.assert_close(curvature[:3], 0.25 / (finite**2 + 0.25) ** 1.5, rtol=1e-14, atol=0)
    assert curvature[3].item() == 0.0


@pytest.mark.parametrize(("dtype", "huge"), [(torch.float32, 3e19), (torch.float64, 1e200)])
def test_huge_residuals_do_not_overflow(dtype, huge, device):
    input = torch.tensor([huge, -huge], dtype=dtype, device=device, requires_grad=True)
    loss = charbonnier_loss(input, torch.zeros(2, dtype=dtype, device=device), reduction="sum")
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(2 * huge, rel=1e-6)
    loss.backward()
    torch.testing.assert_close(input.grad.cpu(), torch.tensor([1.0, -1.0], dtype=dtype))


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0, 0.0, -1e-3, -1.0, math.nan, math.inf])
def test_refuses_eps_that_is_not_positive(eps):
    with pytest.raises(ValueError, match=re.escape(f"eps must be a positive number, got {eps}")):
        charbonnier_loss(torch.zeros(3), torch.ones(3), eps=eps)
    with pytest.raises(ValueError, match=re.escape(f"eps must be a positive number, got {eps}")):
        lossbook.nn.CharbonnierLoss(eps=eps)  # at construction, with the function's message


@pytest.mark.parametrize("eps", ["1e-3", None, True, torch.tensor(1e-3)])
def test_refuses_eps_that_is_not_a_number(eps):
    with pytest.raises(TypeError, match="eps must be a number, got"):
        charbonnier_loss(torch.zeros(3), torch.ones(3), eps=eps)
    with pytest.raises(TypeError, match="eps must be a number, got"):
        lossbook.nn.CharbonnierLoss(eps=eps)


# --- precision ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_small_residuals(dtype, device):
    """Image-like residuals of the size of eps, where float16 arithmetic would lose eps ** 2:
    the loss of half inputs is float32's on the same rounded values, to float32 rounding."""
    input, target = random_pair((64,), dtype=torch.float32, scale=1e-2, seed=5)
    low, low_target = input.to(device, dtype).requires_grad_(), target.to(device, dtype)
    loss = charbonnier_loss(low, low_target, eps=1e-3)
    assert loss.dtype == torch.float32
    single = low.detach().float().requires_grad_()
    reference = charbonnier_loss(single, low_target.float(), eps=1e-3)
    torch.testing.assert_close(loss, reference, rtol=1e-6, atol=0)
    residual = low.detach().double() - low_target.double()
    torch.testing.assert_close(loss.double(), torch.sqrt(residual**2 + 1e-6).mean(), rtol=1e-6, atol=0)
    loss.backward()
    reference.backward()
    assert low.grad.dtype == dtype
    torch.testing.assert_close(low.grad, single.grad.to(dtype))
