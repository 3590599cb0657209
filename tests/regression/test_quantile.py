"""Tests of book/regression/quantile.md: quantile_loss, one level or several at once."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import finite_arrays, random_pair
from sklearn.metrics import mean_pinball_loss

import lossbook.nn
from lossbook import l1_loss, quantile_loss, validate_args

LEVELS = [0.05, 0.3, 0.5, 0.9]
levels_strategy = st.floats(0.001, 0.999)


def numpy_pinball(input, target, q):
    """Equation (1) of the chapter, transcribed in float64 NumPy."""
    u = np.asarray(target, dtype=np.float64) - np.asarray(input, dtype=np.float64)
    return np.maximum(q * u, (q - 1) * u)


# --- oracle -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1,), (7,), (4, 5), (2, 3, 4)])
@pytest.mark.parametrize("q", LEVELS)
def test_one_level_matches_sklearn_and_numpy(q, shape, device):
    input, target = random_pair(shape, device=device)
    per_element = quantile_loss(input, target, q=q, reduction="none")
    assert per_element.shape == input.shape and per_element.device == input.device
    np.testing.assert_allclose(
        per_element.cpu().numpy(), numpy_pinball(input.cpu(), target.cpu(), q), rtol=1e-12, atol=1e-15
    )
    expected = mean_pinball_loss(target.cpu().flatten().numpy(), input.cpu().flatten().numpy(), alpha=q)
    np.testing.assert_allclose(quantile_loss(input, target, q=q).item(), expected, rtol=1e-12)
    np.testing.assert_allclose(
        quantile_loss(input, target, q=q, reduction="sum").item(), expected * input.numel(), rtol=1e-12
    )


@pytest.mark.parametrize("kind", ["list", "tuple", "tensor"])
@pytest.mark.parametrize("levels", [[0.5], [0.05, 0.5, 0.95], [0.1, 0.2, 0.7, 0.9]])
@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_several_levels_match_sklearn_and_numpy(batch, levels, kind, device):
    count = len(levels)
    input = random_pair((*batch, count), device=device, seed=1)[0]
    target = random_pair(batch, device=device, seed=2)[0]
    q = {"list": list, "tuple": tuple, "tensor": lambda v: torch.tensor(v, dtype=torch.float64)}[kind](levels)

    per_element = quantile_loss(input, target, q=q, reduction="none")
    assert per_element.shape == input.shape and per_element.device == input.device
    np.testing.assert_allclose(
        per_element.cpu().numpy(),
        numpy_pinball(input.cpu(), target.cpu().numpy()[..., None], np.array(levels)),
        rtol=1e-12,
        atol=1e-15,
    )
    flat_input = input.cpu().reshape(-1, count).numpy()
    flat_target = target.cpu().reshape(-1).numpy()
    per_level = [mean_pinball_loss(flat_target, flat_input[:, k], alpha=level) for k, level in enumerate(levels)]
    np.testing.assert_allclose(per_element.reshape(-1, count).mean(0).cpu().numpy(), per_level, rtol=1e-12)
    np.testing.assert_allclose(quantile_loss(input, target, q=q).item(), np.mean(per_level), rtol=1e-12)
    np.testing.assert_allclose(
        quantile_loss(input, target, q=q, reduction="sum").item(),
        np.sum(per_level) * flat_target.size,
        rtol=1e-12,
    )
    # A target of input's full shape is compared element by element: the same numbers.
    full = target.unsqueeze(-1).expand_as(input)
    assert torch.equal(quantile_loss(input, full, q=q, reduction="none"), per_element)


def test_worked_example():
    input, target = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 1.0])
    torch.testing.assert_close(
        quantile_loss(input, target, q=0.9, reduction="none"), torch.tensor([0.9, 0.0, 0.2])
    )
    both = quantile_loss(input[:, None].expand(3, 2), target, q=[0.1, 0.9], reduction="none")
    torch.testing.assert_close(both, torch.tensor([[0.1, 0.9], [0.0, 0.0], [1.8, 0.2]]))


# --- gradients --------------------------------------------------------------------------


@pytest.mark.parametrize("q", [0.1, 0.5, 0.75])
def test_hand_derived_gradient(q):
    input, target = random_pair((6, 4), seed=4)
    target[0, :2] = input[0, :2]  # ties: the kink
    input.requires_grad_()
    (gradient,) = torch.autograd.grad(quantile_loss(input, target, q=q, reduction="sum"), input)
    expected = torch.where(
        target > input, torch.full_like(target, -q), torch.full_like(target, 1 - q)
    ).where(target != input, torch.zeros_like(target))
    torch.testing.assert_close(gradient, expected.detach(), rtol=0, atol=1e-15)
    assert (gradient[0, :2] == 0).all()  # autograd's subgradient at a tie is 0, as for abs
    (mean_gradient,) = torch.autograd.grad(quantile_loss(input, target, q=q), input)
    torch.testing.assert_close(mean_gradient, expected.detach() / input.numel(), rtol=0, atol=1e-15)


def test_hand_derived_gradient_of_several_levels():
    levels = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    input = random_pair((5, 3), seed=6)[0].requires_grad_()
    target = random_pair((5,), seed=7)[0]
    (gradient,) = torch.autograd.grad(quantile_loss(input, target, q=levels, reduction="sum"), input)
    above = target[:, None] > input
    torch.testing.assert_close(gradient, torch.where(above, -levels, 1 - levels).detach(), rtol=0, atol=1e-15)


def test_median_level_has_half_the_l1_gradient_even_at_ties():
    input, target = random_pair((10,), seed=8)
    target[:3] = input[:3]
    input.requires_grad_()
    (quantile_gradient,) = torch.autograd.grad(quantile_loss(input, target, q=0.5), input)
    (l1_gradient,) = torch.autograd.grad(l1_loss(input, target), input)
    assert torch.equal(2 * quantile_gradient, l1_gradient)


def test_hand_derived_gradient_of_the_target_with_the_shape_rule():
    """One target (N,) against K predictions (N, K): its gradient sums the K levels' (5)."""
    levels = [0.1, 0.4, 0.6, 0.9]
    input = random_pair((5, 4), seed=9)[0]
    target = random_pair((5,), seed=10)[0].requires_grad_()
    (gradient,) = torch.autograd.grad(quantile_loss(input, target, q=levels, reduction="sum"), target)
    above = target.detach()[:, None] > input
    expected = torch.where(above, torch.tensor(levels, dtype=torch.float64), torch.tensor(levels, dtype=torch.float64) - 1)
    torch.testing.assert_close(gradient, expected.sum(1), rtol=0, atol=1e-15)


