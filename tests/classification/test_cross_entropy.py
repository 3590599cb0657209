"""Tests of book/classification/cross_entropy.md: cross_entropy and binary_cross_entropy_with_logits.

What every loss owes (bad input, reductions and the empty mean, gradcheck, half precision,
the module, tracing) is checked by tests/test_battery.py over the cases of
tests/registry.py. Here: the oracles (PyTorch, which the definitions call for float32 and
float64, and an independent NumPy transcription of equations (5), (6) and (10) for every
option), hand-derived gradients, properties, and the refusals and conventions specific to
these two losses.
"""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lossbook import binary_cross_entropy_with_logits, cross_entropy
from lossbook.conventions.anatomy import validate_args

REDUCTIONS = ["none", "mean", "sum"]


# ----------------------------------------------------------------------------- makers


def index_pair(shape, dtype=torch.float64, device="cpu", scale=1.0, seed=0, extreme=False):
    """Logits of ``shape`` = (N, C, *) and class indices (N, *); ``extreme`` makes the
    first position a confident mistake (logits -scale for its class, +scale elsewhere)."""
    generator = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(shape, dtype=dtype, generator=generator)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=generator)
    if extreme and logits.numel():
        logits[0] = scale
        first = (0,) + (0,) * (len(shape) - 2)
        logits[(0, target[first].item(), *first[1:])] = -scale
    return logits.to(device), target.to(device)


def probability_pair(shape, dtype=torch.float64, device="cpu", scale=1.0, seed=0, extreme=False):
    """Logits and class probabilities of the same shape (N, C, *), summing to 1 over dim 1."""
    generator = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(shape, dtype=dtype, generator=generator)
    target = torch.softmax(2 * torch.randn(shape, dtype=dtype, generator=generator), dim=1)
    if extreme and logits.numel():
        logits.view(-1)[::2] = -scale
        logits.view(-1)[1::2] = scale
    return logits.to(device), target.to(device)


def binary_pair(shape, dtype=torch.float64, device="cpu", scale=1.0, seed=0, extreme=False):
    """Logits and target probabilities in [0, 1]; ``extreme`` puts logits -scale and +scale
    with label 1 first (a confident mistake and a confident hit)."""
    generator = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(shape, dtype=dtype, generator=generator)
    target = torch.rand(shape, dtype=dtype, generator=generator)
    if extreme and logits.numel() >= 2:
        logits.view(-1)[:2] = torch.tensor([-scale, scale], dtype=dtype)
        target.view(-1)[:2] = 1
    return logits.to(device), target.to(device)


def entropy(target, dim=1):
    """H(t) = -sum t log t (0 log 0 = 0) along ``dim``."""
    return -torch.special.xlogy(target, target).sum(dim)


def numpy_cross_entropy(logits, target, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """Equations (5) and (6) with class weights, ignored positions and PyTorch's two means,
    transcribed in float64 NumPy for logits (N, C, *) and indices (N, *) or probabilities
    (N, C, *); a mean over nothing is 0."""
    z = np.moveaxis(np.asarray(logits, np.float64), 1, -1)  # (N, *, C)
    classes = z.shape[-1]
    top = z.max(-1, keepdims=True)
    log_q = z - top - np.log(np.exp(z - top).sum(-1, keepdims=True))
    w = np.ones(classes) if weight is None else np.asarray(weight, np.float64)
    target = np.asarray(target)
    if np.issubdtype(target.dtype, np.floating):
        t, counted = np.moveaxis(target.astype(np.float64), 1, -1), np.ones(z.shape[:-1])
        divisor = counted.sum()
    else:
        counted = (target != ignore_index).astype(np.float64)
        safe = np.where(target != ignore_index, target, 0)
        t = np.eye(classes)[safe] * counted[..., None]
        divisor = (w[safe] * counted).sum()
    t = (1 - label_smoothing) * t + label_smoothing / classes * counted[..., None]
    loss = -(w * t * log_q).sum(-1)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / divisor if divisor != 0 else 0.0


def numpy_binary_cross_entropy(logits, target, weight=None, pos_weight=None, reduction="mean"):
    """Equation (10) with weight and pos_weight, in float64 NumPy."""
    z, y = np.asarray(logits, np.float64), np.asarray(target, np.float64)
    w = 1.0 if weight is None else np.asarray(weight, np.float64)
    p = 1.0 if pos_weight is None else np.asarray(pos_weight, np.float64)
    loss = w * (p * y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z))
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean() if loss.size else 0.0}[reduction]


# ----------------------------------------------------------------------------- oracle


CE_SHAPES = [(6, 4), (3, 4, 2, 5), (5, 2)]
TARGET_KINDS = ["indices", "some ignored", "a class ignored", "probabilities"]


