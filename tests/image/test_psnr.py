"""Tests of book/image/psnr.md: the metric psnr and the loss psnr_loss = -psnr, per image."""

import math
import warnings

import kornia
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import peak_signal_noise_ratio
from torchmetrics.functional.image import peak_signal_noise_ratio as torchmetrics_psnr

import lossbook
import lossbook.nn
from lossbook import psnr, psnr_loss

REDUCTIONS = ["none", "mean", "sum"]
SHAPES = [(1, 1, 8, 8), (5, 1, 16, 12), (4, 3, 10, 10), (3, 64), (2, 3, 4, 5, 6)]


def noisy_pair(shape, data_range=1.0, dtype=torch.float64, seed=0, device="cpu"):
    """A target in [0, L] and an input with noise of a different strength in each image."""
    generator = torch.Generator().manual_seed(seed)
    target = data_range * torch.rand(shape, dtype=torch.float64, generator=generator)
    strength = data_range * torch.logspace(-3, -0.5, shape[0], dtype=torch.float64).view(-1, *[1] * (len(shape) - 1))
    input = target + strength * torch.randn(shape, dtype=torch.float64, generator=generator)
    return input.to(device, dtype), target.to(device, dtype)


def skimage_per_image(input, target, data_range):
    return np.array([peak_signal_noise_ratio(t, i, data_range=data_range)
                     for t, i in zip(target.double().cpu().numpy(), input.double().cpu().numpy())])


