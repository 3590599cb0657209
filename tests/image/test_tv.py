"""Tests of book/image/tv.md: tv_loss (anisotropic, isotropic, weighted) and its module."""

import io
import pickle

import kornia
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.restoration import denoise_tv_chambolle

import lossbook
import lossbook.nn
from lossbook import tv_loss

REDUCTIONS = ["none", "mean", "sum"]
SHAPES = [(1, 1, 5, 5), (3, 3, 8, 11), (2, 1, 1, 7), (2, 2, 6, 1), (2, 2, 3, 4, 5)]


def random_images(shape, seed=0, dtype=torch.float64, device="cpu"):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, dtype=torch.float64, generator=generator).to(device, dtype)


def tv_numpy(img, weight=None, isotropic=False):
    """(2), (3) of the chapter in float64 NumPy, one TV per image, loops over nothing."""
    img = np.asarray(img, np.float64)
    dv = np.zeros_like(img)
    dh = np.zeros_like(img)
    dv[..., :-1, :] = img[..., 1:, :] - img[..., :-1, :]
    dh[..., :, :-1] = img[..., :, 1:] - img[..., :, :-1]
    per_pixel = np.sqrt(dv**2 + dh**2) if isotropic else np.abs(dv) + np.abs(dh)
    if weight is not None:
        per_pixel = np.broadcast_to(np.asarray(weight, np.float64), img.shape) * per_pixel
    return per_pixel.reshape(img.shape[0], -1).sum(axis=1)


# --- oracles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_anisotropic_equals_kornia_summed_over_channels(shape, device):
    img = random_images(shape, device=device)
    ours_input, theirs_input = img.clone().requires_grad_(), img.clone().requires_grad_()
    ours = tv_loss(ours_input, reduction="none")
    theirs = kornia.losses.total_variation(theirs_input, reduction="sum").flatten(1).sum(1)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    (ours * torch.arange(1.0, shape[0] + 1, dtype=ours.dtype, device=device)).sum().backward()
    (theirs * torch.arange(1.0, shape[0] + 1, dtype=ours.dtype, device=device)).sum().backward()
    torch.testing.assert_close(ours_input.grad, theirs_input.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("isotropic", [False, True])
@pytest.mark.parametrize("weight_kind", ["none", "full", "map", "channel"])
def test_matches_numpy_for_every_option(shape, isotropic, weight_kind, device):
    img = random_images(shape, seed=1)
    weight = {"none": None, "full": random_images(shape, seed=2), "map": random_images(shape[-2:], seed=3),
              "channel": random_images((1, shape[1], *[1] * (len(shape) - 4), *shape[-2:]), seed=4)}[weight_kind]
    expected = tv_numpy(img.numpy(), None if weight is None else weight.numpy(), isotropic)
    to = (lambda t: None if t is None else t.to(device))  # noqa: E731
    for reduction in REDUCTIONS:
        ours = tv_loss(img.to(device), weight=to(weight), isotropic=isotropic, reduction=reduction).cpu().numpy()
        reduced = {"none": expected, "mean": expected.mean(), "sum": expected.sum()}[reduction]
        np.testing.assert_allclose(ours, reduced, rtol=1e-12, atol=1e-12)


def test_worked_examples():
    img = torch.tensor([[[[0.0, 1.0], [1.0, 3.0]]]], dtype=torch.float64)
    assert tv_loss(img).item() == 6.0
    assert abs(tv_loss(img, isotropic=True).item() - (2**0.5 + 4)) < 1e-12
    assert tv_loss(img, weight=torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)).item() == 2.0
    # a monotone row: the TV is the total rise, a step or a ramp
    assert tv_loss(torch.tensor([[[[0.0, 0.0, 1.0, 1.0]]]])).item() == 1.0
    assert tv_loss(torch.tensor([[[[0.0, 0.25, 0.5, 1.0]]]])).item() == 1.0


