"""Tests of book/classification/exponential.md: exponential_loss.

The generic battery (bad input, reductions, gradcheck, half precision, module, tracing)
runs over tests/registry.py in tests/test_battery.py; here: the NumPy oracle, the
hand-derived gradient, properties, label refusals and the documented overflows.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from strategies import finite_arrays, random_margin_pair

from lossbook import exponential_loss

REDUCTIONS = ["none", "mean", "sum"]


def numpy_exponential(f: np.ndarray, y: np.ndarray, reduction: str):
    """Equation (1) in float64 NumPy: exp(-y f), then the reduction (mean of nothing = 0)."""
    loss = np.exp(-y * f)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean() if loss.size else 0.0


def labels_from(arrays):
    """Scores and labels in {-1, +1} from a pair of hypothesis arrays (the sign of the second)."""
    scores, signs = (torch.from_numpy(a) for a in arrays)
    return scores, torch.where(signs >= 0, 1.0, -1.0).to(torch.float64)


@pytest.mark.parametrize("shape", [(1,), (7,), (4, 5), (2, 3, 4, 5), (0,), (3, 0)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_dtype", [torch.float64, torch.int64, torch.float32])
def test_matches_numpy_oracle(reduction, shape, label_dtype, device):
    scores, labels = random_margin_pair(shape, scale=3.0, seed=1, device=device)
    ours = exponential_loss(scores, labels.to(label_dtype), reduction=reduction)
    assert ours.dtype == torch.float64 and ours.device == scores.device
    expected = numpy_exponential(scores.cpu().numpy(), labels.cpu().numpy(), reduction)
    np.testing.assert_allclose(ours.cpu().numpy(), expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_follows_input(dtype, device):
    scores, labels = random_margin_pair((5, 4), dtype=dtype, device=device)
    assert exponential_loss(scores, labels).dtype == dtype


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hand_derived_gradient(reduction, device):
    """Equation (2): d exp(-y f) / df = -y exp(-y f), divided by N for the mean."""
    scores, labels = random_margin_pair((6, 5), scale=2.0, seed=2, device=device)
    scores.requires_grad_()
    (gradient,) = torch.autograd.grad(exponential_loss(scores, labels, reduction=reduction).sum(), scores)
    expected = -labels * torch.exp(-labels * scores.detach())
    if reduction == "mean":
        expected = expected / scores.numel()
    torch.testing.assert_close(gradient, expected, rtol=1e-14, atol=0)


@given(finite_arrays(bound=30.0))
def test_properties(arrays):
    scores, labels = labels_from(arrays)
    loss = exponential_loss(scores, labels, reduction="none")
    margin = labels * scores
    assert (loss > 0).all()                                             # positive, never zero
    assert (loss >= (margin <= 0).to(loss.dtype)).all()                 # bounds the 0-1 loss (6)
    assert (loss >= (1 - margin) * (1 - 1e-15) - 1e-15).all()          # convex: above its tangent at 0
    assert torch.equal(loss, exponential_loss(-scores, -labels, reduction="none"))  # (f, y) -> (-f, -y)
    torch.testing.assert_close(loss, torch.exp(-margin), rtol=1e-15, atol=0)


@given(finite_arrays(bound=20.0), st.floats(-3.0, 3.0, allow_nan=False))
def test_multiplicative_update(arrays, alpha):
    """exp(-y (F + alpha h)) = exp(-y F) exp(-alpha y h): AdaBoost's weight update (7)."""
    scores, labels = labels_from(arrays)
    stump = torch.where(scores.flip(-1) > 0, 1.0, -1.0).to(torch.float64)
    new = exponential_loss(scores + alpha * stump, labels, reduction="none")
    old = exponential_loss(scores, labels, reduction="none")
    torch.testing.assert_close(new, old * torch.exp(-alpha * labels * stump), rtol=1e-12, atol=0)


