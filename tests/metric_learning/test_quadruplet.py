"""Tests of book/metric_learning/quadruplet.md: quadruplet_loss (Chen et al. 2017, squared distances)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lossbook
import lossbook.nn
from lossbook import quadruplet_loss

REDUCTIONS = ["none", "mean", "sum"]
MARGINS = [(1.0, 0.5), (0.0, 0.0), (2.0, 3.0), (0.25, 0.1)]


def random_quadruplets(n=12, dim=3, seed=0, dtype=torch.float64, device="cpu"):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(n, dim, dtype=dtype, generator=generator)
    p = a + 0.7 * torch.randn(n, dim, dtype=dtype, generator=generator)
    n1, n2 = (1.2 * torch.randn(n, dim, dtype=dtype, generator=generator) for _ in range(2))
    return tuple(t.to(device) for t in (a, p, n1, n2))


def quadruplet_numpy(a, p, n1, n2, margin1, margin2):
    """Chen et al. (2017), one quadruplet at a time, squared Euclidean distances, float64."""
    out = []
    for h_a, h_p, h_n1, h_n2 in zip(*(np.asarray(t, dtype=np.float64) for t in (a, p, n1, n2))):
        d_ap, d_an, d_nn = np.sum((h_a - h_p) ** 2), np.sum((h_a - h_n1) ** 2), np.sum((h_n1 - h_n2) ** 2)
        out.append(max(0.0, d_ap - d_an + margin1) + max(0.0, d_ap - d_nn + margin2))
    return np.array(out)


def reduce_numpy(loss, reduction):
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean() if loss.size else 0.0}[reduction]


@pytest.mark.parametrize("n", [1, 9, 50])
@pytest.mark.parametrize("dim", [1, 2, 32])
def test_matches_numpy(n, dim, device):
    tensors = random_quadruplets(n, dim, seed=n * dim, device=device)
    for margin1, margin2 in MARGINS:
        expected = quadruplet_numpy(*(t.cpu() for t in tensors), margin1, margin2)
        for reduction in REDUCTIONS:
            ours = quadruplet_loss(*tensors, margin1=margin1, margin2=margin2, reduction=reduction)
            np.testing.assert_allclose(ours.cpu().numpy(), reduce_numpy(expected, reduction), rtol=1e-12, atol=1e-13)


def test_worked_example():
    a, p = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.5, 0.0]])
    n1, n2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.5]])
    # d_ap^2 = 0.25, d_an^2 = 1, d_nn^2 = 0.25: [0.25 - 1 + 1]_+ + [0.25 - 0.25 + 0.5]_+ = 0.75
    assert quadruplet_loss(a, p, n1, n2).item() == pytest.approx(0.75)


def test_gradient_by_hand(device):
    """Equation (3) of the chapter."""
    a, p, n1, n2 = random_quadruplets(80, 3, seed=1, device=device)
    for margin1, margin2 in MARGINS:
        leaves = [t.clone().requires_grad_() for t in (a, p, n1, n2)]
        quadruplet_loss(*leaves, margin1=margin1, margin2=margin2, reduction="sum").backward()
        s1 = (((a - p) ** 2).sum(1) - ((a - n1) ** 2).sum(1) + margin1 > 0).double()[:, None]
        s2 = (((a - p) ** 2).sum(1) - ((n1 - n2) ** 2).sum(1) + margin2 > 0).double()[:, None]
        expected = [2 * (s1 + s2) * (a - p) - 2 * s1 * (a - n1), -2 * (s1 + s2) * (a - p),
                    2 * s1 * (a - n1) - 2 * s2 * (n1 - n2), 2 * s2 * (n1 - n2)]
        for leaf, grad in zip(leaves, expected):
            torch.testing.assert_close(leaf.grad, grad, rtol=1e-12, atol=1e-13)


def test_first_term_is_the_squared_triplet_loss():
    a, p, n1, _ = random_quadruplets(40, 4, seed=2)
    far = n1 + 1e3
    expected = (((a - p) ** 2).sum(1) - ((a - n1) ** 2).sum(1) + 1.0).clamp(min=0)
    torch.testing.assert_close(quadruplet_loss(a, p, n1, far, reduction="none"), expected)


def test_not_the_euclidean_triplet_loss():
    """Squared distances change which triplets are active: F.triplet_margin_loss is not the first term."""
    a, p, n1 = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.5, 0.0]]), torch.tensor([[1.2, 0.0]])
    assert quadruplet_loss(a, p, n1, n1 + 100).item() == 0.0
    assert F.triplet_margin_loss(a, p, n1, margin=1.0).item() == pytest.approx(0.3)


quadruplet_arrays = st.integers(1, 6).flatmap(
    lambda n: st.tuples(*(hnp.arrays(np.float64, (n, 3), elements=st.floats(-10, 10)) for _ in range(4)))
)


@given(quadruplet_arrays, st.floats(0.0, 5.0), st.floats(0.0, 5.0))
def test_properties(arrays, margin1, margin2):
    tensors = [torch.from_numpy(x) for x in arrays]
    loss = quadruplet_loss(*tensors, margin1=margin1, margin2=margin2, reduction="none")
    assert (loss >= 0).all()
    np.testing.assert_allclose(loss.numpy(), quadruplet_numpy(*arrays, margin1, margin2), rtol=1e-9, atol=1e-9)
    # translation and rotation invariance; scale: l(c h; c^2 margins) = c^2 l(h; margins)
    rotation = torch.linalg.qr(torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0], [2.0, 0.0, 1.0]], dtype=torch.float64))[0]
    torch.testing.assert_close(
        quadruplet_loss(*(t @ rotation + 2.0 for t in tensors), margin1=margin1, margin2=margin2, reduction="none"),
        loss, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(
        quadruplet_loss(*(2 * t for t in tensors), margin1=4 * margin1, margin2=4 * margin2, reduction="none"),
        4 * loss, rtol=1e-9, atol=1e-9)


def test_zero_at_a_perfect_embedding():
    a = torch.tensor([[0.0, 0.0]])
    assert quadruplet_loss(a, a.clone(), torch.tensor([[2.0, 0.0]]), torch.tensor([[2.0, 2.0]])).item() == 0.0


def test_finite_gradient_when_points_coincide():
    a = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    loss = quadruplet_loss(a, a, a, a)  # everything collapsed: loss margin1 + margin2, gradient 0
    (grad,) = torch.autograd.grad(loss, a)
    assert loss.item() == pytest.approx(1.5) and torch.isfinite(grad).all() and (grad == 0).all()


@pytest.mark.parametrize("which", [1, 2, 3])
def test_refuses_broadcasting(which):
    tensors = list(random_quadruplets(5, 3))
    names = ["anchor", "positive", "negative1", "negative2"]
    tensors[which] = tensors[which][:1]
    with pytest.raises(ValueError, match=f"anchor and {names[which]} must have the same shape"):
        quadruplet_loss(*tensors)


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda t: (t[0][0], t[1][0], t[2][0], t[3][0]), ValueError, r"anchor must have shape \(N, D\)"),
        (lambda t: (t[0], t[1], t[2].int(), t[3]), TypeError, "negative1 must be a floating-point tensor"),
        (lambda t: (t[0], t[1], t[2], t[3].tolist()), TypeError, "negative2 must be a torch.Tensor, got list"),
    ],
)
def test_refuses_bad_input(change, error, message):
    with pytest.raises(error, match=message):
        quadruplet_loss(*change(random_quadruplets(4, 2)))


def test_module():
    module = lossbook.nn.QuadrupletLoss(margin1=2.0, margin2=1.0)
    tensors = random_quadruplets(6, 3)
    torch.testing.assert_close(module(*tensors), quadruplet_loss(*tensors, margin1=2.0, margin2=1.0))
    assert "margin1=2.0" in repr(module) and "margin2=1.0" in repr(module)
    module.margin2 = 0.0
    torch.testing.assert_close(module(*tensors), quadruplet_loss(*tensors, margin1=2.0, margin2=0.0))
    with pytest.raises(ValueError, match="margin2 must be a non-negative number"):
        lossbook.nn.QuadrupletLoss(margin2=-0.5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_extreme_distances(dtype, device):
    """Coordinates of 1e3: squared distances of about 1e6 overflow float16; lossbook computes in float32."""
    tensors = [(1e3 * t).to(device, dtype) for t in random_quadruplets(8, 4, seed=3)]
    loss = quadruplet_loss(*tensors)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    torch.testing.assert_close(loss, quadruplet_loss(*(t.float() for t in tensors)))
