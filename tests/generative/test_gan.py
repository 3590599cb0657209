"""Tests of book/generative/gan.md: gan_discriminator_loss, gan_generator_loss and the toy helpers."""

import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lossbook.nn
from lossbook import gan_discriminator_loss, gan_generator_loss
from lossbook.generative.gan import mlp, ring_centers, ring_coverage, ring_of_gaussians

REDUCTIONS = ["none", "mean", "sum"]
SHAPES = [(1,), (7,), (4, 3), (2, 3, 4)]


def softplus_numpy(z):
    """log(1 + e^z) in float64 without overflow."""
    z = np.asarray(z, np.float64)
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def reduce_numpy(loss, reduction):
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean() if loss.size else 0.0}[reduction]


def pair(shape, scale=4.0, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return tuple((scale * torch.randn(shape, dtype=torch.float64, generator=g)).to(device) for _ in range(2))


# --- oracles -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_discriminator_matches_numpy_and_torch(shape, reduction, device):
    real, fake = pair(shape, seed=1, device=device)
    expected = reduce_numpy(softplus_numpy(-real.cpu().numpy()) + softplus_numpy(fake.cpu().numpy()), reduction)
    ours = gan_discriminator_loss(real, fake, reduction=reduction)
    np.testing.assert_allclose(ours.cpu().numpy(), expected, rtol=1e-13, atol=1e-15)
    if reduction != "none":
        torch_form = F.binary_cross_entropy_with_logits(real, torch.ones_like(real), reduction=reduction) + \
            F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake), reduction=reduction)
        torch.testing.assert_close(ours, torch_form, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("non_saturating", [True, False])
def test_generator_matches_numpy_and_torch(shape, reduction, non_saturating, device):
    _, fake = pair(shape, seed=2, device=device)
    z = fake.cpu().numpy()
    per = softplus_numpy(-z) if non_saturating else -softplus_numpy(z)
    ours = gan_generator_loss(fake, non_saturating=non_saturating, reduction=reduction)
    np.testing.assert_allclose(ours.cpu().numpy(), reduce_numpy(per, reduction), rtol=1e-13, atol=1e-15)
    target = torch.ones_like(fake) if non_saturating else torch.zeros_like(fake)
    bce = F.binary_cross_entropy_with_logits(fake, target, reduction=reduction)
    torch.testing.assert_close(ours, bce if non_saturating else -bce, rtol=1e-12, atol=1e-14)


def test_closed_forms():
    zero = torch.zeros(6, dtype=torch.float64)
    assert math.isclose(gan_discriminator_loss(zero, zero).item(), math.log(4), rel_tol=1e-15)
    assert math.isclose(gan_generator_loss(zero).item(), math.log(2), rel_tol=1e-15)
    assert math.isclose(gan_generator_loss(zero, non_saturating=False).item(), -math.log(2), rel_tol=1e-15)
    # the docstring's numbers
    real, fake = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([-3.0, 0.0, 1.0])
    expected = torch.tensor([0.1755, 1.3863, 2.6265])
    torch.testing.assert_close(gan_discriminator_loss(real, fake, reduction="none"), expected, atol=1e-4, rtol=0)


def test_optimal_discriminator_and_jensen_shannon():
    """Equations (4) and (5) by quadrature: L_D(D*) = log 4 - 2 JS, and D* beats its perturbations."""
    x = torch.linspace(-15, 15, 300_001, dtype=torch.float64)
    dx = (x[1] - x[0]).item()

    def gaussian(mean, std):
        return torch.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))

    p_r, p_g = gaussian(0.0, 1.0), gaussian(1.0, 1.3)
    best = torch.log(p_r) - torch.log(p_g)
    m = (p_r + p_g) / 2
    js = 0.5 * ((p_r * torch.log(p_r / m)).sum() + (p_g * torch.log(p_g / m)).sum()).item() * dx

    def loss(logits):  # expectations as weighted sums: reduction "none" then the integral
        per_point = gan_discriminator_loss(logits, logits, reduction="none")  # shape check only
        assert per_point.shape == logits.shape
        return ((p_r * F.softplus(-logits) + p_g * F.softplus(logits)).sum() * dx).item()

    assert math.isclose(loss(best), math.log(4) - 2 * js, rel_tol=1e-9)
    for other in (best + 0.3, best - 0.3, 1.2 * best, 0.9 * best):
        assert loss(other) > loss(best)