def ce_target(kind, shape, device, seed=1):
    generator = torch.Generator().manual_seed(seed)
    classes, index_shape = shape[1], (shape[0], *shape[2:])
    indices = torch.randint(0, classes, index_shape, generator=generator)
    if kind == "indices":
        return indices.to(device), -100
    if kind == "some ignored":
        indices.view(-1)[::3] = -100  # the first position and every third after it
        return indices.to(device), -100
    if kind == "a class ignored":  # a real class as ignore_index; keep one position counted
        indices.view(-1)[0] = (classes - 1) if classes > 1 else 0
        indices.view(-1)[1::2] = 0
        return indices.to(device), (0 if classes > 1 else -100)
    probabilities = torch.softmax(3 * torch.randn(shape, dtype=torch.float64, generator=generator), dim=1)
    return probabilities.to(device), -100


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", TARGET_KINDS)
@pytest.mark.parametrize("shape", CE_SHAPES)
def test_cross_entropy_matches_torch(shape, kind, weighted, label_smoothing, reduction, device):
    logits = index_pair(shape, device=device)[0].requires_grad_()
    target, ignore_index = ce_target(kind, shape, device)
    weight = (0.1 + torch.rand(shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(2))).to(device)
    weight = weight if weighted else None
    options = dict(
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    ours = cross_entropy(logits, target, **options)
    theirs = F.cross_entropy(logits, target, **options)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)
    ours_grad, theirs_grad = (torch.autograd.grad(loss.sum(), logits)[0] for loss in (ours, theirs))
    torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-12, atol=1e-14)
    # the definition calls F.cross_entropy: an independent transcription too
    expected = numpy_cross_entropy(logits.detach().cpu(), target.cpu(), None if weight is None else weight.cpu(),
                                   ignore_index, label_smoothing, reduction)
    np.testing.assert_allclose(ours.detach().cpu().numpy(), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", TARGET_KINDS)
def test_cross_entropy_full_smoothing_matches_torch(kind, device):
    """label_smoothing = 1 (allowed by torch and lossbook) makes the target uniform."""
    logits = index_pair((5, 3), device=device)[0]
    target, ignore_index = ce_target(kind, (5, 3), device)
    for reduction in REDUCTIONS:
        options = dict(ignore_index=ignore_index, label_smoothing=1.0, reduction=reduction)
        ours = cross_entropy(logits, target, **options)
        torch.testing.assert_close(ours, F.cross_entropy(logits, target, **options))
        expected = numpy_cross_entropy(logits.cpu(), target.cpu(), None, ignore_index, 1.0, reduction)
        np.testing.assert_allclose(ours.cpu().numpy(), expected, rtol=1e-12, atol=1e-14)


def test_cross_entropy_without_ignore_index(device):
    logits, target = index_pair((4, 3), device=device)
    torch.testing.assert_close(cross_entropy(logits, target, ignore_index=None), F.cross_entropy(logits, target))


BCE_SHAPES = [(7,), (6, 4), (2, 3, 4)]


def bce_options(shape, device):
    generator = torch.Generator().manual_seed(3)

    def rand(*size):
        return torch.rand(size, dtype=torch.float64, generator=generator).to(device)

    weights = [None, rand(shape[-1]), rand(*shape), rand(*shape[:-1], 1), rand(1)]
    pos_weights = [None, 4 * rand(shape[-1]), torch.tensor([3.0], dtype=torch.float64, device=device)]
    return weights, pos_weights


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("shape", BCE_SHAPES)
def test_binary_cross_entropy_matches_torch(shape, hard, reduction, device):
    logits, target = binary_pair(shape, device=device, scale=5.0)
    logits.requires_grad_()
    if hard:
        target = (target > 0.5).double()
    weights, pos_weights = bce_options(shape, device)
    for weight, pos_weight in itertools.product(weights, pos_weights):
        options = dict(weight=weight, pos_weight=pos_weight, reduction=reduction)
        ours = binary_cross_entropy_with_logits(logits, target, **options)
        theirs = F.binary_cross_entropy_with_logits(logits, target, **options)
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)
        ours_grad, theirs_grad = (torch.autograd.grad(loss.sum(), logits)[0] for loss in (ours, theirs))
        torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-12, atol=1e-14)
        expected = numpy_binary_cross_entropy(
            logits.detach().cpu(), target.cpu(), *(None if t is None else t.cpu() for t in (weight, pos_weight)),
            reduction=reduction,
        )
        np.testing.assert_allclose(ours.detach().cpu().numpy(), expected, rtol=1e-12, atol=1e-14)


