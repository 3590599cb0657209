"""Tests of book/classification/logistic.md: logistic_loss, softplus(-y f) for labels in {-1, +1}.

The battery of tests/test_battery.py (bad input, reductions, gradcheck, half precision,
module, tracing) runs over the cases of tests/registry.py; here: the oracles, hand-derived
gradients, properties, the label refusals and the exact values at extreme margins.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import random_margin_pair

from lossbook import logistic_loss

SHAPES = [(1,), (7,), (4, 5), (2, 3, 4, 5)]
REDUCTIONS = ["none", "mean", "sum"]


def numpy_logistic(scores, labels):
    """Equation (3) of the chapter, log(1 + exp(-y f)), transcribed in float64 NumPy."""
    return np.logaddexp(0.0, -np.asarray(labels, np.float64) * np.asarray(scores, np.float64))


def scores_and_labels(max_side=6, bound=60.0):
    """Hypothesis strategy: float64 scores and matching labels in {-1, +1}."""
    return hnp.array_shapes(min_dims=1, max_dims=3, max_side=max_side).flatmap(
        lambda shape: st.tuples(
            hnp.arrays("float64", shape, elements=st.floats(-bound, bound, allow_nan=False)),
            hnp.arrays("float64", shape, elements=st.sampled_from([-1.0, 1.0])),
        )
    )


# --- oracle -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_dtype", [torch.float64, torch.int64])
def test_matches_soft_margin_loss(reduction, shape, label_dtype, device):
    scores, labels = random_margin_pair(shape, device=device, scale=3.0)
    scores.requires_grad_()
    ours = logistic_loss(scores, labels.to(label_dtype), reduction=reduction)
    theirs = F.soft_margin_loss(scores, labels, reduction=reduction)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-15)
    grads = [torch.autograd.grad(loss.sum(), scores)[0] for loss in (ours, theirs)]
    torch.testing.assert_close(*grads, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_numpy_and_binary_cross_entropy(reduction, shape, device):
    scores, labels = random_margin_pair(shape, device=device, scale=5.0, seed=1)
    per_element = numpy_logistic(scores.cpu(), labels.cpu())
    expected = {"none": per_element, "mean": per_element.mean(), "sum": per_element.sum()}[reduction]
    ours = logistic_loss(scores, labels, reduction=reduction)
    np.testing.assert_allclose(ours.cpu().numpy(), expected, rtol=1e-13, atol=0)
    # Equation (4): with t = (1 + y) / 2 the logistic loss is binary cross entropy with logits.
    bce = F.binary_cross_entropy_with_logits(scores, (1 + labels) / 2, reduction=reduction)
    torch.testing.assert_close(ours, bce, rtol=1e-12, atol=1e-15)


def test_worked_example():
    scores = torch.tensor([2.0, -1.0, 0.0], dtype=torch.float64)
    labels = torch.tensor([1, 1, -1])
    expected = [np.log1p(np.exp(-2.0)), np.log1p(np.exp(1.0)), np.log(2.0)]
    np.testing.assert_allclose(logistic_loss(scores, labels, reduction="none").numpy(), expected, rtol=1e-15)
    np.testing.assert_allclose(logistic_loss(scores, labels).item(), np.mean(expected), rtol=1e-15)


# --- gradients --------------------------------------------------------------------------


def test_hand_derived_gradient():
    scores, labels = random_margin_pair((5, 3), scale=4.0, seed=2)
    scores.requires_grad_()
    (gradient,) = torch.autograd.grad(logistic_loss(scores, labels), scores)
    margins = (labels * scores).detach()
    torch.testing.assert_close(gradient, -labels * torch.sigmoid(-margins) / margins.numel(), rtol=1e-13, atol=0)
    # ... which is sigma(f) - t with t = (1 + y) / 2, equation (5)
    torch.testing.assert_close(gradient, (torch.sigmoid(scores.detach()) - (1 + labels) / 2) / 15, rtol=1e-12, atol=1e-16)


def test_gradient_at_zero_margin_is_one_half():
    scores = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    (gradient,) = torch.autograd.grad(logistic_loss(scores, labels, reduction="sum"), scores)
    assert gradient.tolist() == [-0.5, 0.5, -0.5, 0.5]


def test_curvature_is_positive_and_at_most_one_quarter():
    margins = torch.linspace(-30, 30, 601, dtype=torch.float64, requires_grad=True)
    loss = logistic_loss(margins, torch.ones_like(margins), reduction="sum")
    (slope,) = torch.autograd.grad(loss, margins, create_graph=True)
    (curvature,) = torch.autograd.grad(slope.sum(), margins)
    expected = torch.sigmoid(margins) * torch.sigmoid(-margins)
    # F.softplus's double backward forms sigma(x) (1 - sigma(x)), exact to a few ulps of the
    # largest curvature 1/4 (an absolute 1e-15), not relative to the tiny curvatures of large
    # margins (e^-30 ~ 1e-13); the first derivative is relative-exact (test above).
    torch.testing.assert_close(curvature, expected.detach(), rtol=1e-9, atol=1e-15)
    assert (curvature > 0).all() and (curvature <= 0.25).all()


# --- properties -------------------------------------------------------------------------


@given(scores_and_labels())
def test_properties(arrays):
    scores, labels = (torch.from_numpy(a) for a in arrays)
    per_element = logistic_loss(scores, labels, reduction="none")
    margins = labels * scores
    assert (per_element > 0).all()  # never zero: exp(-60) is still a float64
    # symmetric in the pair: flipping the score and the label changes nothing
    assert torch.equal(per_element, logistic_loss(-scores, -labels, reduction="none"))
    # phi(m) - phi(-m) = -m
    flipped = logistic_loss(scores, -labels, reduction="none")
    torch.testing.assert_close(per_element - flipped, -margins, rtol=1e-12, atol=1e-12)
    # the 0-1 loss is below the loss in bits, equation (8)
    assert ((margins <= 0).double() <= per_element / np.log(2) + 1e-15).all()
    # between the hinge-like asymptote max(-m, 0) and max(-m, 0) + log 2
    relu = (-margins).clamp(min=0)
    assert (per_element >= relu).all() and (per_element <= relu + np.log(2) + 1e-12).all()


@given(st.floats(1e-3, 700.0))
def test_limits_of_large_margins(size):
    size_t = torch.tensor([size, -size], dtype=torch.float64)
    right, wrong = logistic_loss(size_t, torch.ones(2, dtype=torch.float64), reduction="none").tolist()
    # a right point costs about exp(-m), never exactly 0 while exp(-m) is representable
    np.testing.assert_allclose(right, np.log1p(np.exp(-size)), rtol=1e-14)
    assert right > 0
    # a wrong point costs about |m|: phi(-m) = m + phi(m)
    np.testing.assert_allclose(wrong, size + right, rtol=1e-14)


@given(hnp.arrays("float64", st.integers(2, 40), elements=st.floats(-700, 700, allow_nan=False)))
def test_decreasing_in_the_margin(margins):
    ordered = torch.from_numpy(np.sort(margins))
    loss = logistic_loss(ordered, torch.ones_like(ordered), reduction="none")
    # non-increasing up to rounding: margins one ulp apart may round to losses one ulp apart
    assert (loss[1:] <= loss[:-1] * (1 + 4 * torch.finfo(torch.float64).eps)).all()


def test_zero_score_costs_log_two():
    labels = torch.tensor([1.0, -1.0, 1.0])
    torch.testing.assert_close(logistic_loss(torch.zeros(3), labels), torch.tensor(np.log(2.0), dtype=torch.float32))


@given(st.floats(0.001, 0.999))
def test_minimizer_of_the_conditional_risk_is_the_log_odds(eta):
    log_odds = np.log(eta / (1 - eta))
    f = torch.tensor([log_odds], dtype=torch.float64, requires_grad=True)
    risk = eta * logistic_loss(f, torch.ones(1)) + (1 - eta) * logistic_loss(f, -torch.ones(1))
    (gradient,) = torch.autograd.grad(risk, f)
    assert abs(gradient.item()) < 1e-12


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [torch.tensor([1.0, 0.0, 1.0]), torch.tensor([1, 0, 0]), torch.tensor([2.0, -1.0, 1.0]), torch.tensor([1.0, 0.5, -1.0])],
)
def test_refuses_labels_other_than_plus_minus_one(labels):
    with pytest.raises(ValueError, match=r"target must hold labels -1 or \+1, got .* \(for labels 0/1 use 2 \* target - 1\)"):
        logistic_loss(torch.zeros(3), labels)


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int16, torch.int32, torch.float16, torch.float32])
def test_labels_of_every_real_dtype(dtype):
    """Labels of any real dtype (one pass over |y| checks them); an unsigned tensor holds only +1."""
    scores = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    labels = torch.tensor([1, 1, 1] if dtype == torch.uint8 else [1, -1, 1], dtype=dtype)
    expected = numpy_logistic(scores.numpy(), labels.double().numpy())
    np.testing.assert_allclose(logistic_loss(scores, labels, reduction="none").numpy(), expected, rtol=1e-15)
    bad = torch.tensor([1, 0, 1], dtype=dtype)
    with pytest.raises(ValueError, match=r"target must hold labels -1 or \+1, got 0"):
        logistic_loss(scores, bad)
    if dtype == torch.int8:  # |-128| overflows to -128 in int8: still refused
        with pytest.raises(ValueError, match="got -128"):
            logistic_loss(scores, torch.tensor([1, -128, 1], dtype=dtype))


def test_refuses_boolean_labels():
    with pytest.raises(TypeError, match="target must hold labels -1 or \\+1 as a real tensor, got dtype torch.bool"):
        logistic_loss(torch.zeros(3), torch.tensor([True, False, True]))


# --- extreme margins in half precision -------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("scale", [50.0, 1e4])
def test_extreme_logits_give_finite_losses_and_float32_gradients(dtype, scale, device):
    scores, labels = random_margin_pair((64,), dtype=torch.float32, scale=scale, seed=7, extreme=True)
    low = scores.to(dtype).to(device).requires_grad_()
    reference = low.detach().float().requires_grad_()
    labels = labels.to(device)
    for reduction in ("none", "sum", "mean"):
        loss_low = logistic_loss(low, labels.to(dtype), reduction=reduction)
        loss_ref = logistic_loss(reference, labels, reduction=reduction)
        assert loss_low.dtype == torch.float32 and torch.isfinite(loss_low).all()
        torch.testing.assert_close(loss_low, loss_ref, rtol=1e-6, atol=0)
        (grad_low,) = torch.autograd.grad(loss_low.sum(), low)
        (grad_ref,) = torch.autograd.grad(loss_ref.sum(), reference)
        assert grad_low.dtype == dtype and torch.isfinite(grad_low).all()
        # the gradient differs from float32's only by its final rounding to dtype
        torch.testing.assert_close(grad_low, grad_ref.to(dtype), rtol=0, atol=0)
    # the margins -scale and +scale of random_margin_pair(extreme=True): loss |m| and 0, gradient -1 and 0
    pair = logistic_loss(low[:2], labels[:2].to(dtype), reduction="none")
    assert pair[0].item() == low[1].item() and pair[1].item() < 1e-20