# --- gradients ----------------------------------------------------------------------------------


def test_hand_derived_gradients():
    """(3): dL_D/dz_r = sigma(z_r) - 1, dL_D/dz_f = sigma(z_f); (6): -sigma(z_f); (7): sigma(z_f) - 1."""
    real, fake = pair((50,), scale=8.0, seed=3)
    real.requires_grad_()
    fake.requires_grad_()
    grad_real, grad_fake = torch.autograd.grad(gan_discriminator_loss(real, fake, reduction="sum"), (real, fake))
    torch.testing.assert_close(grad_real, torch.sigmoid(real.detach()) - 1, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(grad_fake, torch.sigmoid(fake.detach()), rtol=1e-12, atol=1e-15)
    (ns,) = torch.autograd.grad(gan_generator_loss(fake, reduction="sum"), fake)
    (sat,) = torch.autograd.grad(gan_generator_loss(fake, non_saturating=False, reduction="sum"), fake)
    torch.testing.assert_close(ns, torch.sigmoid(fake.detach()) - 1, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(sat, -torch.sigmoid(fake.detach()), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ns / sat, torch.exp(-fake.detach()), rtol=1e-10, atol=0)  # (8)


# --- properties ------------------------------------------------------------------------------


def logit_pairs(bound=80.0):
    return hnp.array_shapes(min_dims=1, max_dims=3, max_side=5).flatmap(
        lambda shape: st.tuples(*(hnp.arrays("float64", shape, elements=st.floats(-bound, bound)) for _ in range(2)))
    )


@given(logit_pairs())
def test_properties(arrays):
    real, fake = (torch.from_numpy(a) for a in arrays)
    d = gan_discriminator_loss(real, fake, reduction="none")
    ns = gan_generator_loss(fake, reduction="none")
    sat = gan_generator_loss(fake, non_saturating=False, reduction="none")
    assert (d >= 0).all() and (ns >= 0).all() and (sat <= 0).all()
    assert torch.isfinite(d).all() and torch.isfinite(ns).all() and torch.isfinite(sat).all()
    # the discriminator's loss is the generator's two forms: NS on the real logits minus SAT on the fakes
    torch.testing.assert_close(d, gan_generator_loss(real, reduction="none") - sat)
    # swapping the roles: real <-> fake with flipped signs changes nothing
    torch.testing.assert_close(gan_discriminator_loss(-fake, -real, reduction="none"), d)
    # softplus(-z) - softplus(z) = -z
    torch.testing.assert_close(ns + sat, -fake)


def test_unequal_batches_by_the_documented_identity():
    real, fake = torch.randn(5, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="real_logits and fake_logits must have the same shape"):
        gan_discriminator_loss(real, fake)
    combined = gan_generator_loss(real) - gan_generator_loss(fake, non_saturating=False)
    expected = F.softplus(-real).mean() + F.softplus(fake).mean()
    torch.testing.assert_close(combined, expected)


# --- bad input, precision, modules ------------------------------------------------------------


def test_bad_input():
    z = torch.zeros(3)
    with pytest.raises(ValueError, match=r"real_logits and fake_logits must have the same shape, got \(3,\) and \(3, 1\)"):
        gan_discriminator_loss(z, z[:, None])
    with pytest.raises(TypeError, match="fake_logits must be a floating-point tensor, got dtype torch.int64"):
        gan_discriminator_loss(z, torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="fake_logits must be a torch.Tensor, got list"):
        gan_generator_loss([0.0, 1.0])
    with pytest.raises(TypeError, match="non_saturating must be True or False, got 0"):
        gan_generator_loss(z, non_saturating=0)
    with pytest.raises(TypeError, match="non_saturating must be True or False, got None"):
        lossbook.nn.GANGeneratorLoss(non_saturating=None)
    with pytest.raises(ValueError, match="reduction must be one of"):
        lossbook.nn.GANDiscriminatorLoss(reduction="batchmean")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_confident_logits_stay_finite(dtype, device):
    """Logits of +-100 (and +-1e4 where the dtype holds them): exact losses, finite gradients."""
    values = [-100.0, -20.0, 0.0, 20.0, 100.0] + ([-1e4, 1e4] if dtype != torch.float16 else [])
    z = torch.tensor(values, dtype=dtype, device=device, requires_grad=True)
    d = gan_discriminator_loss(z, z.flip(0), reduction="none")
    ns = gan_generator_loss(z, reduction="none")
    sat = gan_generator_loss(z, non_saturating=False, reduction="none")
    assert d.dtype == ns.dtype == torch.float32
    exact = z.detach().double().cpu()  # the values the dtype holds
    torch.testing.assert_close(ns.double().cpu(), F.softplus(-exact), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(sat.double().cpu(), -F.softplus(exact), rtol=1e-6, atol=1e-6)
    (d.sum() + ns.sum() + sat.sum()).backward()
    assert torch.isfinite(z.grad).all()


def test_modules_read_options_at_call_time():
    fake = torch.tensor([-3.0, 0.5, 2.0])
    criterion = lossbook.nn.GANGeneratorLoss()
    torch.testing.assert_close(criterion(fake), gan_generator_loss(fake))
    criterion.non_saturating = False
    torch.testing.assert_close(criterion(fake), gan_generator_loss(fake, non_saturating=False))
    assert "non_saturating=False" in repr(criterion)
    restored = pickle.loads(pickle.dumps(criterion))
    torch.testing.assert_close(restored(fake), criterion(fake))
    real = torch.tensor([1.0, -1.0, 4.0])
    torch.testing.assert_close(lossbook.nn.GANDiscriminatorLoss(reduction="sum")(real, fake),
                               gan_discriminator_loss(real, fake, reduction="sum"))


# --- the toy of the Part ---------------------------------------------------------------------------


def test_ring_of_gaussians():
    state = torch.get_rng_state()
    x = ring_of_gaussians(8000, seed=3)
    assert torch.equal(state, torch.get_rng_state())  # the global generator is not touched
    assert torch.equal(x, ring_of_gaussians(8000, seed=3)) and not torch.equal(x, ring_of_gaussians(8000, seed=4))
    assert x.shape == (8000, 2) and x.dtype == torch.float32
    nearest, which = torch.cdist(x.double(), ring_centers(dtype=torch.float64)).min(dim=1)
    assert nearest.max() < 0.02 * 6  # every sample within 6 std of its centre
    shares = torch.bincount(which, minlength=8) / 8000
    assert (shares - 1 / 8).abs().max() < 0.02
    wide = ring_of_gaussians(4000, modes=3, radius=5.0, std=0.5, seed=0, dtype=torch.float64)
    assert wide.dtype == torch.float64 and abs(wide.norm(dim=1).mean().item() - 5.0) < 0.1


def test_ring_coverage():
    centers = ring_centers()
    assert ring_coverage(ring_of_gaussians(1000)) == (8, 1.0)
    two_modes = centers[torch.tensor([0, 3] * 50)] + 0.01
    assert ring_coverage(two_modes) == (2, 1.0)
    assert ring_coverage(torch.zeros(10, 2)) == (0, 0.0)
    one_stray = torch.cat([centers[:1].repeat(199, 1), centers[4:5]])  # 1 of 200 samples: below 1%
    assert ring_coverage(one_stray) == (1, 1.0)


def test_mlp():
    state = torch.get_rng_state()
    a, b = mlp(3, 2, hidden=5, layers=3, seed=1), mlp(3, 2, hidden=5, layers=3, seed=1)
    assert torch.equal(state, torch.get_rng_state())
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert len([m for m in a if isinstance(m, torch.nn.Linear)]) == 4
    assert a(torch.zeros(4, 3)).shape == (4, 2)
    assert not torch.equal(mlp(3, 2, seed=2)[0].weight, mlp(3, 2, seed=1)[0].weight)