# --- properties and limits ---------------------------------------------------------------


@given(finite_arrays(), levels_strategy)
def test_properties(arrays, q):
    input, target = (torch.from_numpy(a) for a in arrays)
    per_element = quantile_loss(input, target, q=q, reduction="none")
    assert (per_element >= 0).all()
    assert quantile_loss(input, input, q=q).item() == 0.0
    assert (per_element[input == target] == 0).all()  # zero at a perfect prediction, positive elsewhere
    assert (per_element[(input - target).abs() > 1e-300] > 0).all()  # (q times a subnormal may round to 0)
    # (input, target, q) and (-input, -target, 1 - q) are the same loss
    torch.testing.assert_close(
        quantile_loss(-input, -target, q=1 - q, reduction="none"), per_element, rtol=1e-12, atol=1e-12
    )
    # only the residual matters
    torch.testing.assert_close(
        quantile_loss(input + 3.0, target + 3.0, q=q), quantile_loss(input, target, q=q), rtol=1e-9, atol=1e-9
    )


@given(finite_arrays())
def test_median_level_is_half_of_l1(arrays):
    input, target = (torch.from_numpy(a) for a in arrays)
    # equal but for subnormal residuals, where |u| / 2 rounds
    torch.testing.assert_close(
        2 * quantile_loss(input, target, q=0.5, reduction="none"),
        l1_loss(input, target, reduction="none"),
        rtol=1e-15,
        atol=1e-300,
    )
    torch.testing.assert_close(2 * quantile_loss(input, target, q=0.5), l1_loss(input, target), rtol=1e-15, atol=1e-300)


