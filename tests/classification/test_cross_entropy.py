"""Tests of book/classification/cross_entropy.md: cross_entropy and binary_cross_entropy_with_logits."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from loss_checks import (
    check_bad_input,
    check_gradcheck,
    check_half_precision,
    check_module,
    check_reductions,
)

from lossbook import binary_cross_entropy_with_logits, cross_entropy

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
    options = dict(
        weight=weight if weighted else None,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    ours = cross_entropy(logits, target, **options)
    theirs = F.cross_entropy(logits, target, **options)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)
    ours_grad, theirs_grad = (torch.autograd.grad(loss.sum(), logits)[0] for loss in (ours, theirs))
    torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", TARGET_KINDS)
def test_cross_entropy_full_smoothing_matches_torch(kind, device):
    """label_smoothing = 1 (allowed by torch and lossbook) makes the target uniform."""
    logits = index_pair((5, 3), device=device)[0]
    target, ignore_index = ce_target(kind, (5, 3), device)
    for reduction in REDUCTIONS:
        options = dict(ignore_index=ignore_index, label_smoothing=1.0, reduction=reduction)
        torch.testing.assert_close(cross_entropy(logits, target, **options), F.cross_entropy(logits, target, **options))


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


def test_binary_cross_entropy_extreme_logits_match_torch():
    logits = torch.tensor([-800.0, -50.0, -1e-3, 0.0, 1e-3, 50.0, 800.0], dtype=torch.float64)
    for label in (0.0, 0.3, 1.0):
        target = torch.full_like(logits, label)
        torch.testing.assert_close(
            binary_cross_entropy_with_logits(logits, target, reduction="none"),
            F.binary_cross_entropy_with_logits(logits, target, reduction="none"),
            rtol=1e-12,
            atol=1e-14,
        )


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


# ------------------------------------------------------------------------------ gradcheck


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("weighted", "label_smoothing"), [(False, 0.0), (True, 0.0), (True, 0.3)])
def test_gradcheck_class_indices(weighted, label_smoothing, reduction):
    logits, target = index_pair((4, 3, 2), scale=2.0, seed=8)
    target[0, 0] = -100
    weight = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64) if weighted else None
    assert torch.autograd.gradcheck(
        lambda z: cross_entropy(z, target, weight=weight, label_smoothing=label_smoothing, reduction=reduction),
        (logits.requires_grad_(),),
    )


def test_gradcheck_probabilities_and_binary():
    check_gradcheck(cross_entropy, pair=index_pair)
    check_gradcheck(cross_entropy, pair=probability_pair)
    check_gradcheck(cross_entropy, pair=probability_pair, label_smoothing=0.2,
                    weight=torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64))
    check_gradcheck(binary_cross_entropy_with_logits, pair=binary_pair)
    check_gradcheck(binary_cross_entropy_with_logits, pair=binary_pair,
                    weight=torch.rand(4, dtype=torch.float64), pos_weight=torch.tensor([3.0], dtype=torch.float64))


@pytest.mark.parametrize("fn, pair, options", [
    (cross_entropy, probability_pair, {"label_smoothing": 0.1}),
    (binary_cross_entropy_with_logits, binary_pair, {"pos_weight": torch.tensor([2.0], dtype=torch.float64)}),
])
def test_gradcheck_through_soft_targets(fn, pair, options):
    """Soft targets (distillation, learned labels) get gradients too, and they are right."""
    input, target = pair((3, 4), scale=2.0, seed=13)
    for reduction in REDUCTIONS:
        assert torch.autograd.gradcheck(
            lambda a, b: fn(a, b, **options, reduction=reduction), (input.requires_grad_(), target.requires_grad_())
        )


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


# ---------------------------------------------------------------- reductions, empty means


@pytest.mark.parametrize("pair", [index_pair, probability_pair])
def test_cross_entropy_reductions(pair, device):
    logits, target = pair((4, 3, 5), device=device)
    per_position = cross_entropy(logits, target, reduction="none")
    assert per_position.shape == (4, 5) and per_position.device == logits.device
    torch.testing.assert_close(cross_entropy(logits, target, reduction="sum"), per_position.sum())
    torch.testing.assert_close(cross_entropy(logits, target), per_position.mean())


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


def test_binary_reductions_and_empty_mean(device):
    check_reductions(binary_cross_entropy_with_logits, device, pair=binary_pair)
    check_reductions(binary_cross_entropy_with_logits, device, pair=binary_pair,
                     pos_weight=torch.tensor([2.0], dtype=torch.float64, device=device))
    empty = torch.zeros(0, device=device)
    assert torch.isnan(F.binary_cross_entropy_with_logits(empty, empty))


# ------------------------------------------------------------------------------ bad input


def test_bad_input_generic():
    check_bad_input(binary_cross_entropy_with_logits)
    check_bad_input(cross_entropy, integer_target_ok=True)


def raises(error, match, fn, *args, **options):
    with pytest.raises(error, match=match):
        fn(*args, **options)


def test_cross_entropy_refusals():
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 2, 1, 0])
    raises(TypeError, "input must be a floating-point tensor, got dtype torch.int64", cross_entropy, labels[:, None].expand(4, 3), labels)
    raises(TypeError, "target must be a torch.Tensor, got list", cross_entropy, logits, [0, 2, 1, 0])
    raises(TypeError, "target must be an integer tensor of class indices, got dtype torch.bool", cross_entropy, logits, labels > 0)
    raises(ValueError, r"input must have shape \(N, C, \*\), got \(3,\)", cross_entropy, logits[0], labels[:1])
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


@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1, "weight": torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0])}])
@pytest.mark.parametrize("pair", [index_pair, probability_pair])
def test_cross_entropy_half_precision(pair, options, device):
    """Logits of +-50 in float16/bfloat16: the float32 loss of the rounded values, finite gradients."""
    logits, target = pair((32, 5, 2), dtype=torch.float32, scale=50.0, seed=11, extreme=True)
    options = {name: value.to(device) if isinstance(value, torch.Tensor) else value for name, value in options.items()}
    target = target.to(device)
    unrounded = cross_entropy(logits.to(device), target, **options)
    for dtype in (torch.float16, torch.bfloat16):
        low = logits.to(dtype).to(device).requires_grad_()
        low_target = target.to(dtype) if target.is_floating_point() else target
        loss = cross_entropy(low, low_target, **options)
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        reference = cross_entropy(low.detach().float(), low_target.float() if target.is_floating_point() else target, **options)
        torch.testing.assert_close(loss, reference, rtol=1e-5, atol=0)
        torch.testing.assert_close(loss, unrounded, rtol=2e-2, atol=0)
        loss.backward()
        assert low.grad.dtype == dtype and torch.isfinite(low.grad).all()
        single = low.detach().float().requires_grad_()
        cross_entropy(single, low_target.float() if target.is_floating_point() else target, **options).backward()
        torch.testing.assert_close(low.grad, single.grad.to(dtype))  # float32's gradient, rounded
        with torch.autocast(device_type=torch.device(device).type, dtype=dtype):
            assert torch.isfinite(cross_entropy(low.detach(), low_target, **options))


def test_binary_half_precision(device):
    check_half_precision(binary_cross_entropy_with_logits, device, scale=50.0, pair=binary_pair)
    check_half_precision(binary_cross_entropy_with_logits, device, scale=50.0, pair=binary_pair,
                         pos_weight=torch.tensor([4.0], device=device), weight=torch.rand(64, device=device))


def test_probability_form_would_fail_in_half_precision():
    """The motivation of the chapter, pinned: log(softmax) of +-50 in float16 is -inf, ours is finite."""
    logits = torch.tensor([[50.0, -50.0, 0.0]], dtype=torch.float16)
    assert torch.isinf(torch.log(torch.softmax(logits, dim=1))[0, 1])
    assert cross_entropy(logits, torch.tensor([1])).item() == 100.0


# --------------------------------------------------------------------------------- module


def test_modules(device):
    check_module(cross_entropy, device, pair=index_pair)
    check_module(cross_entropy, device, pair=index_pair, label_smoothing=0.1, reduction="sum",
                 weight=torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64))
    check_module(cross_entropy, device, pair=probability_pair)
    check_module(binary_cross_entropy_with_logits, device, pair=binary_pair)
    check_module(binary_cross_entropy_with_logits, device, pair=binary_pair,
                 pos_weight=torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


def test_module_moves_its_weight(device):
    import lossbook.nn

    module = lossbook.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 3.0]), ignore_index=1).to(device)
    logits, target = index_pair((5, 3), dtype=torch.float32, device=device)
    assert module.weight.device == logits.device
    torch.testing.assert_close(
        module(logits, target), F.cross_entropy(logits, target, weight=module.weight, ignore_index=1)
    )


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