# --- oracles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("data_range", [1.0, 2.0, 255.0, 4095.0])
def test_psnr_matches_skimage_image_by_image(shape, data_range, device):
    input, target = noisy_pair(shape, data_range, device=device)
    expected = skimage_per_image(input, target, data_range)
    for reduction in REDUCTIONS:
        ours = psnr(input, target, data_range=data_range, reduction=reduction).cpu().numpy()
        loss = psnr_loss(input, target, data_range=data_range, reduction=reduction).cpu().numpy()
        reduced = {"none": expected, "mean": expected.mean(), "sum": expected.sum()}[reduction]
        np.testing.assert_allclose(ours, reduced, rtol=1e-12, atol=1e-11)
        np.testing.assert_allclose(loss, -reduced, rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_lower_precision_is_computed_in_float32(dtype):
    input, target = noisy_pair((4, 3, 16, 16), dtype=dtype, seed=1)
    expected = skimage_per_image(input.float(), target.float(), 1.0)
    for function, sign in [(psnr, 1), (psnr_loss, -1)]:
        value = function(input, target, data_range=1.0, reduction="none")
        assert value.dtype == torch.float32
        np.testing.assert_allclose(value.numpy(), sign * expected, rtol=1e-5, atol=1e-4)


def test_torchmetrics_per_image_equals_ours_and_pooled_is_lower():
    input, target = noisy_pair((6, 3, 16, 16), seed=2)
    ours = psnr(input, target, data_range=1.0)
    torch.testing.assert_close(torchmetrics_psnr(input, target, data_range=1.0, dim=(1, 2, 3)), ours)
    pooled = torchmetrics_psnr(input, target, data_range=1.0)
    torch.testing.assert_close(kornia.metrics.psnr(input, target, 1.0), pooled)
    assert pooled < ours - 1.0  # the errors differ a lot across the batch


def test_one_image_batch_equals_kornia_and_its_loss():
    input, target = noisy_pair((1, 3, 12, 12), seed=3)
    torch.testing.assert_close(psnr(input, target, data_range=1.0), kornia.metrics.psnr(input, target, 1.0))
    torch.testing.assert_close(psnr_loss(input, target, data_range=1.0), kornia.losses.psnr_loss(input, target, 1.0))


def test_worked_examples():
    target = torch.full((2, 1, 4, 4), 0.5, dtype=torch.float64)
    input = target + torch.tensor([0.1, 0.01], dtype=torch.float64).view(2, 1, 1, 1)
    torch.testing.assert_close(psnr(input, target, data_range=1.0, reduction="none"),
                               torch.tensor([20.0, 40.0], dtype=torch.float64))
    # one grey level everywhere in an 8-bit image: 20 log10 255
    one = psnr(torch.ones(1, 8, 8, dtype=torch.float64), torch.zeros(1, 8, 8, dtype=torch.float64), data_range=255.0)
    assert abs(one.item() - 20 * math.log10(255)) < 1e-12


# --- gradient ------------------------------------------------------------------------------------


def test_gradient_is_the_mse_gradient_over_the_mse():
    """Equation (3): d(-PSNR)/dx = 10 / (ln 10 MSE) * 2 (x - y) / n, per image."""
    input, target = noisy_pair((3, 2, 5, 5), seed=4)
    input.requires_grad_()
    (gradient,) = torch.autograd.grad(psnr_loss(input, target, data_range=1.0, reduction="sum"), input)
    residual = (input - target).detach()
    mse = residual.pow(2).mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(gradient, 10 / math.log(10) / mse * 2 / residual[0].numel() * residual)
    assert torch.autograd.gradcheck(lambda x: psnr_loss(x, target, data_range=2.0), (input,))
    assert torch.autograd.gradcheck(lambda x: psnr(x, target, data_range=2.0, reduction="none"), (input,))


def test_mean_gradient_weights_each_image_by_one_over_its_mse():
    input, target = noisy_pair((4, 1, 6, 6), seed=5)
    input.requires_grad_()
    (gradient,) = torch.autograd.grad(psnr_loss(input, target, data_range=1.0), input)
    (mse_gradient,) = torch.autograd.grad(((input - target) ** 2).mean(dim=(1, 2, 3)).sum(), input)
    mse = ((input - target) ** 2).mean(dim=(1, 2, 3), keepdim=True).detach()
    torch.testing.assert_close(gradient, 10 / math.log(10) / 4 * mse_gradient / mse)


# --- identical images, empty batches -------------------------------------------------------------


def test_identical_images_give_inf_psnr_and_a_finite_loss_with_zero_gradient():
    target = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(6))
    input = target.clone()
    input[1] += 0.1
    values = psnr(input, target, data_range=1.0, reduction="none")
    assert math.isinf(values[0].item()) and values[0] > 0 and math.isfinite(values[1].item())
    assert math.isinf(psnr(input, target, data_range=1.0).item())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert math.isinf(peak_signal_noise_ratio(target[0].numpy(), target[0].numpy(), data_range=1.0))
    input.requires_grad_()
    loss = psnr_loss(input, target, data_range=1.0, reduction="none")
    assert torch.isfinite(loss).all()
    assert abs(loss[0].item() - 10 * math.log10(torch.finfo(torch.float32).tiny)) < 1e-3
    torch.testing.assert_close(loss[1], -values[1])  # images 0 and 2 are identical
    loss.sum().backward()
    assert torch.isfinite(input.grad).all() and (input.grad[0] == 0).all() and (input.grad[2] == 0).all() and (input.grad[1] != 0).any()


@pytest.mark.parametrize("function", [psnr, psnr_loss])
def test_empty_batch_mean_is_connected_zero(function):
    input = torch.zeros(0, 3, 4, 4, requires_grad=True)
    value = function(input, torch.zeros(0, 3, 4, 4), data_range=1.0)
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert function(input, torch.zeros(0, 3, 4, 4), data_range=1.0, reduction="none").shape == (0,)