def test_binary_cross_entropy_extreme_logits_match_torch():
    logits = torch.tensor([-800.0, -50.0, -1e-3, 0.0, 1e-3, 50.0, 800.0], dtype=torch.float64)
    for label in (0.0, 0.3, 1.0):
        target = torch.full_like(logits, label)
        ours = binary_cross_entropy_with_logits(logits, target, reduction="none")
        torch.testing.assert_close(ours, F.binary_cross_entropy_with_logits(logits, target, reduction="none"),
                                   rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(ours.numpy(), numpy_binary_cross_entropy(logits, target, reduction="none"),
                                   rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------ the conventions of the docstring


def test_weighted_means_of_the_two_target_kinds():
    """Indices: the mean divides by the weight of the targets; probabilities: by the count."""
    logits, target = index_pair((7, 4), seed=4)
    weight = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    for smoothing in (0.0, 0.2):
        per_position = cross_entropy(logits, target, weight=weight, label_smoothing=smoothing, reduction="none")
        mean = cross_entropy(logits, target, weight=weight, label_smoothing=smoothing)
        torch.testing.assert_close(mean, per_position.sum() / weight[target].sum())
        one_hot = F.one_hot(target, 4).double()
        one_hot_none = cross_entropy(logits, one_hot, weight=weight, label_smoothing=smoothing, reduction="none")
        torch.testing.assert_close(one_hot_none, per_position)  # same per-position losses
        torch.testing.assert_close(cross_entropy(logits, one_hot, weight=weight, label_smoothing=smoothing),
                                   per_position.sum() / 7)


def test_binary_weight_rescales_and_the_mean_counts_elements():
    logits, target = binary_pair((5, 3), seed=5)
    weight = torch.rand(5, 1, dtype=torch.float64)
    per_element = binary_cross_entropy_with_logits(logits, target, reduction="none")
    torch.testing.assert_close(
        binary_cross_entropy_with_logits(logits, target, weight=weight), (weight * per_element).sum() / 15
    )


# ------------------------------------------------------------------ hand-derived gradients


def test_hand_derived_gradients():
    logits, target = index_pair((6, 5), seed=6)
    logits.requires_grad_()
    weight = torch.rand(5, dtype=torch.float64) + 0.5
    softmax = torch.softmax(logits, dim=1).detach()
    one_hot = F.one_hot(target, 5).double()
    (grad,) = torch.autograd.grad(cross_entropy(logits, target, weight=weight, reduction="sum"), logits)
    torch.testing.assert_close(grad, weight[target, None] * (softmax - one_hot), rtol=0, atol=1e-14)
    for smoothing in (0.1, 0.4):
        smoothed = (1 - smoothing) * one_hot + smoothing / 5
        (grad,) = torch.autograd.grad(cross_entropy(logits, target, label_smoothing=smoothing, reduction="sum"), logits)
        torch.testing.assert_close(grad, softmax - smoothed, rtol=0, atol=1e-14)
    probabilities = torch.softmax(torch.randn(6, 5, dtype=torch.float64), dim=1)
    (grad,) = torch.autograd.grad(cross_entropy(logits, probabilities), logits)
    torch.testing.assert_close(grad, (softmax - probabilities) / 6, rtol=0, atol=1e-14)


def test_hand_derived_binary_gradient():
    logits, target = binary_pair((8, 3), seed=7, scale=4.0)
    logits.requires_grad_()
    weight, pos_weight = torch.rand(8, 1, dtype=torch.float64), torch.tensor([0.5, 2.0, 5.0], dtype=torch.float64)
    loss = binary_cross_entropy_with_logits(logits, target, weight=weight, pos_weight=pos_weight, reduction="sum")
    (grad,) = torch.autograd.grad(loss, logits)
    sigma = torch.sigmoid(logits.detach())
    expected = weight * ((pos_weight * target + 1 - target) * sigma - pos_weight * target)
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-14)
    zero = torch.zeros(3, dtype=torch.float64, requires_grad=True)  # exact at z = 0: sigma(0) - y
    labels = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    (grad,) = torch.autograd.grad(binary_cross_entropy_with_logits(zero, labels, reduction="sum"), zero)
    torch.testing.assert_close(grad, torch.tensor([0.5, 0.0, -0.5], dtype=torch.float64), rtol=0, atol=0)


# ----------------------------------------------------------------------------- properties


def logits_and_classes(max_classes=6):
    """(logits (N, C) float64, class indices (N,)) with N in [1, 6], C in [2, max_classes]."""
    return st.tuples(st.integers(1, 6), st.integers(2, max_classes)).flatmap(
        lambda nc: st.tuples(
            hnp.arrays("float64", nc, elements=st.floats(-30, 30, allow_nan=False)),
            hnp.arrays("int64", nc[:1], elements=st.integers(0, nc[1] - 1)),
        )
    )


smoothings = st.sampled_from([0.0, 0.05, 0.3, 0.9])


@given(logits_and_classes(), smoothings, st.floats(-50, 50))
def test_cross_entropy_properties(arrays, smoothing, shift):
    logits, target = torch.from_numpy(arrays[0]), torch.from_numpy(arrays[1])
    classes = logits.shape[1]
    loss = cross_entropy(logits, target, label_smoothing=smoothing, reduction="none")
    one_hot = F.one_hot(target, classes).double()
    smoothed = (1 - smoothing) * one_hot + smoothing / classes
    # Gibbs: H(t, q) >= H(t) >= 0
    assert (loss >= entropy(smoothed) - 1e-9).all() and (loss >= 0).all()
    # only differences of logits matter
    torch.testing.assert_close(cross_entropy(logits + shift, target, label_smoothing=smoothing, reduction="none"), loss,
                               rtol=1e-9, atol=1e-9)
    # class indices are one-hot probabilities (per position)
    torch.testing.assert_close(cross_entropy(logits, one_hot, label_smoothing=smoothing, reduction="none"), loss)
    # linear in the target: (1 - eps) CE(y) + eps CE(uniform)
    uniform = torch.full_like(logits, 1 / classes)
    mixture = (1 - smoothing) * cross_entropy(logits, target, reduction="none") + smoothing * cross_entropy(
        logits, uniform, reduction="none"
    )
    torch.testing.assert_close(loss, mixture, rtol=1e-9, atol=1e-9)


@given(hnp.arrays("float64", st.tuples(st.integers(1, 5), st.integers(2, 6)), elements=st.floats(0.01, 1.0)), smoothings)
def test_cross_entropy_minimum_is_the_target(weights, smoothing):
    """The minimum over logits of H(t~, softmax(z)) is at softmax(z) = t~, where it equals H(t~)."""
    target = torch.from_numpy(weights / weights.sum(1, keepdims=True))
    smoothed = (1 - smoothing) * target + smoothing / target.shape[1]
    logits = smoothed.log().requires_grad_()
    loss = cross_entropy(logits, target, label_smoothing=smoothing, reduction="none")
    torch.testing.assert_close(loss.detach(), entropy(smoothed))
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    assert grad.abs().max() < 1e-12


def test_perfect_prediction_limits():
    """A growing gap drives the unsmoothed loss to 0 and the smoothed one to H(t~) at the gap (8)."""
    for gap, bound in [(20.0, 1e-7), (50.0, 1e-20)]:
        logits = torch.tensor([[gap, 0.0, 0.0]], dtype=torch.float64)
        assert 0 <= cross_entropy(logits, torch.tensor([0])).item() < bound
    for classes, smoothing in [(3, 0.1), (10, 0.3)]:
        optimum = math.log(1 + classes * (1 - smoothing) / smoothing)
        logits = torch.zeros(1, classes, dtype=torch.float64)
        logits[0, 0] = optimum
        smoothed = torch.full((1, classes), smoothing / classes, dtype=torch.float64)
        smoothed[0, 0] += 1 - smoothing
        torch.testing.assert_close(cross_entropy(logits, torch.tensor([0]), label_smoothing=smoothing), entropy(smoothed)[0])
        for offset in (-0.5, 0.5):  # a minimum in the gap
            moved = logits.clone()
            moved[0, 0] += offset
            assert cross_entropy(moved, torch.tensor([0]), label_smoothing=smoothing) > entropy(smoothed)[0]


def test_full_smoothing_ignores_the_labels():
    logits, target = index_pair((5, 4), seed=9)
    uniform = cross_entropy(logits, torch.full_like(logits, 0.25), reduction="none")
    torch.testing.assert_close(cross_entropy(logits, target, label_smoothing=1.0, reduction="none"), uniform)
    torch.testing.assert_close(cross_entropy(logits, (target + 1) % 4, label_smoothing=1.0, reduction="none"), uniform)


binary_arrays = st.integers(1, 8).flatmap(
    lambda n: st.tuples(
        hnp.arrays("float64", n, elements=st.floats(-60, 60, allow_nan=False)),
        hnp.arrays("float64", n, elements=st.floats(0, 1)),
    )
)


@given(binary_arrays, st.floats(0.01, 20))
def test_binary_properties(arrays, pos_weight):
    logits, target = torch.from_numpy(arrays[0]), torch.from_numpy(arrays[1])
    loss = binary_cross_entropy_with_logits(logits, target, reduction="none")
    binary_entropy = entropy(torch.stack([target, 1 - target]), dim=0)
    assert (loss >= binary_entropy - 1e-9).all() and (loss >= 0).all()
    # symmetric under swapping the classes
    torch.testing.assert_close(binary_cross_entropy_with_logits(-logits, 1 - target, reduction="none"), loss)
    # the two-class special case of cross_entropy, logits (0, z) and target (1 - y, y)
    two_class = cross_entropy(
        torch.stack([torch.zeros_like(logits), logits], dim=1), torch.stack([1 - target, target], dim=1), reduction="none"
    )
    torch.testing.assert_close(two_class, loss, rtol=1e-9, atol=1e-12)
    # pos_weight = 1 is no pos_weight; pos_weight scales the positive term only
    one = torch.tensor([1.0], dtype=torch.float64)
    torch.testing.assert_close(binary_cross_entropy_with_logits(logits, target, pos_weight=one, reduction="none"), loss)
    weighted = binary_cross_entropy_with_logits(
        logits, target, pos_weight=torch.tensor([pos_weight], dtype=torch.float64), reduction="none"
    )
    positive = binary_cross_entropy_with_logits(logits, torch.ones_like(target), reduction="none")
    negative = binary_cross_entropy_with_logits(logits, torch.zeros_like(target), reduction="none")
    torch.testing.assert_close(weighted, pos_weight * target * positive + (1 - target) * negative,
                               rtol=1e-9, atol=1e-9)


@given(hnp.arrays("float64", st.integers(1, 8), elements=st.floats(0.001, 0.999)))
def test_binary_minimum_at_the_target_logit(target):
    target = torch.from_numpy(target)
    logits = torch.logit(target).requires_grad_()
    loss = binary_cross_entropy_with_logits(logits, target, reduction="none")
    torch.testing.assert_close(loss.detach(), entropy(torch.stack([target, 1 - target]), dim=0))
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    assert grad.abs().max() < 1e-12


# -------------------------------------------------------------- ignored positions, empty means


def test_ignored_positions_are_zero_and_do_not_count(device):
    logits, target = index_pair((6, 4), device=device, seed=10)
    target[1] = -100
    target[4] = -100
    per_position = cross_entropy(logits, target, label_smoothing=0.2, reduction="none")
    assert per_position[1] == 0 and per_position[4] == 0
    torch.testing.assert_close(cross_entropy(logits, target, label_smoothing=0.2), per_position.sum() / 4)


@pytest.mark.parametrize(
    "case",
    ["empty indices", "empty probabilities", "all ignored", "all ignored, smoothed", "zero target weight",
     "zero target weight, smoothed"],
)
def test_mean_over_nothing_is_a_connected_zero(case, device):
    """lossbook's one deliberate difference from torch, which returns NaN here."""
    options = {}
    if case.startswith("empty"):
        logits = torch.zeros(0, 3, device=device, dtype=torch.float64)
        target = torch.zeros(0, 3, device=device, dtype=torch.float64) if "prob" in case else torch.zeros(0, dtype=torch.long, device=device)
    else:
        logits = torch.randn(4, 3, 2, device=device, dtype=torch.float64)
        if case.startswith("all ignored"):
            target = torch.full((4, 2), 7, device=device)
            options["ignore_index"] = 7
        else:
            target = torch.zeros(4, 2, dtype=torch.long, device=device)
            options["weight"] = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64, device=device)
    if case.endswith("smoothed"):
        options["label_smoothing"] = 0.1
    logits.requires_grad_()
    loss = cross_entropy(logits, target, **options)
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))
    assert not torch.isfinite(F.cross_entropy(logits, target, **options))  # what torch does instead


