"""Tests of book/detection/quality_focal.md: quality_focal_loss (Generalized Focal Loss)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from lossbook import quality_focal_loss, sigmoid_focal_loss

REDUCTIONS = ["none", "mean", "sum"]
SHAPES = [(1, 1), (7, 3), (50, 20), (16, 80)]
BETAS = [0.0, 0.5, 1.0, 2.0, 4.0]


def random_detection(n, c, dtype=torch.float64, device="cpu", scale=3.0, seed=0):
    """Logits ``(N, C)``, labels ``(N,)`` in ``0..C`` (``C`` = background), scores ``(N,)``."""
    generator = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, c, dtype=dtype, generator=generator)
    labels = torch.randint(0, c + 1, (n,), generator=generator)
    scores = torch.rand(n, dtype=dtype, generator=generator)
    return logits.to(device), labels.to(device), scores.to(device)


def qfl_numpy(logits, labels, scores, beta):
    """The QFL formula of Li et al. (2020, section 3) in float64, summed over classes: one loss per anchor."""
    x = np.asarray(logits, dtype=np.float64)
    n, c = x.shape
    y = np.zeros_like(x)
    rows = np.flatnonzero(labels < c)
    y[rows, labels[rows]] = scores[rows]
    sigma = 1 / (1 + np.exp(-x))
    return (-np.abs(y - sigma) ** beta * ((1 - y) * np.log(1 - sigma) + y * np.log(sigma))).sum(axis=1)


def reduce_numpy(per_anchor, reduction):
    if reduction == "none":
        return per_anchor
    return per_anchor.sum() if reduction == "sum" else per_anchor.mean()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_numpy_transcription(shape, beta, reduction, device):
    logits, labels, scores = random_detection(*shape, device=device, seed=shape[0] + shape[1])
    result = quality_focal_loss(logits, labels, scores, beta=beta, reduction=reduction)
    expected = qfl_numpy(logits.cpu().numpy(), labels.cpu().numpy(), scores.cpu().numpy(), beta)
    assert result.device == logits.device and result.dtype == torch.float64
    np.testing.assert_allclose(result.cpu().numpy(), reduce_numpy(expected, reduction), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hard_targets_give_the_focal_loss_without_alpha(beta, reduction, device):
    logits, labels, _ = random_detection(30, 4, device=device, seed=1)
    one_hot = F.one_hot(labels, 5)[:, :4].double()
    qfl = quality_focal_loss(logits, labels, torch.ones(30, dtype=torch.float64, device=device), beta=beta,
                             reduction=reduction)
    focal = sigmoid_focal_loss(logits, one_hot, alpha=-1, gamma=beta, reduction="none").sum(dim=1)
    torch.testing.assert_close(qfl, reduce_numpy(focal, reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_beta_zero_is_soft_binary_cross_entropy(reduction, device):
    logits, labels, scores = random_detection(25, 6, device=device, seed=2)
    soft = F.one_hot(labels, 7)[:, :6].double() * scores.unsqueeze(1)
    bce = F.binary_cross_entropy_with_logits(logits, soft, reduction="none").sum(dim=1)
    expected = {"none": bce, "sum": bce.sum(), "mean": bce.mean()}[reduction]
    torch.testing.assert_close(quality_focal_loss(logits, labels, scores, beta=0.0, reduction=reduction), expected)


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0, 3.5])
def test_hand_derived_gradient(beta):
    logits, labels, scores = random_detection(12, 4, seed=3)
    logits.requires_grad_()
    (autograd,) = torch.autograd.grad(quality_focal_loss(logits, labels, scores, beta=beta, reduction="sum"), logits)
    y = torch.where(labels.unsqueeze(1) == torch.arange(4), scores.unsqueeze(1), 0.0)
    sigma = torch.sigmoid(logits.detach())
    bce = -(y * torch.log(sigma) + (1 - y) * torch.log(1 - sigma))
    by_hand = (sigma - y) * (y - sigma).abs() ** (beta - 2) * (beta * sigma * (1 - sigma) * bce + (y - sigma) ** 2)
    torch.testing.assert_close(autograd, by_hand)


@st.composite
def detections(draw):
    n = draw(st.integers(1, 6))
    c = draw(st.integers(1, 5))
    logits = draw(st.lists(st.floats(-30, 30), min_size=n * c, max_size=n * c))
    labels = draw(st.lists(st.integers(0, c), min_size=n, max_size=n))
    scores = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    return (
        torch.tensor(logits, dtype=torch.float64).reshape(n, c),
        torch.tensor(labels),
        torch.tensor(scores, dtype=torch.float64),
    )


@given(detections(), st.sampled_from(BETAS))
def test_properties(data, beta):
    logits, labels, scores = data
    n, c = logits.shape
    per_anchor = quality_focal_loss(logits, labels, scores, beta=beta, reduction="none")
    assert per_anchor.shape == (n,) and (per_anchor >= 0).all() and torch.isfinite(per_anchor).all()
    # the minimum is at sigma = y: perfect logits (logit of the soft target) give 0 for beta > 0
    y = torch.where(labels.unsqueeze(1) == torch.arange(c), scores.unsqueeze(1), 0.0).clamp(1e-9, 1 - 1e-9)
    perfect = quality_focal_loss(torch.logit(y), labels, scores, beta=beta, reduction="none")
    if beta > 0:
        assert (perfect <= 1e-7 * c).all()
    assert (perfect <= per_anchor + 1e-7 * c).all()  # the clamp's cost
    # background: the scores of background anchors are ignored
    background = labels == c
    other_scores = torch.where(background, 1 - scores, scores)
    torch.testing.assert_close(quality_focal_loss(logits, labels, other_scores, beta=beta, reduction="none"), per_anchor)
    # classes are independent sigmoids: permuting the columns with the labels changes nothing
    perm = torch.randperm(c, generator=torch.Generator().manual_seed(0))
    inverse = torch.argsort(perm)
    relabelled = torch.where(background, labels, inverse[labels.clamp(max=c - 1)])
    torch.testing.assert_close(
        quality_focal_loss(logits[:, perm], relabelled, scores, beta=beta, reduction="none"), per_anchor
    )


@given(st.floats(0.01, 0.99), st.floats(-5, 5))
def test_limit_beta_to_zero_and_monotone_in_beta(score, logit):
    # beta -> 0 tends to BCE wherever sigma != y (at sigma = y, |y - sigma|^beta is 0 for every beta > 0)
    assume(abs(1 / (1 + np.exp(-logit)) - score) > 1e-3)
    x, labels, s = torch.tensor([[logit]], dtype=torch.float64), torch.tensor([0]), torch.tensor([score], dtype=torch.float64)
    small = quality_focal_loss(x, labels, s, beta=1e-9)
    bce = F.binary_cross_entropy_with_logits(x[:, 0], s)
    torch.testing.assert_close(small, bce, rtol=1e-7, atol=1e-12)
    # |y - sigma| <= 1, so the loss does not grow with beta
    losses = [quality_focal_loss(x, labels, s, beta=b).item() for b in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert all(a >= b - 1e-15 for a, b in zip(losses, losses[1:]))


def test_background_label_is_num_classes():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    as_background = quality_focal_loss(logits, torch.tensor([3]), torch.tensor([0.7]))
    as_zero_targets = sigmoid_focal_loss(logits, torch.zeros(1, 3), alpha=-1, gamma=2.0, reduction="sum")
    torch.testing.assert_close(as_background, as_zero_targets)


def test_bad_input():
    x, labels, scores = torch.zeros(4, 3), torch.tensor([0, 1, 2, 3]), torch.full((4,), 0.5)
    with pytest.raises(ValueError, match="beta must be a non-negative number, got -1.0"):
        quality_focal_loss(x, labels, scores, beta=-1.0)
    with pytest.raises(TypeError, match="beta must be a number"):
        quality_focal_loss(x, labels, scores, beta="2")
    with pytest.raises(ValueError, match=r"input must have shape \(N, C\), got \(4,\)"):
        quality_focal_loss(torch.zeros(4), labels, scores)
    with pytest.raises(TypeError, match="labels must be an integer tensor of class indices.*torch.float32"):
        quality_focal_loss(x, labels.float(), scores)
    with pytest.raises(TypeError, match="labels must be an integer tensor.*torch.bool"):
        quality_focal_loss(x, labels > 0, scores)
    with pytest.raises(TypeError, match="scores must be a floating-point tensor, got dtype torch.int64"):
        quality_focal_loss(x, labels, torch.ones(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\) = \(4,\) for input of shape \(4, 3\), got \(4, 1\)"):
        quality_focal_loss(x, labels.unsqueeze(1), scores)
    with pytest.raises(ValueError, match=r"scores must have shape \(N,\) = \(4,\) for input of shape \(4, 3\), got \(3,\)"):
        quality_focal_loss(x, labels, scores[:3])
    with pytest.raises(ValueError, match="labels holds 4, but input has 3 classes: labels must be 0 to 2 for objects and 3 for background"):
        quality_focal_loss(x, labels + 1, scores)
    with pytest.raises(ValueError, match="labels holds -1"):
        quality_focal_loss(x, labels - 1, scores)
    with pytest.raises(ValueError, match="labels holds -1, but input has 3 classes"):
        quality_focal_loss(x, (labels - 1).to(torch.int8), scores)  # narrow dtypes compare without wrapping
    with pytest.raises(ValueError, match="labels holds 255, but input has 3 classes"):
        quality_focal_loss(x, (labels - 1).to(torch.uint8), scores)  # -1 wrapped to 255: refused, and said so
    with pytest.raises(ValueError, match="scores must hold probabilities in \\[0, 1\\], got 1.5"):
        quality_focal_loss(x, labels, torch.tensor([0.5, 1.5, 0.5, 0.5]))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32], ids=str)
def test_every_integer_dtype_of_labels(dtype, device):
    logits, labels, scores = random_detection(20, 4, seed=6, device=device)
    expected = quality_focal_loss(logits, labels, scores, reduction="none")
    torch.testing.assert_close(quality_focal_loss(logits, labels.to(dtype), scores, reduction="none"), expected,
                               rtol=0, atol=0)


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_confident_logits_keep_finite_gradients(beta, device):
    """A background entry at logit -200, a perfect soft target, a positive at +200: the gaps
    underflow or vanish, the zero-safe power keeps the gradient finite (beta < 1 included)."""
    logits = torch.tensor([[-200.0, 0.0], [0.0, 200.0], [-200.0, -200.0]], device=device, requires_grad=True)
    labels = torch.tensor([1, 1, 2], device=device)
    scores = torch.tensor([0.5, 1.0, 0.0], device=device)
    loss = quality_focal_loss(logits, labels, scores, beta=beta, reduction="sum")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    expected = float(np.log(2.0)) * 0.5**beta  # only entry [1, 0] (target 0 at sigma = 1/2) is not ~0
    assert abs(loss.item() - expected) < 1e-6