@given(finite_arrays(bound=1e2), st.lists(levels_strategy, min_size=1, max_size=4))
def test_several_levels_are_the_average_of_single_levels(arrays, levels):
    target = torch.from_numpy(arrays[0])
    input = torch.stack([torch.from_numpy(arrays[1]) * (k + 1) for k in range(len(levels))], dim=-1)
    singles = [quantile_loss(input[..., k], target, q=level) for k, level in enumerate(levels)]
    torch.testing.assert_close(quantile_loss(input, target, q=levels), torch.stack(singles).mean())


@given(
    hnp.arrays("float64", st.integers(1, 40), elements=st.floats(-100, 100, allow_nan=False)),
    levels_strategy,
)
def test_minimizer_of_a_constant_is_the_empirical_quantile(sample, q):
    y = torch.from_numpy(sample)
    candidates = torch.from_numpy(np.unique(sample))  # a piecewise-linear convex loss: a kink is optimal
    losses = quantile_loss(
        candidates[:, None].expand(-1, len(y)), y.expand(len(candidates), -1), q=q, reduction="none"
    ).mean(1)
    quantile = np.quantile(sample, q, method="inverted_cdf")
    at_quantile = quantile_loss(torch.full_like(y, quantile), y, q=q)
    torch.testing.assert_close(at_quantile, losses.min(), rtol=1e-12, atol=1e-12)
    # the subgradient condition (4): 0 is in [F(c-) - q, F(c) - q]
    assert (sample < quantile).mean() <= q <= (sample <= quantile).mean()


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "q", [0.0, 1.0, -0.1, 1.5, 90, float("nan"), float("inf"), [0.1, 1.0], torch.tensor([0.0, 0.5]), torch.tensor(1.0)]
)
def test_refuses_levels_outside_the_open_interval(q):
    message = r"q must lie in the open interval \(0, 1\), 0 and 1 excluded \(a fraction, 0.9, not a percent, 90\); got"
    with pytest.raises(ValueError, match=message):
        quantile_loss(torch.zeros(4, 2), torch.zeros(4, 2), q=q)
    with pytest.raises(ValueError, match=message):
        lossbook.nn.QuantileLoss(q=q)  # at construction, with the function's message


@pytest.mark.parametrize(
    ("q", "error", "message"),
    [
        (True, TypeError, r"q must be a float in \(0, 1\), .* got bool"),
        ("0.5", TypeError, r"q must be a float in \(0, 1\), .* got '0.5'"),
        (None, TypeError, r"q must be a float in \(0, 1\), .* got None"),
        ([0.1, "a"], TypeError, r"q must be a float in \(0, 1\), .* got \[0.1, 'a'\]"),
        (torch.tensor([1, 0]), TypeError, r"q must be .* got a tensor of dtype torch.int64"),
        (torch.tensor([True]), TypeError, r"q must be .* got a tensor of dtype torch.bool"),
        (torch.full((2, 2), 0.5), ValueError, r"q must be .* got a tensor of shape \(2, 2\)"),
        ([[0.1, 0.9]], ValueError, r"q must be .* got a tensor of shape \(1, 2\)"),
        ([], ValueError, "q must hold at least one quantile level, got an empty tensor"),
        (torch.tensor([]), ValueError, "q must hold at least one quantile level, got an empty tensor"),
    ],
)
def test_refuses_malformed_levels(q, error, message):
    with pytest.raises(error, match=message):
        quantile_loss(torch.zeros(4, 2), torch.zeros(4, 2), q=q)
    with pytest.raises(error, match=message):
        lossbook.nn.QuantileLoss(q=q)


