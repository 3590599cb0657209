"""Tests of book/image/ssim.md: ssim, ssim_loss, ms_ssim, ms_ssim_loss and the Gaussian helpers."""

import numpy as np
import pytest
import pytorch_msssim
import scipy.ndimage
import skimage.metrics
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import lossbook
from lossbook import ms_ssim, ms_ssim_loss, ssim, ssim_loss
from lossbook.image.ssim import MS_SSIM_WEIGHTS, gaussian_filter, gaussian_window, ms_ssim_minimum_side

REDUCTIONS = ["none", "mean", "sum"]


def pair(shape, L=1.0, noise=0.2, seed=0, dtype=torch.float64, device="cpu"):
    """A random target in [0, L] and a noisy input, clipped to [0, L]."""
    g = torch.Generator().manual_seed(seed)
    target = L * torch.rand(shape, generator=g, dtype=torch.float64)
    input = (target + noise * L * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, L)
    return input.to(device, dtype), target.to(device, dtype)


def reduce(values, reduction):
    return values if reduction == "none" else values.sum() if reduction == "sum" else values.mean()


def msssim_window(channels, win_size=11, sigma=1.5):
    """Our float64 window in pytorch_msssim's layout (its own is built in float32)."""
    return gaussian_window(win_size, sigma, dtype=torch.float64).view(1, 1, 1, -1).repeat(channels, 1, 1, 1)


def skimage_ssim(input, target, L, sigma=1.5, k1=0.01, k2=0.03):
    return torch.tensor([skimage.metrics.structural_similarity(
        a.cpu().numpy(), b.cpu().numpy(), data_range=L, gaussian_weights=True, sigma=sigma, K1=k1, K2=k2,
        use_sample_covariance=False, channel_axis=0) for a, b in zip(input, target)], dtype=torch.float64)