# ------------------------------------------------------------------------------ bad input


def raises(error, match, fn, *args, **options):
    with pytest.raises(error, match=match):
        fn(*args, **options)


def test_cross_entropy_refusals():
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 2, 1, 0])
    raises(TypeError, "input must be a floating-point tensor, got dtype torch.int64", cross_entropy, labels[:, None].expand(4, 3), labels)
    raises(TypeError, "target must be a torch.Tensor, got list", cross_entropy, logits, [0, 2, 1, 0])
    raises(TypeError, "target must be an integer tensor of class indices, got dtype torch.bool", cross_entropy, logits, labels > 0)
    raises(ValueError, r"target must have shape \(\) \(one class index\) for unbatched input of shape \(3,\), got \(1,\)",
           cross_entropy, logits[0], labels[:1])
    raises(ValueError, r"target must have shape \(3,\) \(class probabilities\) for unbatched input of shape \(3,\), got \(\)",
           cross_entropy, logits[0], torch.tensor(0.5))
    raises(ValueError, r"input must have shape \(N, C, \*\) or \(C,\), got \(\)", cross_entropy, logits[0, 0], labels[0])
    raises(TypeError, "target must be an integer tensor of class indices, got dtype torch.complex64", cross_entropy,
           logits, labels.to(torch.complex64))
    # the (N, 1) vs (N,) trap and other index shapes
    raises(ValueError, r"target must have shape \(N, \*\) = \(4,\) for input of shape \(4, 3\), got \(4, 1\)",
           cross_entropy, logits, labels[:, None])
    raises(ValueError, r"target must have shape \(N, \*\) = \(2, 5\) for input of shape \(2, 3, 5\), got \(2, 4\)",
           cross_entropy, torch.randn(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))
    raises(ValueError, r"got \(4, 3\): an integer target holds class indices; one-hot or probability targets must be floating",
           cross_entropy, logits, F.one_hot(labels, 3))
    # a softmax over one class is 1, and the loss 0, whatever the input: refused (torch returns 0)
    for target in (torch.zeros(4, dtype=torch.long), torch.ones(4, 1), torch.zeros(4, 1, 5, dtype=torch.long)):
        logit = torch.randn(4, 1, *target.shape[2:]) if target.dim() == 3 else torch.randn(4, 1)
        if target.dim() == 3:
            target = target[:, 0]
        raises(ValueError, r"input must hold at least 2 classes along dim 1, got shape \(4, 1.*binary_cross_entropy_with_logits",
               cross_entropy, logit, target)
    assert F.cross_entropy(torch.randn(4, 1), torch.ones(4, 1)).item() == 0  # what torch does instead
    # out-of-range class indices (checked on the CPU)
    raises(ValueError, "target holds class index 3, but input has 3 classes", cross_entropy, logits, torch.tensor([0, 3, 1, 0]))
    raises(ValueError, "target holds class index -1, but input has 3 classes", cross_entropy, logits, torch.tensor([0, -1, 1, 0]))
    # probability targets
    raises(ValueError, r"input and target must have the same shape, got \(4, 3\) and \(4, 2\)", cross_entropy, logits, torch.rand(4, 2))
    raises(ValueError, r"got \(4, 3\) and \(4,\); .* class indices must be an integer tensor \(target.long\(\)\)",
           cross_entropy, logits, labels.float())
    raises(ValueError, r"target must hold probabilities in \[0, 1\], got 1.5", cross_entropy, logits, torch.full((4, 3), 1.5))
    raises(ValueError, r"target must hold probabilities in \[0, 1\], got -0.5", cross_entropy, logits, torch.full((4, 3), -0.5))
    for ignore_index in (0, -1, 255):
        raises(ValueError, f"ignore_index applies to class-index targets; got ignore_index={ignore_index}",
               cross_entropy, logits, torch.softmax(logits, 1), ignore_index=ignore_index)
    cross_entropy(logits, torch.softmax(logits, 1), ignore_index=None)  # accepted: nothing to ignore
    # class weights
    raises(ValueError, r"weight must have shape \(C,\) = \(3,\), one value per class, got \(4,\)",
           cross_entropy, logits, labels, weight=torch.ones(4))
    raises(ValueError, r"weight must have shape \(C,\) = \(3,\), one value per class, got \(1, 3\)",
           cross_entropy, logits, labels, weight=torch.ones(1, 3))
    raises(TypeError, "weight must be a floating-point tensor, got dtype torch.int64", cross_entropy, logits, labels,
           weight=torch.ones(3, dtype=torch.long))
    raises(TypeError, "weight must be a torch.Tensor, got list", cross_entropy, logits, labels, weight=[1.0, 2.0, 3.0])
    # label smoothing
    raises(ValueError, "label_smoothing must be a non-negative number, got -0.1", cross_entropy, logits, labels, label_smoothing=-0.1)
    raises(ValueError, r"label_smoothing must be in \[0, 1\], got 1.5", cross_entropy, logits, labels, label_smoothing=1.5)
    raises(ValueError, "label_smoothing must be a non-negative number, got nan", cross_entropy, logits, labels,
           label_smoothing=float("nan"))
    raises(TypeError, "label_smoothing must be a number, got str", cross_entropy, logits, labels, label_smoothing="0.1")
    raises(ValueError, "reduction must be one of 'none', 'mean', 'sum'; got 'batchmean'", cross_entropy, logits, labels,
           reduction="batchmean")