def test_refuses_shapes_outside_the_rule():
    with pytest.raises(ValueError, match=r"q holds 2 quantile levels, so input must have shape \(\*, 2\); got input of shape \(4, 3\)"):
        quantile_loss(torch.zeros(4, 3), torch.zeros(4), q=[0.1, 0.9])
    with pytest.raises(ValueError, match=r"q holds 1 quantile levels, so input must have shape \(\*, 1\); got input of shape \(\)"):
        quantile_loss(torch.tensor(1.0), torch.tensor(1.0), q=[0.5])
    for target_shape in [(3,), (4, 1), (1, 3), (4, 3, 1)]:
        with pytest.raises(
            ValueError,
            match=r"with 3 levels in q, target must have input's shape \(4, 3\) or input's shape without its last dimension \(4,\)",
        ):
            quantile_loss(torch.zeros(4, 3), torch.zeros(target_shape), q=[0.1, 0.5, 0.9])
    # one float level: the shapes must match, (N, K) against (N,) included
    with pytest.raises(ValueError, match=r"input and target must have the same shape, got \(4, 3\) and \(4,\)"):
        quantile_loss(torch.zeros(4, 3), torch.zeros(4), q=0.9)
    with pytest.raises(TypeError, match="input must be a floating-point tensor"):
        quantile_loss(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4), q=[0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match="reduction must be one of"):
        quantile_loss(torch.zeros(4, 3), torch.zeros(4), q=[0.1, 0.5, 0.9], reduction="batchmean")


# --- where the levels are checked, dtypes, devices, module ---------------------------------


def test_refusal_names_the_first_level_outside_the_interval():
    for q, shown in [(90, "got 90"), ([0.1, 1.0, 0.9], "got 1.0"), (torch.tensor([0.5, -0.1]), "got -0.1")]:
        with pytest.raises(ValueError, match=shown):
            quantile_loss(torch.zeros(4, 2), torch.zeros(4, 2), q=q)


def test_tensor_levels_are_value_checks_and_python_levels_are_option_checks():
    """A tensor q is checked like every tensor value (eagerly, on the CPU, and not inside
    validate_args(False); torch.compile and torch.export are in the battery); floats and
    sequences are Python numbers and always checked."""
    input, target = random_pair((4, 2))
    with validate_args(False):
        quantile_loss(input, target, q=torch.tensor([0.5, 1.5]))  # not read: no error, no sync
        for q in [1.5, [0.5, 1.5]]:
            with pytest.raises(ValueError, match="q must lie in the open interval"):
                quantile_loss(input, target, q=q)


def test_a_zero_dimensional_tensor_is_one_level(device):
    input, target = random_pair((4, 3), device=device)
    for q in (torch.tensor(0.3), torch.tensor(0.3, dtype=torch.float64, device=device)):
        torch.testing.assert_close(quantile_loss(input, target, q=q), quantile_loss(input, target, q=0.3))
    with pytest.raises(ValueError, match=r"input and target must have the same shape"):
        quantile_loss(input, target[:, 0], q=torch.tensor(0.3))  # the shape rule needs K levels


def test_numpy_levels_are_accepted():
    input, target = random_pair((4, 2))
    expected = quantile_loss(input, target, q=[0.25, 0.75])
    assert torch.equal(quantile_loss(input, target, q=np.array([0.25, 0.75])), expected)
    assert torch.equal(quantile_loss(input, target, q=np.float32(0.25)), quantile_loss(input, target, q=0.25))


def test_tensor_levels_follow_the_input_device_and_dtype(device):
    input, target = random_pair((4, 3), device=device)
    float32_levels = torch.tensor([0.1, 0.5, 0.9])  # on the CPU, float32
    loss = quantile_loss(input, target, q=float32_levels)
    assert loss.dtype == torch.float64 and loss.device == input.device
    expected = quantile_loss(input, target, q=float32_levels.double().to(device))
    torch.testing.assert_close(loss, expected)
    half = quantile_loss(input.half(), target.half(), q=torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64, device=device))
    assert half.dtype == torch.float32 and half.device == input.device


def test_module_takes_levels_as_a_float_a_list_or_a_buffer(device):
    input, target = random_pair((6, 3), device=device)
    torch.testing.assert_close(lossbook.nn.QuantileLoss(q=0.9)(input, target), quantile_loss(input, target, q=0.9))
    expected = quantile_loss(input, target[:, 0], q=[0.05, 0.5, 0.95])
    for q in ([0.05, 0.5, 0.95], torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64)):
        module = lossbook.nn.QuantileLoss(q=q).to(device)
        torch.testing.assert_close(module(input, target[:, 0]), expected)
    assert "q=0.9" in repr(lossbook.nn.QuantileLoss(q=0.9))
