"""Tests of book/metric_learning/contrastive.md: contrastive_loss (target 1 = similar pair)."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pytorch_metric_learning import distances, losses, reducers

import lossbook
import lossbook.nn
from lossbook import contrastive_loss
from lossbook.conventions.anatomy import validate_args

REDUCTIONS = ["none", "mean", "sum"]
MARGINS = [0.0, 0.5, 1.0, 3.0]


def random_pairs(n=12, dim=3, seed=0, dtype=torch.float64, device="cpu"):
    generator = torch.Generator().manual_seed(seed)
    x1 = torch.randn(n, dim, dtype=dtype, generator=generator)
    x2 = x1 + torch.randn(n, dim, dtype=dtype, generator=generator)
    target = torch.randint(0, 2, (n,), generator=generator)
    return x1.to(device), x2.to(device), target.to(device)


def contrastive_numpy(x1, x2, target, margin):
    """Hadsell et al. (2006) in lossbook's convention (target 1 = similar), without the 1/2."""
    x1, x2, y = (np.asarray(t, dtype=np.float64) for t in (x1, x2, target))
    d = np.sqrt(((x1 - x2) ** 2).sum(axis=1))
    return y * d**2 + (1 - y) * np.maximum(0.0, margin - d) ** 2


def contrastive_paper_numpy(x1, x2, Y, m):
    """The paper's own form: Y = 0 similar, factor 1/2."""
    d = np.sqrt(((np.asarray(x1) - np.asarray(x2)) ** 2).sum(axis=1))
    return (1 - Y) * 0.5 * d**2 + Y * 0.5 * np.maximum(0.0, m - d) ** 2


def reduce_numpy(loss, reduction):
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean() if loss.size else 0.0}[reduction]


# --- oracles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 7, 40])
@pytest.mark.parametrize("dim", [1, 2, 16])
@pytest.mark.parametrize("target_dtype", [torch.float64, torch.float32, torch.int64, torch.int32, torch.uint8, torch.bool])
def test_matches_numpy(n, dim, target_dtype, device):
    x1, x2, target = random_pairs(n, dim, seed=n + dim, device=device)
    for margin in MARGINS:
        expected = contrastive_numpy(x1.cpu(), x2.cpu(), target.cpu(), margin)
        for reduction in REDUCTIONS:
            ours = contrastive_loss(x1, x2, target.to(target_dtype), margin=margin, reduction=reduction)
            np.testing.assert_allclose(ours.cpu().numpy(), reduce_numpy(expected, reduction), rtol=1e-12, atol=1e-14)