def test_binary_refusals():
    logits, target = torch.randn(4, 3), torch.rand(4, 3)
    raises(ValueError, r"input and target must have the same shape, got \(4, 1\) and \(4,\)",
           binary_cross_entropy_with_logits, logits[:, :1], target[:, 0])
    raises(ValueError, r"target must hold probabilities in \[0, 1\], got 2.0", binary_cross_entropy_with_logits,
           logits, torch.full((4, 3), 2.0))
    raises(ValueError, r"target must hold probabilities in \[0, 1\], got -1.0", binary_cross_entropy_with_logits,
           logits, torch.full((4, 3), -1.0))  # labels in {-1, +1} belong to logistic_loss
    raises(ValueError, r"weight must broadcast to input's shape \(4, 3\) without changing it .*got \(4,\)",
           binary_cross_entropy_with_logits, logits, target, weight=torch.ones(4))
    raises(ValueError, r"weight must broadcast to input's shape \(4, 3\) without changing it .*got \(2, 4, 3\)",
           binary_cross_entropy_with_logits, logits, target, weight=torch.ones(2, 4, 3))
    raises(ValueError, r"pos_weight must broadcast to input's shape \(4, 3\) without changing it "
           r"\(for example shape \(3,\): one weight per class along the last dimension\), got \(4,\)",
           binary_cross_entropy_with_logits, logits, target, pos_weight=torch.ones(4))
    raises(ValueError, r"pos_weight must broadcast .* got \(4, 1, 3\)", binary_cross_entropy_with_logits, logits, target,
           pos_weight=torch.ones(4, 1, 3))
    raises(TypeError, "pos_weight must be a floating-point tensor, got dtype torch.int64", binary_cross_entropy_with_logits,
           logits, target, pos_weight=torch.ones(3, dtype=torch.long))
    raises(TypeError, "weight must be a torch.Tensor, got float", binary_cross_entropy_with_logits, logits, target, weight=2.0)