def test_isotropic_rof_matches_skimage_chambolle():
    """Minimizing 1/2 ||u - f||^2 + lambda TV_2(u) by gradient descent reaches Chambolle's solution."""
    generator = torch.Generator().manual_seed(5)
    clean = torch.zeros(1, 1, 24, 24, dtype=torch.float64)
    clean[..., 6:18, 4:14] = 1.0
    noisy = clean + 0.2 * torch.randn(clean.shape, generator=generator, dtype=torch.float64)
    lam = 0.3
    u = noisy.clone().requires_grad_()
    optimizer = torch.optim.Adam([u], lr=0.02)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 600)
    for _ in range(600):
        optimizer.zero_grad()
        (0.5 * (u - noisy).pow(2).sum() + lam * tv_loss(u, isotropic=True)).backward()
        optimizer.step()
        schedule.step()
    reference = torch.tensor(denoise_tv_chambolle(noisy[0, 0].numpy(), weight=lam, eps=1e-8, max_num_iter=5000))
    energy = lambda v: 0.5 * (v - noisy[0, 0]).pow(2).sum() + lam * tv_loss(v[None, None], isotropic=True)  # noqa: E731
    assert energy(u.detach()[0, 0]) <= energy(reference) * 1.001
    assert (u.detach()[0, 0] - reference).abs().max() < 0.02


# --- gradients -----------------------------------------------------------------------------------


def test_anisotropic_gradient_is_the_negative_divergence_of_the_signs():
    img = random_images((2, 3, 6, 7), seed=6).requires_grad_()
    weight = random_images((2, 3, 6, 7), seed=7)
    (gradient,) = torch.autograd.grad(tv_loss(img, weight=weight, reduction="sum"), img)
    x = img.detach()
    sv = torch.zeros_like(x)
    sh = torch.zeros_like(x)
    sv[..., :-1, :] = weight[..., :-1, :] * (x[..., 1:, :] - x[..., :-1, :]).sign()
    sh[..., :, :-1] = weight[..., :, :-1] * (x[..., :, 1:] - x[..., :, :-1]).sign()
    expected = -sv - sh
    expected[..., 1:, :] += sv[..., :-1, :]
    expected[..., :, 1:] += sh[..., :, :-1]
    torch.testing.assert_close(gradient, expected)


def test_weight_gradient_and_gradcheck():
    img = random_images((2, 2, 5, 6), seed=8).requires_grad_()
    for weight in [random_images((2, 2, 5, 6), seed=9), random_images((5, 6), seed=10)]:
        weight = weight.requires_grad_()
        assert torch.autograd.gradcheck(lambda x, w: tv_loss(x, weight=w, reduction="none"), (img, weight))
        assert torch.autograd.gradcheck(lambda x, w: tv_loss(x, weight=w, isotropic=True), (img, weight))


def test_isotropic_gradient_is_finite_on_constant_patches():
    img = torch.full((2, 3, 8, 8), 0.5, dtype=torch.float32)
    img[0, :, 4:, 4:] = 0.9
    for dtype in [torch.float32, torch.float16, torch.bfloat16]:
        x = img.to(dtype).detach().clone().requires_grad_()
        value = tv_loss(x, isotropic=True)
        value.backward()
        assert value.dtype == torch.float32 and torch.isfinite(value)
        assert torch.isfinite(x.grad).all() and x.grad.dtype == dtype
        assert (x.grad[1] == 0).all()  # a constant image: the subgradient 0
    assert tv_loss(img[1:], isotropic=True).item() == 0.0


def test_second_backward_through_the_function():
    """The closed-form backward is differentiable: Hessian-vector products exist (zero for TV_1)."""
    img = random_images((2, 1, 5, 5), seed=11).requires_grad_()
    (gradient,) = torch.autograd.grad(tv_loss(img), img, create_graph=True)
    (second,) = torch.autograd.grad((gradient * torch.ones_like(gradient)).sum(), img, allow_unused=True,
                                    materialize_grads=True)
    assert (second == 0).all()


# --- properties ----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(-10, 10), scale=st.floats(0.01, 100.0))
def test_properties(seed, shift, scale):
    img = random_images((3, 2, 5, 6), seed=seed)
    anisotropic = tv_loss(img, reduction="none")
    isotropic = tv_loss(img, isotropic=True, reduction="none")
    # invariant to a constant shift, positively homogeneous
    torch.testing.assert_close(tv_loss(img + shift, reduction="none"), anisotropic)
    torch.testing.assert_close(tv_loss(scale * img, reduction="none"), scale * anisotropic)
    torch.testing.assert_close(tv_loss(scale * img, isotropic=True, reduction="none"), scale * isotropic)
    # TV_2 <= TV_1 <= sqrt(2) TV_2
    assert (isotropic <= anisotropic + 1e-12).all() and (anisotropic <= 2**0.5 * isotropic + 1e-12).all()
    # invariant to flips; the anisotropic one also to transposition
    torch.testing.assert_close(tv_loss(img.flip(-1), reduction="none"), anisotropic)
    torch.testing.assert_close(tv_loss(img.flip(-2), reduction="none"), anisotropic)
    torch.testing.assert_close(tv_loss(img.transpose(-1, -2), reduction="none"), anisotropic)
    # unit weights change nothing; weights scale it
    torch.testing.assert_close(tv_loss(img, weight=torch.ones(5, 6, dtype=img.dtype), reduction="none"), anisotropic)
    torch.testing.assert_close(tv_loss(img, weight=torch.full((5, 6), scale, dtype=img.dtype), reduction="none"),
                               scale * anisotropic)
    # the per-image sums add up over the channels
    torch.testing.assert_close(anisotropic, tv_loss(img[:, :1], reduction="none") + tv_loss(img[:, 1:], reduction="none"))


