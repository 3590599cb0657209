"""Tests of book/regression/log_cosh.md: log_cosh_loss."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from strategies import finite_arrays, random_pair

from lossbook import log_cosh_loss

EPS64 = torch.finfo(torch.float64).eps
EPS32 = torch.finfo(torch.float32).eps
REDUCE = {"none": lambda x: x, "mean": np.mean, "sum": np.sum}


def oracle(residual: np.ndarray) -> np.ndarray:
    """log cosh r in float64 by an independent formula: log(e^r + e^-r) - log 2."""
    return np.logaddexp(residual, -residual) - np.log(2.0)


def series(residual: torch.Tensor) -> torch.Tensor:
    """log cosh r from its Taylor series, accurate to float64 rounding for |r| <= 1e-2."""
    r2 = residual.double() ** 2
    return r2 / 2 - r2**2 / 12 + r2**3 / 45 - 17 * r2**4 / 2520


def per_element(r: torch.Tensor) -> torch.Tensor:
    return log_cosh_loss(r, torch.zeros_like(r), reduction="none")


def derivatives(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First and second derivative of the per-element loss, by autograd."""
    r = r.detach().requires_grad_()
    (first,) = torch.autograd.grad(per_element(r).sum(), r, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), r)
    return first.detach(), second


# -- oracle ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1,), (7,), (4, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0, 1e4])
def test_matches_numpy_oracle(shape, reduction, scale, device):
    input, target = random_pair(shape, device=device, scale=scale, seed=len(shape))
    expected = REDUCE[reduction](oracle((input - target).cpu().numpy()))
    value = log_cosh_loss(input, target, reduction=reduction)
    assert value.dtype == torch.float64 and value.device == input.device
    # the oracle cancels near r = 0 (log(e^r + e^-r) ~ log 2): about 1e-16 per element
    atol = 1e-15 * (input.numel() if reduction == "sum" else 1)
    np.testing.assert_allclose(value.cpu().numpy(), expected, rtol=1e-13, atol=atol)


@pytest.mark.parametrize("scale", [0.3, 3.0, 100.0, 1e3])
def test_matches_log_of_cosh_where_that_is_finite(scale, device):
    input, target = random_pair((50,), device=device, scale=scale, seed=7)
    residual = (input - target).cpu().numpy()
    with np.errstate(over="ignore"):
        textbook = np.log(np.cosh(residual))
    finite = np.isfinite(textbook)
    assert finite.any()
    value = log_cosh_loss(input, target, reduction="none").cpu().numpy()
    np.testing.assert_allclose(value[finite], textbook[finite], rtol=1e-13, atol=1e-15)
    assert np.isfinite(value).all()


def test_worked_values():
    r = torch.tensor([0.0, 1.0, -3.0, 1e4, -1e300], dtype=torch.float64)
    expected = [0.0, math.log(math.cosh(1.0)), math.log(math.cosh(3.0)), 1e4 - math.log(2), 1e300]
    torch.testing.assert_close(per_element(r), torch.tensor(expected, dtype=torch.float64), rtol=1e-15, atol=0)


# -- accuracy: the cancellation of the softplus form near 0 must not be there -----------


def signed_logspace(low: float, high: float, steps: int, dtype=torch.float64) -> torch.Tensor:
    magnitudes = torch.logspace(low, high, steps, dtype=torch.float64)
    return torch.cat([-magnitudes.flip(0), magnitudes]).to(dtype)


def test_float64_relative_accuracy_near_zero():
    r = signed_logspace(-150, -2, 3001)
    np.testing.assert_allclose(per_element(r).numpy(), series(r).numpy(), rtol=4 * EPS64, atol=0)
    assert per_element(torch.zeros(1, dtype=torch.float64)).item() == 0.0


def test_float32_relative_accuracy_everywhere():
    r = signed_logspace(-10, 4, 2801, dtype=torch.float32)
    wide = r.double()
    exact = torch.where(wide.abs() < 1e-3, series(wide), torch.from_numpy(oracle(wide.numpy())))
    value = per_element(r).double()
    relative = (value - exact).abs() / exact
    assert relative.max().item() < 4 * EPS32


def test_pieces_meet_at_the_switch():
    """Equation (9) switches forms at |r| = 1; the function must stay monotone there."""
    r = torch.linspace(0.999, 1.001, 2001, dtype=torch.float64)
    for dtype in (torch.float64, torch.float32):
        values = per_element(r.to(dtype))
        assert (values.diff() >= 0).all()
        expected = oracle(r.to(dtype).double().numpy())
        np.testing.assert_allclose(values.double().numpy(), expected, rtol=4 * torch.finfo(dtype).eps)


# -- gradients ---------------------------------------------------------------------------