# ------------------------------------------------------------------------------ precision


def test_probability_form_would_fail_in_half_precision():
    """The motivation of the chapter, pinned: log(softmax) of +-50 in float16 is -inf, ours is finite."""
    logits = torch.tensor([[50.0, -50.0, 0.0]], dtype=torch.float16)
    assert torch.isinf(torch.log(torch.softmax(logits, dim=1))[0, 1])
    assert cross_entropy(logits, torch.tensor([1])).item() == 100.0


def test_numpy_cross_check_of_the_formula():
    """A plain float64 NumPy transcription of equation (1) with smoothing and class weights."""
    logits, target = index_pair((5, 4), seed=12)
    weight = np.array([0.3, 1.0, 2.0, 0.7])
    z = logits.numpy()
    log_q = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
    smoothed = 0.8 * np.eye(4)[target.numpy()] + 0.2 / 4
    expected = -(weight * smoothed * log_q).sum(1)
    ours = cross_entropy(logits, target, weight=torch.from_numpy(weight), label_smoothing=0.2, reduction="none")
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)


# ------------------------------------------------------- what PyTorch accepts, lossbook accepts


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("kind", ["indices", "some ignored", "probabilities"])
def test_class_weights_of_either_sign_match_torch(kind, label_smoothing, device):
    """Negative class weights, accepted by PyTorch: the index mean divides by a total weight of any sign."""
    logits = index_pair((8, 4), device=device, seed=14)[0].requires_grad_()
    target, ignore_index = ce_target(kind, (8, 4), device, seed=15)
    weight = torch.tensor([1.0, -0.5, 2.0, -1.25], dtype=torch.float64, device=device)
    for reduction in REDUCTIONS:
        options = dict(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction)
        ours = cross_entropy(logits, target, **options)
        torch.testing.assert_close(ours, F.cross_entropy(logits, target, **options), rtol=1e-12, atol=1e-14)
        expected = numpy_cross_entropy(logits.detach().cpu(), target.cpu(), weight.cpu(), ignore_index,
                                       label_smoothing, reduction)
        np.testing.assert_allclose(ours.detach().cpu().numpy(), expected, rtol=1e-12, atol=1e-14)
        grads = [torch.autograd.grad(loss.sum(), logits)[0] for loss in (ours, F.cross_entropy(logits, target, **options))]
        torch.testing.assert_close(*grads, rtol=1e-12, atol=1e-14)