def test_constant_images_have_zero_tv_and_a_zero_gradient():
    img = torch.full((2, 3, 4, 5), 0.3, requires_grad=True)
    for isotropic in [False, True]:
        value = tv_loss(img, isotropic=isotropic)
        assert value.item() == 0.0
        (gradient,) = torch.autograd.grad(value, img)
        assert (gradient == 0).all()


# --- refusals ------------------------------------------------------------------------------------


def test_refusals():
    img = random_images((2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"img must have shape \(N, C, H, W\) or \(N, \*, H, W\), got shape \(4, 5\)"):
        tv_loss(img[0, 0])
    with pytest.raises(TypeError, match="img must be a floating-point tensor, got dtype torch.uint8"):
        tv_loss((255 * img).to(torch.uint8))
    with pytest.raises(TypeError, match="img must be a torch.Tensor, got list"):
        tv_loss(img.tolist())
    with pytest.raises(ValueError, match=r"weight must broadcast to the shape of img \(2, 3, 4, 5\), got shape \(5, 4\)"):
        tv_loss(img, weight=torch.ones(5, 4, dtype=img.dtype))
    with pytest.raises(ValueError, match=r"weight must broadcast to the shape of img \(2, 3, 4, 5\), got shape \(4, 2, 3, 4, 5\)"):
        tv_loss(img, weight=torch.ones(4, 2, 3, 4, 5, dtype=img.dtype))  # would enlarge img
    with pytest.raises(ValueError, match="weight must be non-negative, got -1.0"):
        tv_loss(img, weight=-torch.ones(4, 5, dtype=img.dtype))
    with pytest.raises(TypeError, match="takes 1 positional argument"):
        tv_loss(img, torch.ones(4, 5))
    with lossbook.validate_args(False):  # the value check can be switched off
        tv_loss(img, weight=-torch.ones(4, 5, dtype=img.dtype))


def test_empty_batch_and_degenerate_sizes():
    empty = torch.zeros(0, 3, 4, 4, requires_grad=True)
    for isotropic in [False, True]:
        value = tv_loss(empty, isotropic=isotropic)
        assert value.item() == 0.0 and value.requires_grad
        value.backward()
        assert tv_loss(empty, isotropic=isotropic, reduction="none").shape == (0,)
    one_pixel = torch.rand(2, 1, 1, 1, requires_grad=True)
    assert (tv_loss(one_pixel, reduction="none") == 0).all()


# --- the module ----------------------------------------------------------------------------------


def test_module_holds_the_weight_as_a_buffer():
    weight = random_images((4, 5), seed=12)
    criterion = lossbook.nn.TVLoss(weight=weight, isotropic=True)
    assert "weight" in dict(criterion.named_buffers()) and "isotropic=True" in repr(criterion)
    img = random_images((2, 3, 4, 5), seed=13)
    torch.testing.assert_close(criterion(img), tv_loss(img, weight=weight, isotropic=True))
    buffer = io.BytesIO()
    torch.save(criterion.state_dict(), buffer)
    restored = lossbook.nn.TVLoss(weight=torch.zeros(4, 5, dtype=torch.float64), isotropic=True)
    restored.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    torch.testing.assert_close(restored(img), criterion(img))
    torch.testing.assert_close(pickle.loads(pickle.dumps(criterion))(img), criterion(img))
    criterion.isotropic = False  # read at call time
    torch.testing.assert_close(criterion(img), tv_loss(img, weight=weight))
    with pytest.raises(TypeError, match="isotropic must be True or False"):
        lossbook.nn.TVLoss(isotropic=None)


def test_float32_weight_with_half_images_computes_in_float32():
    img = random_images((2, 3, 6, 6), dtype=torch.float16)
    weight = random_images((6, 6), seed=14, dtype=torch.float64)
    value = tv_loss(img, weight=weight)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, tv_loss(img.float(), weight=weight.float()))
