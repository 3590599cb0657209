"""Tests of book/regression/l1_l2.md: l1_loss and mse_loss."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from strategies import finite_arrays, random_pair
from sklearn.metrics import mean_absolute_error, mean_squared_error

from lossbook import l1_loss, mse_loss

PAIRS = [(l1_loss, F.l1_loss, mean_absolute_error), (mse_loss, F.mse_loss, mean_squared_error)]
LOSSES = [l1_loss, mse_loss]
# Equation (1) of the chapter in float64 NumPy: independent of the torch kernel mse_loss calls.
NUMPY = {l1_loss: lambda r: np.abs(r), mse_loss: lambda r: r**2}
NUMPY_REDUCE = {"none": lambda x: x, "mean": np.mean, "sum": np.sum}


@pytest.mark.parametrize("shape", [(1,), (7,), (4, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("loss", "torch_loss", "sklearn_loss"), PAIRS)
def test_matches_numpy_torch_and_sklearn(loss, torch_loss, sklearn_loss, reduction, shape, device):
    input, target = random_pair(shape, device=device)
    value = loss(input, target, reduction=reduction)
    assert value.dtype == torch.float64 and value.device == input.device
    residual = (input - target).cpu().numpy()
    np.testing.assert_allclose(
        value.cpu().numpy(), NUMPY_REDUCE[reduction](NUMPY[loss](residual)), rtol=1e-13, atol=1e-15
    )
    torch.testing.assert_close(value, torch_loss(input, target, reduction=reduction))
    expected = sklearn_loss(target.cpu().flatten().numpy(), input.cpu().flatten().numpy())
    np.testing.assert_allclose(loss(input, target).item(), expected, rtol=1e-12)


def test_reductions_on_the_worked_example():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    b = torch.tensor([[3.0, 5.0], [8.0, 6.0]])
    assert mse_loss(a, b, reduction="none").tolist() == [[4.0, 9.0], [25.0, 4.0]]
    assert mse_loss(a, b, reduction="sum").item() == 42.0
    assert mse_loss(a, b).item() == 10.5
    assert l1_loss(a, b, reduction="sum").item() == 12.0


def test_hand_derived_gradients():
    input, target = random_pair((5, 3), seed=2)
    input.requires_grad_()
    (mse_grad,) = torch.autograd.grad(mse_loss(input, target), input)
    (l1_grad,) = torch.autograd.grad(l1_loss(input, target), input)
    residual = (input - target).detach()
    torch.testing.assert_close(mse_grad, 2 * residual / residual.numel())
    torch.testing.assert_close(l1_grad, residual.sign() / residual.numel())
    target.requires_grad_()
    (mse_target_grad,) = torch.autograd.grad(mse_loss(input.detach(), target, reduction="sum"), target)
    torch.testing.assert_close(mse_target_grad, -2 * residual)


@given(finite_arrays())
@pytest.mark.parametrize("loss", LOSSES)
def test_properties(loss, arrays):
    input, target = (torch.from_numpy(a) for a in arrays)
    per_element = loss(input, target, reduction="none")
    assert (per_element >= 0).all()
    assert torch.equal(per_element, loss(target, input, reduction="none"))  # symmetric
    assert loss(input, input).item() == 0.0
    # translation invariance: only the residual matters
    torch.testing.assert_close(loss(input + 3.0, target + 3.0), loss(input, target), rtol=1e-9, atol=1e-9)


@given(finite_arrays(bound=1e2))
def test_mse_is_l1_squared_for_one_element(arrays):
    input, target = (torch.from_numpy(a).flatten()[:1] for a in arrays)
    torch.testing.assert_close(mse_loss(input, target), l1_loss(input, target) ** 2)