def test_class_weights_summing_to_zero_give_a_connected_zero():
    """Weights of both signs can cancel over the batch's targets: the mean is then 0, not inf or NaN."""
    logits = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 1, 0, 1])
    weight = torch.tensor([1.0, -1.0, 5.0], dtype=torch.float64)
    for smoothing in (0.0, 0.3):
        loss = cross_entropy(logits, target, weight=weight, label_smoothing=smoothing)
        assert loss.item() == 0.0 and loss.grad_fn is not None
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.equal(grad, torch.zeros_like(grad))
        assert not torch.isfinite(F.cross_entropy(logits, target, weight=weight, label_smoothing=smoothing))


@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.2}, {"weight": torch.tensor([0.5, 2.0, 1.0, 1.5], dtype=torch.float64)}])
def test_unbatched_input(options, device):
    """Logits (C,) against an index () or probabilities (C,), as in PyTorch; "none" is 0-d."""
    options = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in options.items()}
    logits = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(16)).to(device).requires_grad_()
    probabilities = torch.softmax(torch.randn(4, dtype=torch.float64), dim=0).to(device)
    for target in (torch.tensor(2, device=device), torch.tensor(2, dtype=torch.int16, device=device), probabilities):
        for reduction in REDUCTIONS:
            ours = cross_entropy(logits, target, reduction=reduction, **options)
            assert ours.shape == ()
            reference = target.long() if not target.is_floating_point() else target
            torch.testing.assert_close(ours, F.cross_entropy(logits, reference, reduction=reduction, **options))
            batched = cross_entropy(logits[None], target[None], reduction=reduction, **options)
            torch.testing.assert_close(ours, batched[0] if reduction == "none" else batched)
    ignored = cross_entropy(logits, torch.tensor(-100, device=device))  # nothing to average: 0
    assert ignored.item() == 0.0 and ignored.grad_fn is not None


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64])
def test_every_integer_dtype_holds_class_indices(dtype, device):
    """Class indices of any integer dtype give the int64 result (PyTorch's kernel takes int64 and uint8)."""
    logits = index_pair((6, 5, 3), device=device, seed=17)[0].requires_grad_()
    target = torch.randint(0, 5, (6, 3), generator=torch.Generator().manual_seed(18)).to(device)
    target[0, 0] = 4
    ignore_index = 4 if dtype == torch.uint8 else -100  # uint8 cannot hold -100
    if dtype != torch.uint8:
        target[1, 1] = -100
    weight = torch.tensor([0.5, 1.0, 2.0, 1.5, 1.0], dtype=torch.float64, device=device)
    for options in ({}, {"weight": weight, "label_smoothing": 0.1}):
        for reduction in REDUCTIONS:
            ours = cross_entropy(logits, target.to(dtype), ignore_index=ignore_index, reduction=reduction, **options)
            expected = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction=reduction, **options)
            torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-14)
            grads = [torch.autograd.grad(loss.sum(), logits)[0] for loss in (ours, expected)]
            torch.testing.assert_close(*grads, rtol=1e-12, atol=1e-14)
    if device.type == "cpu":  # index values are checked on the CPU, in every dtype
        with pytest.raises(ValueError, match="target holds class index 5, but input has 5 classes"):
            cross_entropy(logits, torch.full((6, 3), 5, dtype=dtype))