def test_paper_convention_is_half_of_the_flipped_target():
    x1, x2, target = random_pairs(50, 4, seed=1)
    for margin in MARGINS:
        paper = contrastive_paper_numpy(x1.numpy(), x2.numpy(), 1 - target.numpy(), margin)
        np.testing.assert_allclose(contrastive_loss(x1, x2, target, margin=margin, reduction="none").numpy(), 2 * paper,
                                   rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("margin", [0.5, 1.0, 3.0])
def test_pytorch_metric_learning_per_pair_squared(margin):
    """PML's ContrastiveLoss on the explicit pairs, raw Euclidean distance, no reducer: per-pair
    d and [m - d]_+ (unsquared); their squares are lossbook's per-pair losses."""
    x1, x2, target = random_pairs(30, 5, seed=2)
    n, index, similar = len(target), torch.arange(30), target.bool()
    pairs = (index[similar], index[similar] + n, index[~similar], index[~similar] + n)
    pml = losses.ContrastiveLoss(pos_margin=0, neg_margin=margin, reducer=reducers.DoNothingReducer(),
                                 distance=distances.LpDistance(normalize_embeddings=False))
    out = pml(torch.cat([x1, x2]), None, indices_tuple=pairs)
    ours = contrastive_loss(x1, x2, target, margin=margin, reduction="none")
    torch.testing.assert_close(out["pos_loss"]["losses"] ** 2, ours[similar], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(out["neg_loss"]["losses"] ** 2, ours[~similar], rtol=1e-12, atol=1e-14)


def test_worked_example():
    x1 = torch.zeros(3, 2, dtype=torch.float64)
    x2 = torch.tensor([[3.0, 4.0], [0.3, 0.4], [3.0, 4.0]], dtype=torch.float64)
    torch.testing.assert_close(contrastive_loss(x1, x2, torch.tensor([1, 0, 0]), reduction="none"),
                               torch.tensor([25.0, 0.25, 0.0], dtype=torch.float64))
    torch.testing.assert_close(contrastive_loss(x1, x2, torch.tensor([1, 0, 0]), margin=2.0),
                               torch.tensor((25.0 + 1.5**2) / 3, dtype=torch.float64))


# --- gradients ----------------------------------------------------------------------------------


def test_gradient_by_hand(device):
    """Equation (4): 2y(h1 - h2) - 2(1 - y)[margin - d]_+ u, and the opposite for h2."""
    x1, x2, target = random_pairs(60, 3, seed=3, device=device)
    y = target.double()[:, None]
    for margin in [0.5, 1.0, 2.0]:
        a, b = x1.clone().requires_grad_(), x2.clone().requires_grad_()
        contrastive_loss(a, b, target, margin=margin, reduction="sum").backward()
        d = (x1 - x2).norm(dim=1, keepdim=True)
        expected = 2 * y * (x1 - x2) - 2 * (1 - y) * (margin - d).clamp(min=0) * (x1 - x2) / d
        torch.testing.assert_close(a.grad, expected, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(b.grad, -expected, rtol=1e-12, atol=1e-14)


def test_gradient_is_finite_at_distance_zero():
    x1 = torch.tensor([[1.0, 2.0], [0.0, 0.0], [5.0, 5.0]], dtype=torch.float64, requires_grad=True)
    x2 = torch.tensor([[1.0, 2.0], [0.0, 0.0], [5.0, 5.0]], dtype=torch.float64)
    loss = contrastive_loss(x1, x2, torch.tensor([1, 0, 0]))
    (grad,) = torch.autograd.grad(loss, x1, create_graph=True)
    assert loss.item() == pytest.approx(2 / 3)  # two collapsed dissimilar pairs cost margin^2 each
    assert torch.isfinite(grad).all() and (grad == 0).all()
    (second,) = torch.autograd.grad(grad.sum(), x1)
    assert torch.isfinite(second).all()


def test_squared_distance_hinge_has_a_vanishing_push():
    """The pitfall: [m^2 - d^2]_+ pushes a nearly collapsed dissimilar pair with force 2d, lossbook with 2(m - d)."""
    x1 = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    x2 = torch.tensor([[1e-3, 0.0]], dtype=torch.float64)
    (ours,) = torch.autograd.grad(contrastive_loss(x1, x2, torch.tensor([0])), x1)
    (wrong,) = torch.autograd.grad((1.0 - (x1 - x2).square().sum()).clamp(min=0), x1)
    assert ours.norm().item() == pytest.approx(2 * (1 - 1e-3))
    assert wrong.norm().item() == pytest.approx(2e-3)


# --- properties ------------------------------------------------------------------------------------


pair_arrays = st.integers(1, 6).flatmap(
    lambda n: st.tuples(
        hnp.arrays(np.float64, (n, 3), elements=st.floats(-10, 10)),
        hnp.arrays(np.float64, (n, 3), elements=st.floats(-10, 10)),
        hnp.arrays(np.int64, (n,), elements=st.integers(0, 1)),
    )
)


@given(pair_arrays, st.floats(0.0, 5.0))
def test_properties(arrays, margin):
    a, b, t = (torch.from_numpy(x) for x in arrays)
    loss = contrastive_loss(a, b, t, margin=margin, reduction="none")
    assert (loss >= 0).all()
    torch.testing.assert_close(loss, contrastive_loss(b, a, t, margin=margin, reduction="none"))  # symmetric
    np.testing.assert_allclose(loss.numpy(), contrastive_numpy(a, b, t, margin), rtol=1e-10, atol=1e-10)
    # scale: l(c h1, c h2; c margin) = c^2 l(h1, h2; margin)
    torch.testing.assert_close(contrastive_loss(3 * a, 3 * b, t, margin=3 * margin, reduction="none"), 9 * loss)
    # translation invariance
    torch.testing.assert_close(contrastive_loss(a + 1.5, b + 1.5, t, margin=margin, reduction="none"), loss)


def test_zero_at_a_perfect_embedding():
    x1 = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    x2 = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 0.0]])
    assert contrastive_loss(x1, x2, torch.tensor([1, 1, 0]), margin=2.0).item() == 0.0


