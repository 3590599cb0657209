"""Tests of book/regression/huber.md: smooth_l1_loss and huber_loss."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from strategies import finite_arrays, random_pair

import lossbook.nn
from lossbook import huber_loss, l1_loss, mse_loss, smooth_l1_loss

SHAPES = [(1,), (7,), (4, 5), (2, 3, 4, 5)]
REDUCTIONS = ["none", "mean", "sum"]
BETAS = [0.0, 0.1, 1.0, 2.5, 1e6]
DELTAS = [0.1, 1.0, 2.5, 1e6]
thresholds = st.floats(1e-3, 1e3)


def on_the_kink(shape, threshold, device):
    """A float64 pair in which two thirds of the residuals are exactly +threshold or -threshold."""
    input, target = random_pair(shape, scale=2.0, seed=4, device=device)
    input, target = input.flatten(), target.flatten()
    target[:-1:3], target[1::3] = 0.0, 0.0
    input[:-1:3], input[1::3] = threshold, -threshold
    residual = (input - target).abs()
    assert (residual[:-1:3] == threshold).all() and (residual[1::3] == threshold).all()
    return input.view(shape), target.view(shape)


def make_pair(shape, threshold, kink, device):
    """A float64 pair whose residuals sit on the kinks (``kink``) or anywhere; the input takes gradients."""
    input, target = on_the_kink(shape, threshold, device) if kink else random_pair(shape, scale=2.0, device=device)
    return input.requires_grad_(), target


def numpy_huber(r, delta):
    """Equation (5) of the chapter, case by case, in float64 NumPy."""
    return np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))


def numpy_smooth_l1(r, beta):
    if beta == 0:
        return np.abs(r)
    return np.where(np.abs(r) < beta, 0.5 * r**2 / beta, np.abs(r) - 0.5 * beta)


NUMPY_REDUCE = {"none": lambda x: x, "mean": np.mean, "sum": np.sum}


def torch_oracle(option, value, input, target, reduction):
    """PyTorch's own kernels: the value and its autograd gradient in the input."""
    torch_loss = {"beta": F.smooth_l1_loss, "delta": F.huber_loss}[option]
    result = torch_loss(input, target, **{option: value}, reduction=reduction)
    return result.detach(), torch.autograd.grad(result.sum(), input)[0]


def numpy_oracle(option, value, input, target, reduction):
    """Independent of the torch kernels the definitions call: the cases of (5) and the gradient (7)."""
    r = (input - target).detach().cpu().numpy()
    per_element = (numpy_huber if option == "delta" else numpy_smooth_l1)(r, value)
    clip = np.clip(r, -value, value) if option == "delta" else (np.sign(r) if value == 0 else np.clip(r / value, -1, 1))
    scale = 1 / r.size if reduction == "mean" else 1.0
    as_tensor = lambda array: torch.as_tensor(np.asarray(array), dtype=torch.float64, device=input.device)  # noqa: E731
    return as_tensor(NUMPY_REDUCE[reduction](per_element)), as_tensor(scale * clip)


LOSSES = [(smooth_l1_loss, "beta", beta) for beta in BETAS] + [(huber_loss, "delta", delta) for delta in DELTAS]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("loss", "option", "value"), LOSSES)
@pytest.mark.parametrize("kink", [False, True])
@pytest.mark.parametrize("oracle", [torch_oracle, numpy_oracle], ids=["torch", "numpy"])
def test_matches_the_oracles(oracle, loss, option, value, reduction, shape, kink, device):
    """Values and gradients, on random residuals and exactly on the kinks, for every option."""
    input, target = make_pair(shape, value, kink, device)
    ours = loss(input, target, **{option: value}, reduction=reduction)
    assert ours.dtype == torch.float64 and ours.device == input.device
    (gradient,) = torch.autograd.grad(ours.sum(), input)
    expected, expected_gradient = oracle(option, value, input, target, reduction)
    torch.testing.assert_close(ours.detach(), expected, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-12, atol=1e-15)


def test_docstring_values():
    input, target = torch.tensor([0.5, 3.0]), torch.zeros(2)
    assert smooth_l1_loss(input, target, reduction="none").tolist() == [0.125, 2.5]
    assert smooth_l1_loss(input, target, beta=0.0, reduction="none").tolist() == [0.5, 3.0]
    assert huber_loss(input, target, delta=2.0, reduction="none").tolist() == [0.125, 4.0]


@pytest.mark.parametrize("threshold", [0.5, 1.0, 2.0])
def test_hand_derived_gradients(threshold):
    input, target = random_pair((5, 3), scale=2.0, seed=2)
    input[0, 0], input[0, 1] = target[0, 0] + threshold, target[0, 1] - threshold  # the kinks
    input.requires_grad_()
    residual = (input - target).detach()
    for reduction, scale in [("sum", 1.0), ("mean", 1.0 / residual.numel())]:
        (huber_grad,) = torch.autograd.grad(huber_loss(input, target, delta=threshold, reduction=reduction), input)
        (smooth_grad,) = torch.autograd.grad(smooth_l1_loss(input, target, beta=threshold, reduction=reduction), input)
        torch.testing.assert_close(huber_grad, scale * residual.clamp(-threshold, threshold), rtol=0, atol=1e-15)
        torch.testing.assert_close(smooth_grad, scale * (residual / threshold).clamp(-1, 1), rtol=0, atol=1e-15)


@given(finite_arrays(), thresholds)
def test_huber_is_delta_times_smooth_l1(arrays, threshold):
    input, target = (torch.from_numpy(a) for a in arrays)
    for reduction in REDUCTIONS:
        torch.testing.assert_close(
            huber_loss(input, target, delta=threshold, reduction=reduction),
            threshold * smooth_l1_loss(input, target, beta=threshold, reduction=reduction),
            rtol=1e-12,
            atol=1e-12,
        )