# --- oracles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1, 11, 11), (3, 3, 24, 31), (2, 2, 40, 17)])
@pytest.mark.parametrize("L", [1.0, 255.0])
@pytest.mark.parametrize("sigma,k1,k2", [(1.5, 0.01, 0.03), (1.0, 0.05, 0.1), (2.0, 0.01, 0.03)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ssim_equals_skimage(shape, L, sigma, k1, k2, reduction, device):
    input, target = pair(shape, L, seed=1, device=device)
    win_size = 2 * int(3.5 * sigma + 0.5) + 1  # scipy's truncate=3.5
    if min(shape[-2:]) < win_size:
        pytest.skip("image smaller than the window")
    expected = reduce(skimage_ssim(input, target, L, sigma, k1, k2), reduction)
    ours = ssim(input, target, data_range=L, win_size=win_size, sigma=sigma, k1=k1, k2=k2, reduction=reduction)
    torch.testing.assert_close(ours.cpu(), expected, rtol=1e-12, atol=1e-12)
    loss = ssim_loss(input, target, data_range=L, win_size=win_size, sigma=sigma, k1=k1, k2=k2, reduction=reduction)
    torch.testing.assert_close(loss.cpu(), reduce(1 - skimage_ssim(input, target, L, sigma, k1, k2), reduction),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,win_size,sigma", [((2, 3, 32, 32), 11, 1.5), ((3, 1, 20, 25), 7, 1.0), ((1, 2, 9, 9), 3, 0.5)])
def test_ssim_equals_pytorch_msssim(shape, win_size, sigma, device):
    input, target = pair(shape, seed=2, device=device)
    theirs = pytorch_msssim.ssim(input, target, data_range=1.0, win=msssim_window(shape[1], win_size, sigma).to(device),
                                 K=(0.02, 0.05), size_average=False)
    ours = ssim(input, target, data_range=1.0, win_size=win_size, sigma=sigma, k1=0.02, k2=0.05, reduction="none")
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    # with pytorch_msssim's own float32 window the two differ by the window's rounding only
    default = pytorch_msssim.ssim(input, target, data_range=1.0, size_average=False) if win_size == 11 else None
    if default is not None:
        torch.testing.assert_close(ssim(input, target, data_range=1.0, reduction="none"), default, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape,options", [
    ((2, 3, 161, 161), {}),
    ((1, 2, 176, 165), {"k1": 0.02}),
    ((2, 1, 70, 67), {"win_size": 5, "sigma": 1.0, "weights": (0.2, 0.3, 0.5)}),
    ((1, 1, 100, 97), {"win_size": 3, "weights": (0.1, 0.2, 0.3, 0.25, 0.15)}),
])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ms_ssim_equals_pytorch_msssim(shape, options, reduction, device):
    input, target = pair(shape, seed=3, device=device)
    window = msssim_window(shape[1], options.get("win_size", 11), options.get("sigma", 1.5)).to(device)
    theirs = pytorch_msssim.ms_ssim(input, target, data_range=1.0, win=window, weights=options.get("weights"),
                                    K=(options.get("k1", 0.01), 0.03), size_average=False)
    torch.testing.assert_close(ms_ssim(input, target, data_range=1.0, reduction=reduction, **options),
                               reduce(theirs, reduction), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ms_ssim_loss(input, target, data_range=1.0, reduction=reduction, **options),
                               reduce(1 - theirs, reduction), rtol=1e-12, atol=1e-12)


def test_ms_ssim_of_anticorrelated_images_is_clipped_like_pytorch_msssim():
    _, target = pair((2, 1, 170, 170), seed=4)
    inverted = 1 - target
    theirs = pytorch_msssim.ms_ssim(inverted, target, data_range=1.0, win=msssim_window(1), size_average=False)
    torch.testing.assert_close(ms_ssim(inverted, target, data_range=1.0, reduction="none"), theirs)
    assert (theirs == 0).all()


def test_kornia_valid_padding_is_ours_and_its_loss_is_half():
    kornia = pytest.importorskip("kornia")
    input, target = pair((2, 3, 40, 40), seed=5)
    valid = kornia.metrics.ssim(input, target, 11, padding="valid").mean(dim=(1, 2, 3))
    torch.testing.assert_close(ssim(input, target, data_range=1.0, reduction="none"), valid, rtol=0, atol=1e-9)
    half = kornia.losses.ssim_loss(input, target, 11, padding="valid")
    torch.testing.assert_close(ssim_loss(input, target, data_range=1.0) / 2, half, rtol=0, atol=1e-9)


def test_gaussian_helpers_equal_scipy():
    for sigma in [0.8, 1.5, 2.0]:
        radius = int(3.5 * sigma + 0.5)
        delta = np.zeros(2 * radius + 1)
        delta[radius] = 1.0
        expected = scipy.ndimage.gaussian_filter1d(delta, sigma, truncate=3.5)
        np.testing.assert_allclose(gaussian_window(2 * radius + 1, sigma, dtype=torch.float64).numpy(), expected,
                                   rtol=1e-12)
    images, _ = pair((2, 3, 20, 23), seed=6)
    window = gaussian_window(11, 1.5, dtype=torch.float64)
    expected = scipy.ndimage.gaussian_filter(images.numpy(), sigma=(0, 0, 1.5, 1.5), truncate=3.5, mode="mirror")
    np.testing.assert_allclose(gaussian_filter(images, window, padding="reflect").numpy(), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gaussian_filter(images, window).numpy(), expected[..., 5:-5, 5:-5], rtol=1e-12, atol=1e-14)
    assert gaussian_window(7, 1.0).dtype == torch.float32 and abs(gaussian_window(7, 1.0).sum().item() - 1) < 1e-6


# --- gradients --------------------------------------------------------------------------------------


def test_hand_derived_gradient():
    """Equation (7): the gradient is three transposed filterings of the maps (6)."""
    input, target = pair((1, 1, 24, 21), seed=7)
    kernel = (lambda w: (w[:, None] * w[None, :])[None, None])(gaussian_window(11, 1.5, dtype=torch.float64))
    mean = lambda z: F.conv2d(z, kernel)  # noqa: E731
    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = mean(input), mean(target)
    var_a, var_b, cov = mean(input**2) - mu_a**2, mean(target**2) - mu_b**2, mean(input * target) - mu_a * mu_b
    A, B, D, E = 2 * mu_a * mu_b + c1, 2 * cov + c2, mu_a**2 + mu_b**2 + c1, var_a + var_b + c2
    S = A * B / (D * E)
    a = S * (2 * mu_b / A - 2 * mu_b / B - 2 * mu_a / D + 2 * mu_a / E)
    b, g = 2 * S / B, S / E
    spread = lambda m: F.conv_transpose2d(m, kernel)  # noqa: E731
    by_hand = (spread(a) + target * spread(b) - 2 * input * spread(g)) / S.numel()
    leaf = input.clone().requires_grad_()
    (autograd,) = torch.autograd.grad(ssim(leaf, target, data_range=1.0), leaf)
    torch.testing.assert_close(autograd, by_hand, rtol=1e-10, atol=1e-16)


def test_gradcheck_of_the_metrics_with_respect_to_both_images():
    input, target = pair((2, 2, 9, 8), seed=8)
    input.requires_grad_()
    target.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: ssim(a, b, data_range=1.0, win_size=5, reduction="none"), (input, target))
    assert torch.autograd.gradcheck(
        lambda a, b: ms_ssim(a, b, data_range=1.0, win_size=3, weights=(0.5, 0.5), reduction="none"), (input, target))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_no_nan_gradient_where_a_contrast_term_is_negative(dtype, device):
    """pytorch-msssim issues 7 and 11: negative cs raised to a fractional power."""
    _, target = pair((2, 1, 170, 170), seed=9)
    inverted = (1 - target).to(device, dtype).requires_grad_()
    loss = ms_ssim_loss(inverted, target.to(device, dtype), data_range=1.0)
    loss.backward()
    assert loss.dtype == torch.float32 and loss.item() == 1.0
    assert torch.isfinite(inverted.grad).all() and (inverted.grad == 0).all()
    partly = target.clone()
    partly[..., :85, :] = 1 - partly[..., :85, :]  # some windows anti-correlated, others not
    leaf = partly.to(device, dtype).requires_grad_()
    ms_ssim_loss(leaf, target.to(device, dtype), data_range=1.0).backward()
    assert torch.isfinite(leaf.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_8_bit_images(dtype, device):
    input, target = pair((2, 3, 64, 64), L=255.0, seed=10)
    input, target = torch.round(input), torch.round(target)
    reference = ssim(input, target, data_range=255.0, reduction="none")
    low = ssim(input.to(device, dtype), target.to(device, dtype), data_range=255.0, reduction="none")
    assert low.dtype == torch.float32
    torch.testing.assert_close(low.cpu().double(), reference, rtol=0, atol=1e-5)  # 8-bit values are exact in half
    with torch.autocast(device_type=device.type, dtype=dtype):
        assert torch.isfinite(ssim_loss(input.float().to(device), target.float().to(device), data_range=255.0))


# --- properties -------------------------------------------------------------------------------------

images = st.tuples(st.integers(1, 3), st.integers(1, 2), st.integers(11, 16), st.integers(11, 16), st.integers(0, 10**6))


@settings(max_examples=25)
@given(images, st.sampled_from([1.0, 255.0]))
def test_properties(spec, L):
    n, c, h, w, seed = spec
    input, target = pair((n, c, h, w), L, seed=seed)
    values = ssim(input, target, data_range=L, reduction="none")
    assert values.shape == (n,) and (values <= 1 + 1e-12).all() and (values >= -1 - 1e-12).all()
    torch.testing.assert_close(ssim(target, input, data_range=L, reduction="none"), values)  # symmetric
    torch.testing.assert_close(ssim(target, target, data_range=L, reduction="none"), torch.ones(n, dtype=torch.float64))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(ssim(input[order], target[order], data_range=L, reduction="none"), values[order])
    # the same images on another scale with the data range scaled alike
    torch.testing.assert_close(ssim(3 * input, 3 * target, data_range=3 * L, reduction="none"), values)
    ms = ms_ssim(input, target, data_range=L, win_size=3, weights=(0.5, 0.5), reduction="none")
    assert ((ms >= 0) & (ms <= 1 + 1e-12)).all()


def test_ms_ssim_with_one_scale_is_clipped_ssim():
    input, target = pair((3, 2, 20, 20), seed=11)
    torch.testing.assert_close(ms_ssim(input, target, data_range=1.0, weights=(1.0,), reduction="none"),
                               ssim(input, target, data_range=1.0, reduction="none").clamp(min=0))


def test_empty_batch_gives_a_connected_zero():
    input, target = pair((0, 3, 16, 16))
    input.requires_grad_()
    for fn in (ssim, ssim_loss):
        value = fn(input, target, data_range=1.0)
        assert value.item() == 0 and value.requires_grad
    assert ms_ssim(input, target, data_range=1.0, win_size=3, weights=(1.0, 1.0)).item() == 0
    assert ssim(input, target, data_range=1.0, reduction="none").shape == (0,)


# --- refusals ------------------------------------------------------------------------------------


def test_refusals():
    input, target = pair((2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"must have shape \(N, C, H, W\), got \(3, 16, 16\)"):
        ssim(input[0], target[0], data_range=1.0)
    with pytest.raises(ValueError, match="smaller than the window of 11 taps; use a smaller win_size"):
        ssim(input[..., :10], target[..., :10], data_range=1.0)
    with pytest.raises(ValueError, match="ms_ssim needs images larger than .* = 160 pixels on each side"):
        ms_ssim(input, target, data_range=1.0)
    with pytest.raises(TypeError, match="data_range"):
        ssim(input, target)
    with pytest.raises(TypeError, match="target must be a floating-point tensor"):
        ssim(input, target.long(), data_range=1.0)
    with pytest.raises(ValueError, match="padding must be 'valid' or 'reflect'"):
        gaussian_filter(input, gaussian_window(), padding="same")
    with pytest.raises(ValueError, match="window must be a 1-D tensor"):
        gaussian_filter(input, torch.ones(3, 3))
    with pytest.raises(ValueError, match="win_size must be an odd positive int, got 0"):
        gaussian_window(0, 1.0)
    with pytest.raises(ValueError, match="data_range must be a positive number"):
        lossbook.nn.SSIMLoss(data_range=-1.0)
    assert ms_ssim_minimum_side() == 161 and ms_ssim_minimum_side(7, 3) == 25 and len(MS_SSIM_WEIGHTS) == 5


def test_module_defaults_and_call_time_options():
    input, target = pair((2, 3, 16, 16))
    criterion = lossbook.nn.SSIMLoss(data_range=1.0)
    torch.testing.assert_close(criterion(input, target), ssim_loss(input, target, data_range=1.0))
    criterion.win_size, criterion.sigma = 7, 1.0
    torch.testing.assert_close(criterion(input, target), ssim_loss(input, target, data_range=1.0, win_size=7, sigma=1.0))
    ms = lossbook.nn.MSSSIMLoss(data_range=1.0, win_size=3, weights=(0.4, 0.6))
    torch.testing.assert_close(ms(input, target), ms_ssim_loss(input, target, data_range=1.0, win_size=3, weights=(0.4, 0.6)))