def test_hand_derived_gradient_and_curvature():
    input, target = random_pair((6, 5), scale=3.0, seed=2)
    input[0, :3] = target[0, :3]  # perfect predictions: r = 0 exactly
    input[1, 0], input[1, 1] = target[1, 0] + 1e4, target[1, 1] - 1e4
    input.requires_grad_()
    (gradient,) = torch.autograd.grad(log_cosh_loss(input, target), input)
    residual = (input - target).detach()
    torch.testing.assert_close(gradient, torch.tanh(residual) / residual.numel(), rtol=0, atol=1e-16)

    first, second = derivatives(residual)
    torch.testing.assert_close(first, torch.tanh(residual), rtol=0, atol=2 * EPS64)
    torch.testing.assert_close(second, 1 / torch.cosh(residual) ** 2, rtol=0, atol=4 * EPS64)
    assert (first[0, :3] == 0).all() and (second[0, :3] == 1).all()
    assert first[1, 0].item() == 1.0 and first[1, 1].item() == -1.0
    assert second[1, 0].item() == 0.0 and second[1, 1].item() == 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_gradient_in_every_dtype(dtype, device):
    input = torch.tensor([0.0, 0.5, -0.5, 12.0, -12.0, 1e4, -1e4], dtype=dtype, device=device)
    input.requires_grad_()
    loss = log_cosh_loss(input, torch.zeros_like(input), reduction="sum")
    (gradient,) = torch.autograd.grad(loss, input)
    assert gradient.dtype == dtype and torch.isfinite(gradient).all()
    assert gradient[0].item() == 0.0
    assert gradient[3:].tolist() == [1.0, -1.0, 1.0, -1.0]
    torch.testing.assert_close(gradient, torch.tanh(input.detach().float()).to(dtype))


# -- properties and limits -----------------------------------------------------------------


@given(finite_arrays())
def test_properties(arrays):
    input, target = (torch.from_numpy(a) for a in arrays)
    loss = log_cosh_loss(input, target, reduction="none")
    assert (loss >= 0).all()
    assert torch.equal(loss, log_cosh_loss(target, input, reduction="none"))  # symmetric
    assert log_cosh_loss(input, input).item() == 0.0
    assert (log_cosh_loss(input, input, reduction="none") == 0).all()
    first, _ = derivatives(input - target)
    assert (first.abs() <= 1).all()
    torch.testing.assert_close(first, torch.tanh(input - target), rtol=0, atol=2 * EPS64)


residuals = st.floats(-1e6, 1e6, allow_nan=False)


@given(residuals)
def test_bracketed_by_the_series_and_by_min_of_l1_and_l2(r):
    value = per_element(torch.tensor([r], dtype=torch.float64)).item()
    slack = 4 * EPS64 * value
    assert value >= 0
    assert value <= min(r * r / 2, abs(r)) + slack  # equation (7), right
    assert value >= r * r / 2 - r**4 / 12 - slack  # equation (6), left
    assert value >= abs(r) - math.log(2) - 4 * EPS64 * abs(r)  # equation (7), left


@given(st.floats(-0.5, 0.5, allow_nan=False))
def test_quadratic_near_zero(r):
    """|log cosh r - r^2/2| <= r^4 / 12, to float64 rounding of the value."""
    value = per_element(torch.tensor([r], dtype=torch.float64)).item()
    assert abs(value - r * r / 2) <= r**4 / 12 + 4 * EPS64 * r * r / 2


@given(st.floats(1.0, 1e6).flatmap(lambda m: st.sampled_from([m, -m])))
def test_linear_far_out(r):
    """e^{-2|r|} - e^{-4|r|}/2 <= log cosh r - (|r| - log 2) <= e^{-2|r|}: equation (7)."""
    value = per_element(torch.tensor([r], dtype=torch.float64)).item()
    excess = value - (abs(r) - math.log(2))
    rounding = 4 * EPS64 * abs(r)
    decay = math.exp(-2 * abs(r))
    assert decay - decay**2 / 2 - rounding <= excess <= decay + rounding


@given(st.floats(-1e3, 1e3, allow_nan=False), st.floats(0.05, 20.0))
def test_scaled_form_is_below_huber_by_at_most_a2_times_log2_minus_half(r, a):
    """0 <= huber_a(r) - a^2 log cosh(r / a) <= a^2 (log 2 - 1/2): a smooth Huber loss."""
    input = torch.tensor([r], dtype=torch.float64)
    zero = torch.zeros_like(input)
    smooth = a**2 * log_cosh_loss(input / a, zero, reduction="sum").item()
    huber = F.huber_loss(input, zero, delta=a, reduction="sum").item()
    slack = 8 * EPS64 * max(huber, a * a)
    assert -slack <= huber - smooth <= a * a * (math.log(2) - 0.5) + slack


# -- signature and precision ----------------------------------------------------------------


def test_has_no_hyperparameter_and_a_keyword_only_reduction():
    with pytest.raises(TypeError):
        log_cosh_loss(torch.zeros(2), torch.zeros(2), delta=1.0)  # no hyperparameter to set
    with pytest.raises(TypeError):
        log_cosh_loss(torch.zeros(2), torch.zeros(2), "mean")  # reduction is keyword-only


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_extreme_residuals_stay_finite_and_exact(dtype, device):
    input = torch.tensor([1e4, -1e4, 6e4, 12.0, 100.0], dtype=dtype, device=device)
    target = torch.zeros_like(input)
    if dtype is not torch.float16:
        input = torch.cat([input, torch.tensor([1e30, -1e30], dtype=dtype, device=device)])
        target = torch.zeros_like(input)
    value = log_cosh_loss(input, target, reduction="none")
    assert value.dtype == torch.float32 and torch.isfinite(value).all()
    expected = oracle(input.double().cpu().numpy())
    np.testing.assert_allclose(value.double().cpu().numpy(), expected, rtol=2 * EPS32, atol=0)