def test_margin_zero_ignores_dissimilar_pairs():
    x1, x2, target = random_pairs(20, 3, seed=4)
    loss = contrastive_loss(x1, x2, target, margin=0.0, reduction="none")
    assert (loss[target == 0] == 0).all()


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [2, -1, 0.5])
def test_refuses_targets_other_than_0_and_1(value):
    x1, x2, target = random_pairs(5, 2, seed=5)
    bad = target.double()
    bad[3] = value
    with pytest.raises(ValueError, match=r"target must hold 1 \(similar pair\) or 0 \(dissimilar pair\), got"):
        contrastive_loss(x1, x2, bad)
    with validate_args(False):  # the switch: not checked
        contrastive_loss(x1, x2, bad)


def test_refuses_sign_labels_with_a_clear_message():
    x1, x2, _ = random_pairs(3, 2)
    with pytest.raises(ValueError, match="got -1"):
        contrastive_loss(x1, x2, torch.tensor([1, -1, 1]))


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda a, b, t: (a, b, t[:, None]), ValueError, r"target must have shape \(N,\) = \(4,\)"),
        (lambda a, b, t: (a, b, t[:3]), ValueError, r"target must have shape \(N,\)"),
        (lambda a, b, t: (a, b, t.tolist()), TypeError, "target must be a torch.Tensor, got list"),
        (lambda a, b, t: (a, b, t.to(torch.complex64)), TypeError, "target must be a real or bool tensor"),
        (lambda a, b, t: (a[:3], b, t), ValueError, "x1 and x2 must have the same shape"),
        (lambda a, b, t: (a[0], b[0], t[:1]), ValueError, r"x1 must have shape \(N, D\)"),
        (lambda a, b, t: (a, b.int(), t), TypeError, "x2 must be a floating-point tensor"),
    ],
)
def test_refuses_bad_input(change, error, message):
    x1, x2, target = random_pairs(4, 2)
    with pytest.raises(error, match=message):
        contrastive_loss(*change(x1, x2, target))


def test_module():
    module = lossbook.nn.ContrastiveLoss(margin=2.0)
    x1, x2, target = random_pairs(6, 3)
    torch.testing.assert_close(module(x1, x2, target), contrastive_loss(x1, x2, target, margin=2.0))
    assert "margin=2.0" in repr(module)
    module.margin = 0.5
    torch.testing.assert_close(module(x1, x2, target), contrastive_loss(x1, x2, target, margin=0.5))
    with pytest.raises(ValueError, match="margin must be a non-negative number"):
        lossbook.nn.ContrastiveLoss(margin=-1.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_extreme_distances(dtype, device):
    """Coordinates of 1e3: squared distances of about 1e6 overflow float16; lossbook computes in float32."""
    x1, x2, target = random_pairs(8, 4, seed=6)
    x1, x2 = (1e3 * x1).to(device, dtype), (1e3 * x2).to(device, dtype)
    loss = contrastive_loss(x1, x2, target.to(device), margin=5.0)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    reference = contrastive_loss(x1.float(), x2.float(), target.to(device), margin=5.0)
    torch.testing.assert_close(loss, reference)