# --- properties ----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 1000.0), batch=st.integers(1, 6))
def test_properties(seed, scale, batch):
    input, target = noisy_pair((batch, 2, 5, 5), seed=seed)
    values = psnr(input, target, data_range=1.0, reduction="none")
    # scaling the images and the range together changes nothing
    torch.testing.assert_close(psnr(scale * input, scale * target, data_range=scale, reduction="none"), values)
    # symmetric in its two images
    torch.testing.assert_close(psnr(target, input, data_range=1.0, reduction="none"), values)
    # halving every error adds 20 log10 2 dB (the MSE falls by 4)
    halved = psnr(target + (input - target) / 2, target, data_range=1.0, reduction="none")
    torch.testing.assert_close(halved - values, torch.full_like(values, 20 * math.log10(2)))
    # Jensen (2): the mean of the PSNRs is at least the PSNR of the pooled MSE
    pooled = kornia.metrics.psnr(input, target, 1.0)
    assert psnr(input, target, data_range=1.0) >= pooled - 1e-9
    torch.testing.assert_close(psnr_loss(input, target, data_range=1.0, reduction="sum"), -values.sum())


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("function", [psnr, psnr_loss])
def test_refusals(function):
    input, target = noisy_pair((2, 1, 4, 4))
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'data_range'"):
        function(input, target)
    with pytest.raises(TypeError, match="takes 2 positional arguments"):
        function(input, target, 1.0)
    for bad, error, message in [(0.0, ValueError, "data_range must be a positive number, got 0.0"),
                                (-255, ValueError, "data_range must be a positive number, got -255"),
                                (float("nan"), ValueError, "data_range must be a positive number, got nan"),
                                (torch.tensor(1.0), TypeError, "data_range must be a number, got Tensor"),
                                (None, TypeError, "data_range must be a number, got NoneType")]:
        with pytest.raises(error, match=message):
            function(input, target, data_range=bad)
    with pytest.raises(TypeError, match="input must be a floating-point tensor, got dtype torch.uint8"):
        function((255 * input).to(torch.uint8), target, data_range=255.0)
    with pytest.raises(TypeError, match="target must be a floating-point tensor"):
        function(input, target.long(), data_range=1.0)
    with pytest.raises(ValueError, match="same shape"):
        function(input, target[:, :, :3], data_range=1.0)
    with pytest.raises(ValueError, match=r"shape \(N, \*\) with one image per row, got shape \(32,\)"):
        function(input.flatten(), target.flatten(), data_range=1.0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        function(input, target, data_range=1.0, reduction="batchmean")


def test_module_needs_the_data_range_and_refuses_bad_ones():
    with pytest.raises(TypeError, match="data_range"):
        lossbook.nn.PSNRLoss()
    with pytest.raises(ValueError, match="data_range must be a positive number"):
        lossbook.nn.PSNRLoss(data_range=0.0)
    criterion = lossbook.nn.PSNRLoss(data_range=255.0)
    assert "data_range=255.0" in repr(criterion)
    input, target = noisy_pair((3, 1, 4, 4), data_range=255.0)
    torch.testing.assert_close(criterion(input, target), -psnr(input, target, data_range=255.0))
    criterion.data_range = 1.0  # read at call time
    torch.testing.assert_close(criterion(input, target), psnr_loss(input, target, data_range=1.0))


# --- the metric under tracing (the battery covers the loss) -------------------------------------------


def test_metric_compiles_and_vmaps():
    input, target = noisy_pair((4, 3, 8, 8), seed=7)
    torch._dynamo.reset()
    compiled = torch.compile(lambda a, b: psnr(a, b, data_range=1.0, reduction="none"), fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(input, target), psnr(input, target, data_range=1.0, reduction="none"))
    stacked = torch.stack([input, input.flip(0)]), torch.stack([target, target.flip(0)])
    batched = torch.func.vmap(lambda a, b: psnr(a, b, data_range=1.0))(*stacked)
    torch.testing.assert_close(batched, torch.stack([psnr(a, b, data_range=1.0) for a, b in zip(*stacked)]))


def test_psnr_is_a_metric_in_the_api():
    assert "psnr" in lossbook.__all__ and "psnr_loss" in lossbook.__all__
    assert not hasattr(psnr, "nn_module_name") and psnr.oracle.startswith("skimage")
    assert psnr_loss.nn_module_name == "PSNRLoss"