@given(st.floats(0.001, 0.999))
def test_population_minimizer_is_half_the_logit(p):
    """Equation (4): f* = log(p / (1 - p)) / 2 minimizes p e^{-f} + (1 - p) e^{f}, at 2 sqrt(p (1 - p))."""
    best = torch.tensor(0.5 * math.log(p / (1 - p)), dtype=torch.float64)

    def risk(f):
        f = torch.stack([f, f])
        per_label = exponential_loss(f, torch.tensor([1.0, -1.0], dtype=torch.float64), reduction="none")
        return p * per_label[0] + (1 - p) * per_label[1]

    assert math.isclose(risk(best).item(), 2 * math.sqrt(p * (1 - p)), rel_tol=1e-12)
    for step in (1e-3, 0.1, 1.0):
        assert risk(best + step) > risk(best) and risk(best - step) > risk(best)
    assert math.isclose(torch.sigmoid(2 * best).item(), p, rel_tol=1e-12)   # p = sigma(2 f*)


def test_limits():
    """Margin 0 gives exactly 1; large margins give 0; the logistic loss agrees to second order (6)."""
    labels = torch.tensor([1.0, -1.0], dtype=torch.float64)
    assert exponential_loss(torch.zeros(2, dtype=torch.float64), labels, reduction="none").tolist() == [1.0, 1.0]
    far = exponential_loss(torch.tensor([50.0, -50.0], dtype=torch.float64), labels, reduction="none")
    assert (far < 2e-22).all()
    assert exponential_loss(torch.tensor([800.0]), torch.tensor([1])).item() == 0.0
    m = torch.tensor([1e-3, -1e-3, 1e-2, -1e-2, 3e-2], dtype=torch.float64)
    gap = exponential_loss(m, torch.ones_like(m), reduction="none") - (1 - math.log(2) + F.softplus(-2 * m))
    torch.testing.assert_close(gap, -m**3 / 6, rtol=0.1, atol=0)


def test_overflow_is_reported_not_clamped():
    """Beyond the compute dtype the loss is inf (its true value rounded); float64 holds it."""
    assert math.isinf(exponential_loss(torch.tensor([-100.0]), torch.tensor([1])).item())
    value = exponential_loss(torch.tensor([-100.0], dtype=torch.float64), torch.tensor([1]))
    assert math.isclose(value.item(), math.exp(100.0), rel_tol=1e-14)


def test_refuses_labels_other_than_signs():
    with pytest.raises(ValueError, match=r"target must hold labels -1 or \+1, got 0.0 \(for labels 0/1 use 2 \* target - 1\)"):
        exponential_loss(torch.zeros(3), torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"target must hold labels -1 or \+1, got 0.5"):
        exponential_loss(torch.zeros(2), torch.tensor([0.5, 1.0]))
    with pytest.raises(TypeError, match="target must hold labels -1 or \\+1 as a real tensor, got dtype torch.bool"):
        exponential_loss(torch.zeros(2), torch.tensor([True, False]))
    with pytest.raises(TypeError, match="target must be a torch.Tensor, got list"):
        exponential_loss(torch.zeros(2), [1.0, -1.0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_logits_of_50(dtype, reduction, device):
    """Logits of +-50 in half precision: finite float32 losses equal to the float32 computation.

    Gradients are the float32 gradients rounded to the input dtype. bfloat16 holds them all;
    float16 cannot hold e^50 / N (its largest number is 65504), so the gradient of a margin
    of -50 is inf there, exactly as the float32 gradient rounded to float16.
    """
    logits = torch.tensor([-50.0, 50.0, -50.0, 50.0, 0.0, -3.0], device=device)
    labels = torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0, -1.0], device=device)
    low = logits.to(dtype).requires_grad_()
    loss = exponential_loss(low, labels, reduction=reduction)
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()
    reference = logits.clone().requires_grad_()                 # the same values in float32
    expected = exponential_loss(reference, labels, reduction=reduction)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)
    assert math.isclose(exponential_loss(low, labels, reduction="none")[0].item(), math.exp(50), rel_tol=1e-6)

    loss.sum().backward()
    expected.sum().backward()
    assert low.grad.dtype == dtype
    assert torch.equal(low.grad, reference.grad.to(dtype))
    representable = reference.grad.abs() <= torch.finfo(dtype).max
    assert torch.isfinite(low.grad[representable]).all()
    if dtype == torch.bfloat16:
        assert representable.all() and torch.isfinite(low.grad).all()
        torch.testing.assert_close(low.grad.float(), reference.grad, rtol=1e-2, atol=0)
    else:
        assert not representable[0]                             # e^50 / N does not fit in float16

    with torch.autocast(device_type=torch.device(device).type, dtype=dtype):
        assert torch.isfinite(exponential_loss(low.detach(), labels, reduction=reduction)).all()