def test_integer_versus_floating_targets_still_decide_the_kind():
    """Indices are integer, probabilities floating, whatever their dtype; shapes are never guessed."""
    logits = torch.randn(4, 3, dtype=torch.float64)
    labels = torch.tensor([0, 2, 1, 0])
    one_hot = F.one_hot(labels, 3)
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):  # probabilities
        torch.testing.assert_close(cross_entropy(logits, one_hot.to(dtype)), cross_entropy(logits, labels),
                                   rtol=1e-12, atol=1e-14)
    for dtype in (torch.uint8, torch.int8, torch.int32):  # an integer one-hot is not probabilities
        with pytest.raises(ValueError, match="an integer target holds class indices; one-hot or probability targets"):
            cross_entropy(logits, one_hot.to(dtype))
    for dtype in (torch.float16, torch.float32):  # floating indices are not indices
        with pytest.raises(ValueError, match=r"class indices must be an integer tensor \(target.long\(\)\)"):
            cross_entropy(logits, labels.to(dtype))
    with pytest.raises(TypeError, match="target must be an integer tensor of class indices, got dtype torch.bool"):
        cross_entropy(logits, labels > 0)


@pytest.mark.parametrize(
    "options",
    [{}, {"label_smoothing": 0.3}, {"weight": torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)},
     {"ignore_index": 1}, {"ignore_index": None, "label_smoothing": 0.1}],
)
@pytest.mark.parametrize("ignored", [False, True])
def test_checked_and_unchecked_paths_agree(options, ignored):
    """Eagerly on the CPU the index check tells whether anything counts, and PyTorch's own mean
    is used when it cannot divide by 0; unchecked (validate_args(False), CUDA, tracing) the
    mean divides the sum by a total computed on the device. Both give the same numbers."""
    logits, target = index_pair((6, 3, 2), seed=19)
    if ignored and options.get("ignore_index", -100) is not None:
        target[0] = options.get("ignore_index", -100)
    logits.requires_grad_()
    for reduction in REDUCTIONS:
        checked = cross_entropy(logits, target, reduction=reduction, **options)
        with validate_args(False):
            unchecked = cross_entropy(logits, target, reduction=reduction, **options)
        torch.testing.assert_close(checked, unchecked, rtol=1e-13, atol=1e-15)
        grads = [torch.autograd.grad(loss.sum(), logits)[0] for loss in (checked, unchecked)]
        torch.testing.assert_close(*grads, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "options",
    [{}, {"label_smoothing": 0.2}, {"weight": torch.tensor([0.5, 2.0, 1.0, 1.5], dtype=torch.float64), "label_smoothing": 0.1},
     {"ignore_index": 1, "label_smoothing": 0.1}],
)
def test_half_precision_logits_give_float32_arithmetic(options, dtype):
    """Half logits: the log-softmax in float32, then the same loss as the float32 logits (PyTorch's kernel)."""
    logits, target = index_pair((16, 4, 3), dtype=torch.float32, scale=20.0, seed=20)
    low = logits.to(dtype)
    single = low.float()
    for reduction in REDUCTIONS:
        loss = cross_entropy(low, target, reduction=reduction, **options)
        assert loss.dtype == torch.float32
        torch.testing.assert_close(loss, cross_entropy(single, target, reduction=reduction, **options), rtol=1e-5, atol=1e-6)