@given(finite_arrays(), thresholds)
@pytest.mark.parametrize(("loss", "name"), [(smooth_l1_loss, "beta"), (huber_loss, "delta")])
def test_properties(loss, name, arrays, threshold):
    input, target = (torch.from_numpy(a) for a in arrays)
    options = {name: threshold}
    per_element = loss(input, target, **options, reduction="none")
    assert (per_element >= 0).all()
    assert torch.equal(per_element, loss(target, input, **options, reduction="none"))  # symmetric
    assert loss(input, input, **options).item() == 0.0
    torch.testing.assert_close(
        loss(input + 3.0, target + 3.0, **options), loss(input, target, **options), rtol=1e-9, atol=1e-9
    )
    # monotone in |r|: a larger residual never costs less
    r = (input - target).abs().flatten()
    order = r.argsort()
    assert (per_element.flatten()[order].diff() >= -1e-9).all()


@given(finite_arrays())
def test_huge_delta_is_half_the_mse(arrays):
    input, target = (torch.from_numpy(a) for a in arrays)
    delta = 1e4  # larger than every residual (|r| <= 2e3)
    torch.testing.assert_close(huber_loss(input, target, delta=delta), 0.5 * mse_loss(input, target))
    torch.testing.assert_close(
        huber_loss(input, target, delta=delta, reduction="none"), 0.5 * mse_loss(input, target, reduction="none")
    )


@given(finite_arrays(), st.floats(1e-6, 1e2))
def test_small_beta_tends_to_l1(arrays, beta):
    input, target = (torch.from_numpy(a) for a in arrays)
    smooth = smooth_l1_loss(input, target, beta=beta, reduction="none")
    l1 = l1_loss(input, target, reduction="none")
    gap = l1 - smooth  # equation (8): 0 <= |r| - smoothL1 <= beta / 2
    assert (gap >= -1e-9).all() and (gap <= 0.5 * beta + 1e-9).all()
    # and the scaled Huber loss has the same limit
    scaled = huber_loss(input, target, delta=beta, reduction="none") / beta
    assert ((l1 - scaled).abs() <= 0.5 * beta + 1e-9 * (1 + l1)).all()


@given(finite_arrays())
def test_beta_zero_is_l1(arrays):
    input, target = (torch.from_numpy(a) for a in arrays)
    for reduction in REDUCTIONS:
        torch.testing.assert_close(
            smooth_l1_loss(input, target, beta=0.0, reduction=reduction), l1_loss(input, target, reduction=reduction)
        )


@given(finite_arrays(), thresholds)
def test_gradients_are_bounded(arrays, threshold):
    input, target = (torch.from_numpy(a) for a in arrays)
    input.requires_grad_()
    (huber_grad,) = torch.autograd.grad(huber_loss(input, target, delta=threshold, reduction="sum"), input)
    (smooth_grad,) = torch.autograd.grad(smooth_l1_loss(input, target, beta=threshold, reduction="sum"), input)
    assert (huber_grad.abs() <= threshold).all()
    assert (smooth_grad.abs() <= 1.0).all()
    assert torch.isfinite(huber_grad).all() and torch.isfinite(smooth_grad).all()


@pytest.mark.parametrize("beta", [0.0, 1e-30, 1e-6, 1.0])
def test_no_nan_from_the_unselected_branch(beta, device):
    """beta = 0 and tiny beta: finite values and gradients, for huge residuals too."""
    for dtype in (torch.float32, torch.float64):
        input = torch.tensor([-1e30, -1.0, 0.0, 1e-40, 2.0, 1e30], dtype=dtype, device=device, requires_grad=True)
        loss = smooth_l1_loss(input, torch.zeros_like(input), beta=beta, reduction="sum")
        (gradient,) = torch.autograd.grad(loss, input)
        assert torch.isfinite(loss)
        assert torch.isfinite(gradient).all() and (gradient.abs() <= 1).all()
        big = input.detach().abs() > 1
        torch.testing.assert_close(gradient[big], input.detach()[big].sign())


@pytest.mark.parametrize("beta", [-1.0, -1e-12, float("inf"), float("nan")])
def test_refuses_bad_beta(beta):
    with pytest.raises(ValueError, match=r"beta must be a non-negative number, got"):
        smooth_l1_loss(torch.zeros(3), torch.zeros(3), beta=beta)


@pytest.mark.parametrize("delta", [0.0, 0, -1.0, float("inf"), float("nan")])
def test_refuses_bad_delta(delta):
    with pytest.raises(ValueError, match=r"delta must be a positive number, got"):
        huber_loss(torch.zeros(3), torch.zeros(3), delta=delta)


def test_refuses_a_threshold_that_is_not_a_number():
    with pytest.raises(TypeError, match="beta must be a number, got Tensor"):
        smooth_l1_loss(torch.zeros(3), torch.zeros(3), beta=torch.tensor(1.0))
    with pytest.raises(TypeError, match="delta must be a number, got str"):
        huber_loss(torch.zeros(3), torch.zeros(3), delta="1")


def test_modules_refuse_bad_thresholds_at_construction_and_when_set_later():
    with pytest.raises(ValueError, match=r"delta must be a positive number, got -1.0"):
        lossbook.nn.HuberLoss(delta=-1.0)
    with pytest.raises(ValueError, match=r"beta must be a non-negative number, got -1.0"):
        lossbook.nn.SmoothL1Loss(beta=-1.0)
    criterion = lossbook.nn.HuberLoss(delta=2.0)
    criterion.delta = 0.0  # a schedule gone wrong: refused at the next call
    with pytest.raises(ValueError, match=r"delta must be a positive number, got 0.0"):
        criterion(torch.zeros(2), torch.zeros(2))
