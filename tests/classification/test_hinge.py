"""Tests of book/classification/hinge.md: hinge_loss and multiclass_hinge_loss.

The generic battery (bad input, reductions and empty means, gradcheck, half precision,
module, tracing) runs over tests/registry.py in tests/test_battery.py. Here: the oracles
(scikit-learn, PyTorch, which the Weston-Watkins form calls for float32 and float64, and
NumPy transcriptions of (1) and (7)), hand-derived gradients, properties and refusals.
"""

from itertools import product

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import random_margin_pair
from sklearn.metrics import hinge_loss as sklearn_hinge_loss

from lossbook import hinge_loss, multiclass_hinge_loss

SHAPES = [(2,), (7,), (4, 5), (2, 3, 4)]
REDUCTIONS = ["none", "mean", "sum"]
MARGINS = [0.0, 0.5, 1.0, 2.5]
MODES = ["weston_watkins", "crammer_singer"]
SIZES = [(1, 2), (5, 3), (16, 10)]  # (N, C)
BINARY_OPTIONS = [{}, {"margin": 2.0}, {"margin": 0.0}, {"squared": True}, {"margin": 0.5, "squared": True}]


def class_scores(n, classes, device="cpu", seed=0, scale=1.0, kinks=False, dtype=torch.float64):
    """Scores (N, C) and class indices (N,); ``kinks`` rounds the scores so that many hinge terms are exactly 0."""
    generator = torch.Generator().manual_seed(seed)
    scores = scale * torch.randn(n, classes, dtype=torch.float64, generator=generator)
    if kinks:
        scores = scores.round()
    target = torch.randint(0, classes, (n,), generator=generator)
    return scores.to(dtype).to(device), target.to(device)


def class_weight(classes, device="cpu", seed=1):
    return torch.rand(classes, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)).to(device)


def numpy_multiclass(scores, target, margin=1.0, p=1, mode="weston_watkins", weight=None):
    """Per-sample loss, a plain float64 transcription of equation (7) of the chapter."""
    s, t = np.asarray(scores, dtype=np.float64), np.asarray(target)
    n, classes = s.shape
    true = s[np.arange(n), t]
    is_true = np.eye(classes, dtype=bool)[t]
    if mode == "weston_watkins":
        terms = np.where(is_true, 0.0, np.maximum(0.0, margin - true[:, None] + s) ** p)
        loss = terms.sum(1) / classes
    else:
        rival = np.where(is_true, -np.inf, s).max(1)
        loss = np.maximum(0.0, margin - true + rival) ** p
    return loss if weight is None else loss * np.asarray(weight)[t]


# --- oracles: binary ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_binary_matches_sklearn(shape, device):
    scores, labels = random_margin_pair(shape, scale=2.0, device=device)
    labels.view(-1)[:2] = torch.tensor([1.0, -1.0])  # scikit-learn needs both classes
    expected = sklearn_hinge_loss(labels.cpu().ravel().numpy(), scores.cpu().ravel().numpy())
    np.testing.assert_allclose(hinge_loss(scores, labels).item(), expected, rtol=1e-13)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("margin", MARGINS)
@pytest.mark.parametrize("squared", [False, True])
def test_binary_matches_numpy(shape, margin, squared, device):
    scores, labels = random_margin_pair(shape, scale=2.0, seed=1, device=device)
    per_element = np.maximum(0.0, margin - labels.cpu().numpy() * scores.cpu().numpy()) ** (2 if squared else 1)
    for reduction, expected in [("none", per_element), ("mean", per_element.mean()), ("sum", per_element.sum())]:
        ours = hinge_loss(scores, labels, margin=margin, squared=squared, reduction=reduction)
        assert ours.shape == np.shape(expected) and ours.device == scores.device
        np.testing.assert_allclose(ours.cpu().numpy(), expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("margin", MARGINS)
def test_binary_is_twice_two_class_multi_margin(margin, device):
    scores, labels = random_margin_pair((20,), scale=2.0, seed=2, device=device)
    scores.requires_grad_()
    two_classes = torch.stack([-scores / 2, scores / 2], dim=1)
    classes = ((labels + 1) / 2).long()
    for reduction in REDUCTIONS:
        ours = hinge_loss(scores, labels, margin=margin, reduction=reduction)
        theirs = 2 * F.multi_margin_loss(two_classes, classes, margin=margin, reduction=reduction)
        torch.testing.assert_close(ours, theirs, rtol=1e-13, atol=1e-15)
        grads = [torch.autograd.grad(value.sum(), scores, retain_graph=True)[0] for value in (ours, theirs)]
        torch.testing.assert_close(*grads, rtol=1e-13, atol=1e-15)


def test_binary_docstring_values():
    scores, labels = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([1, 1, 1])
    assert hinge_loss(scores, labels, reduction="none").tolist() == [0.0, 0.5, 2.0]
    assert hinge_loss(scores, labels, squared=True, reduction="none").tolist() == [0.0, 0.25, 4.0]
    assert hinge_loss(scores, -labels, margin=0.0, reduction="sum").item() == 2.5
    assert hinge_loss(scores, labels.double(), margin=2.0, reduction="none").tolist() == [0.0, 1.5, 3.0]


# --- oracles: multi-class -----------------------------------------------------------------


@pytest.mark.parametrize(("size", "p", "margin", "weighted", "kinks"),
                         list(product(SIZES, [1, 2], [0.0, 1.0, 2.5], [False, True], [False, True])))
def test_weston_watkins_matches_torch(size, p, margin, weighted, kinks, device):
    scores, target = class_scores(*size, device=device, seed=3, kinks=kinks)
    scores.requires_grad_()
    weight = class_weight(size[1], device) if weighted else None
    for reduction in REDUCTIONS:
        ours = multiclass_hinge_loss(scores, target, margin=margin, p=p, weight=weight, reduction=reduction)
        theirs = F.multi_margin_loss(scores, target, p=p, margin=margin, weight=weight, reduction=reduction)
        torch.testing.assert_close(ours, theirs, rtol=1e-13, atol=1e-15)
        grads = [torch.autograd.grad(value.sum(), scores)[0] for value in (ours, theirs)]
        torch.testing.assert_close(*grads, rtol=1e-13, atol=1e-15)  # the kinks too: both take slope 0


@pytest.mark.parametrize(("n", "classes"), [(3, 3), (12, 3), (40, 5), (50, 10)])
def test_crammer_singer_matches_sklearn(n, classes, device):
    scores, target = class_scores(n, classes, device=device, seed=4, scale=2.0)
    s_np, t_np, labels = scores.cpu().numpy(), target.cpu().numpy(), np.arange(classes)
    ours = multiclass_hinge_loss(scores, target, mode="crammer_singer")
    np.testing.assert_allclose(ours.item(), sklearn_hinge_loss(t_np, s_np, labels=labels), rtol=1e-13)
    # sklearn's sample_weight divides by the total weight; lossbook, as torch, by N
    weight = class_weight(classes, device)
    weighted_sum = multiclass_hinge_loss(scores, target, mode="crammer_singer", weight=weight, reduction="sum")
    sample_weight = weight[target].cpu().numpy()
    expected = sklearn_hinge_loss(t_np, s_np, labels=labels, sample_weight=sample_weight)
    np.testing.assert_allclose(weighted_sum.item() / sample_weight.sum(), expected, rtol=1e-13)


@pytest.mark.parametrize(("size", "margin", "weighted", "mode"), list(product(SIZES, MARGINS, [False, True], MODES)))
def test_multiclass_matches_numpy(size, margin, weighted, mode, device):
    scores, target = class_scores(*size, device=device, seed=5, scale=2.0)
    weight = class_weight(size[1], device) if weighted else None
    for p in (1, 2):
        expected = numpy_multiclass(scores.cpu(), target.cpu(), margin, p, mode, None if weight is None else weight.cpu())
        for reduction, reduce in [("none", lambda v: v), ("sum", np.sum), ("mean", np.mean)]:
            ours = multiclass_hinge_loss(scores, target, margin=margin, p=p, mode=mode, weight=weight,
                                         reduction=reduction)
            np.testing.assert_allclose(ours.cpu().numpy(), reduce(expected), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("mode", MODES)
def test_extra_dimensions_are_samples(mode, device):
    generator = torch.Generator().manual_seed(6)
    scores = torch.randn(2, 5, 3, 4, dtype=torch.float64, generator=generator).to(device)
    target = torch.randint(0, 5, (2, 3, 4), generator=generator).to(device)
    weight = class_weight(5, device)
    per_pixel = multiclass_hinge_loss(scores, target, mode=mode, weight=weight, reduction="none")
    flat = multiclass_hinge_loss(scores.movedim(1, -1).reshape(-1, 5), target.reshape(-1), mode=mode,
                                 weight=weight, reduction="none")
    assert per_pixel.shape == (2, 3, 4)
    torch.testing.assert_close(per_pixel.reshape(-1), flat, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(multiclass_hinge_loss(scores, target, mode=mode, weight=weight), flat.mean())


@pytest.mark.parametrize("mode", MODES)
def test_weighted_mean_divides_by_the_number_of_samples(mode):
    scores, target = class_scores(9, 4, seed=7, scale=2.0)
    weight = class_weight(4)
    total = multiclass_hinge_loss(scores, target, mode=mode, weight=weight, reduction="sum")
    torch.testing.assert_close(multiclass_hinge_loss(scores, target, mode=mode, weight=weight), total / 9)
    # a zero weight silences its class; the mean still divides by N
    zero = torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    per_sample = multiclass_hinge_loss(scores, target, mode=mode, weight=zero, reduction="none")
    assert (per_sample[target == 0] == 0).all()


def test_multiclass_docstring_values():
    scores, labels = torch.tensor([[1.0, 0.5, 0.5], [0.0, 1.0, -5.0]]), torch.tensor([0, 0])
    torch.testing.assert_close(multiclass_hinge_loss(scores, labels, reduction="none"), torch.tensor([1 / 3, 2 / 3]))
    assert multiclass_hinge_loss(scores, labels, mode="crammer_singer", reduction="none").tolist() == [0.5, 2.0]
    assert multiclass_hinge_loss(scores, labels, p=2, mode="crammer_singer", reduction="sum").item() == 4.25


# --- gradients ----------------------------------------------------------------------------


@pytest.mark.parametrize("margin", [0.0, 1.0, 2.0])
def test_binary_hand_derived_gradient(margin):
    scores, labels = random_margin_pair((6, 5), scale=2.0, seed=8)
    scores[0, 0], labels[0, 0] = margin, 1.0  # one point on the kink
    scores.requires_grad_()
    m = (labels * scores).detach()
    inside = (m < margin).double()
    (grad,) = torch.autograd.grad(hinge_loss(scores, labels, margin=margin, reduction="sum"), scores)
    torch.testing.assert_close(grad, -labels * inside, rtol=0, atol=0)  # eq. (4), slope 0 at the kink
    assert grad[0, 0] == 0
    (grad,) = torch.autograd.grad(hinge_loss(scores, labels, margin=margin, squared=True), scores)
    torch.testing.assert_close(grad, -2 * labels * (margin - m).clamp(min=0) / 30, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("kinks", [False, True])
def test_multiclass_hand_derived_gradient(kinks):
    """Equation (9); with integer scores many h_j are exactly 0, where the slope is 0 (as in PyTorch)."""
    scores, target = class_scores(20, 4, seed=9, scale=2.0, kinks=kinks)
    scores.requires_grad_()
    s = scores.detach()
    one_hot = F.one_hot(target, 4).bool()
    h = (1 - s.gather(1, target[:, None]) + s).masked_fill(one_hot, 0.0)
    for p in (1, 2):
        slope = (h > 0).double() if p == 1 else 2 * h.clamp(min=0)
        expected = slope / 4
        expected[one_hot] = -expected.sum(1)
        (grad,) = torch.autograd.grad(multiclass_hinge_loss(scores, target, p=p, reduction="sum"), scores)
        torch.testing.assert_close(grad, expected, rtol=1e-14, atol=1e-15)  # eq. (9)
    if kinks:  # integer scores tie rivals; the split gradient is tested below
        return
    rival = s.masked_fill(one_hot, -torch.inf).argmax(1)
    violated = (1 - s.gather(1, target[:, None])[:, 0] + s.gather(1, rival[:, None])[:, 0] > 0).double()
    expected = torch.zeros_like(s)
    expected[torch.arange(20), rival] = violated
    expected[torch.arange(20), target] = -violated
    (grad,) = torch.autograd.grad(multiclass_hinge_loss(scores, target, mode="crammer_singer", reduction="sum"), scores)
    torch.testing.assert_close(grad, expected, rtol=0, atol=0)


def test_crammer_singer_splits_the_gradient_between_tied_rivals():
    scores = torch.tensor([[1.0, 0.5, 0.5, -4.0]], requires_grad=True)
    loss = multiclass_hinge_loss(scores, torch.tensor([0]), mode="crammer_singer")
    (grad,) = torch.autograd.grad(loss, scores)
    assert grad.tolist() == [[-1.0, 0.5, 0.5, 0.0]]


# --- properties ---------------------------------------------------------------------------


@st.composite
def margin_problems(draw, bound=1e3):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=6))
    scores = draw(hnp.arrays("float64", shape, elements=st.floats(-bound, bound, allow_nan=False)))
    labels = draw(hnp.arrays("float64", shape, elements=st.sampled_from([-1.0, 1.0])))
    return torch.from_numpy(scores), torch.from_numpy(labels)


@st.composite
def class_problems(draw, bound=1e2, max_classes=6):
    n, classes = draw(st.integers(1, 6)), draw(st.integers(2, max_classes))
    scores = draw(hnp.arrays("float64", (n, classes), elements=st.floats(-bound, bound, allow_nan=False)))
    target = draw(hnp.arrays("int64", (n,), elements=st.integers(0, classes - 1)))
    return torch.from_numpy(scores), torch.from_numpy(target)


@given(margin_problems(), st.floats(0.0, 1e2))
def test_binary_properties(problem, margin):
    scores, labels = problem
    per_element = hinge_loss(scores, labels, margin=margin, reduction="none")
    m = labels * scores
    assert (per_element >= 0).all()
    assert (per_element[m >= margin] == 0).all()  # zero once the margin is met
    assert torch.equal(per_element, hinge_loss(-scores, -labels, margin=margin, reduction="none"))  # symmetry
    torch.testing.assert_close(hinge_loss(scores, labels, margin=margin, squared=True, reduction="none"),
                               per_element**2)
    # more margin never costs less
    assert (hinge_loss(scores, labels, margin=margin + 1.0, reduction="none") >= per_element).all()


@given(margin_problems())
def test_binary_limits(problem):
    scores, labels = problem
    m = labels * scores
    hinge = hinge_loss(scores, labels, reduction="none")
    assert (hinge >= (m <= 0).double()).all()  # an upper bound of the 0-1 loss
    assert (hinge_loss(scores, labels, squared=True, reduction="none") >= (m <= 0).double()).all()
    assert torch.equal(hinge_loss(scores, labels, margin=0.0, reduction="none"), torch.relu(-m))  # perceptron
    torch.testing.assert_close(hinge, (1 - m).clamp(min=0))


@given(class_problems(), st.floats(0.0, 10.0), st.sampled_from(MODES), st.sampled_from([1, 2]))
def test_multiclass_properties(problem, margin, mode, p):
    scores, target = problem
    n, classes = scores.shape
    options = {"margin": margin, "mode": mode, "p": p, "reduction": "none"}
    per_sample = multiclass_hinge_loss(scores, target, **options)
    assert per_sample.shape == (n,) and (per_sample >= 0).all()
    # a shift of one sample's scores changes nothing
    shifted = scores + 10.0 * torch.arange(n, dtype=torch.float64)[:, None]
    torch.testing.assert_close(multiclass_hinge_loss(shifted, target, **options), per_sample, rtol=1e-9, atol=1e-9)
    # relabelling the classes changes nothing
    permutation = torch.randperm(classes, generator=torch.Generator().manual_seed(0))
    inverse = torch.argsort(permutation)
    torch.testing.assert_close(multiclass_hinge_loss(scores[:, permutation], inverse[target], **options), per_sample)
    # zero once the true class wins by more than the margin
    perfect = scores.clone()
    rival = scores.masked_fill(F.one_hot(target, classes).bool(), -torch.inf).amax(1)
    perfect[torch.arange(n), target] = rival + margin + 1.0
    assert (multiclass_hinge_loss(perfect, target, **options) == 0).all()


@given(class_problems())
def test_multiclass_limits(problem):
    scores, target = problem
    classes = scores.shape[1]
    ww = classes * multiclass_hinge_loss(scores, target, reduction="none")  # the sum, without 1/C
    cs = multiclass_hinge_loss(scores, target, mode="crammer_singer", reduction="none")
    assert (cs <= ww + 1e-9).all() and (ww <= (classes - 1) * cs + 1e-9).all()  # eq. (8)
    mistake = (scores.gather(1, target[:, None])[:, 0] <= scores.masked_fill(
        F.one_hot(target, classes).bool(), -torch.inf).amax(1)).double()
    assert (cs >= mistake - 1e-12).all()  # upper bound of the multi-class 0-1 loss (up to rounding)
    torch.testing.assert_close(multiclass_hinge_loss(scores, target, mode="crammer_singer", p=2, reduction="none"),
                               cs**2)


@given(class_problems(max_classes=2))
def test_two_classes_are_the_binary_hinge(problem):
    scores, target = problem
    binary = hinge_loss(scores[:, 1] - scores[:, 0], 2.0 * target - 1, reduction="none")
    torch.testing.assert_close(multiclass_hinge_loss(scores, target, mode="crammer_singer", reduction="none"), binary)
    torch.testing.assert_close(multiclass_hinge_loss(scores, target, reduction="none"), binary / 2)


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"margin": -1.0}, ValueError, "margin must be a non-negative number, got -1.0"),
        ({"margin": float("nan")}, ValueError, "margin must be a non-negative number, got nan"),
        ({"margin": float("inf")}, ValueError, "margin must be a non-negative number, got inf"),
        ({"margin": "1"}, TypeError, "margin must be a number, got str"),
        ({"margin": True}, TypeError, "margin must be a number, got bool"),
        ({"squared": 1}, TypeError, "squared must be True or False, got 1"),
    ],
)
def test_binary_refuses_bad_options(options, error, message):
    with pytest.raises(error, match=message):
        hinge_loss(torch.zeros(3), torch.ones(3), **options)


@pytest.mark.parametrize("labels", [torch.tensor([1.0, 0.0, 1.0]), torch.tensor([1, 2, -1]), torch.tensor([0.5, 1.0, 1.0])])
def test_binary_refuses_labels_other_than_signs(labels):
    with pytest.raises(ValueError, match=r"target must hold labels -1 or \+1, got .* \(for labels 0/1 use 2 \* target - 1\)"):
        hinge_loss(torch.zeros(3), labels)


SCORES, INDICES = torch.zeros(4, 3), torch.tensor([0, 1, 2, 1])


@pytest.mark.parametrize(
    ("input", "target", "options", "error", "message"),
    [
        (SCORES.long(), INDICES, {}, TypeError, "input must be a floating-point tensor"),
        (SCORES, INDICES.float(), {}, TypeError, "target must be an integer tensor of class indices"),
        (torch.zeros(3), torch.tensor([1]), {}, ValueError,
         r"target must have shape \(\) \(one class index\) for unbatched input of shape \(3,\), got \(1,\)"),
        (torch.tensor(0.0), torch.tensor(1), {}, ValueError, r"input must have shape \(N, C, \*\) or \(C,\), got \(\)"),
        (SCORES, INDICES.bool(), {}, TypeError, "target must be an integer tensor of class indices, got dtype torch.bool"),
        (SCORES, INDICES.tolist(), {}, TypeError, "target must be a torch.Tensor of class indices, got list"),
        (SCORES, INDICES[:, None], {}, ValueError, r"target must have shape \(N, \*\) = \(4,\)"),
        (SCORES, torch.tensor([0, 1, 3, 1]), {}, ValueError, "target holds class index 3, but input has 3 classes"),
        (SCORES, torch.tensor([0, -1, 2, 1]), {}, ValueError, "target holds class index -1"),
        (SCORES, INDICES, {"margin": -0.5}, ValueError, "margin must be a non-negative number, got -0.5"),
        (SCORES, INDICES, {"margin": float("inf")}, ValueError, "margin must be a non-negative number, got inf"),
        (SCORES, INDICES, {"p": 3}, ValueError, "p must be 1 or 2, as in torch.nn.functional.multi_margin_loss; got 3"),
        (SCORES, INDICES, {"p": True}, ValueError, "p must be 1 or 2"),
        (SCORES, INDICES, {"mode": "ww"}, ValueError, "mode must be one of 'weston_watkins', 'crammer_singer'; got 'ww'"),
        (SCORES, INDICES, {"reduction": "avg"}, ValueError, "reduction must be one of 'none', 'mean', 'sum'; got 'avg'"),
        (SCORES, INDICES, {"weight": torch.ones(2)}, ValueError, r"weight must have shape \(C,\) = \(3,\), one value per class, got \(2,\)"),
        (SCORES, INDICES, {"weight": torch.ones(3, dtype=torch.long)}, TypeError, "weight must be a floating-point tensor"),
        (SCORES, INDICES, {"weight": torch.tensor([1.0, -1.0, 1.0])}, ValueError, "weight must be non-negative, got -1.0"),
    ],
)
def test_multiclass_refuses_bad_input(input, target, options, error, message):
    with pytest.raises(error, match=message):
        multiclass_hinge_loss(input, target, **options)


# --- what PyTorch accepts ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("weighted", [False, True])
def test_unbatched_scores(mode, weighted, device):
    """Scores (C,) against an index (), as in PyTorch: the batch of one, and "none" is 0-d."""
    scores, target = class_scores(3, 5, device=device, seed=14, scale=2.0)
    weight = class_weight(5, device) if weighted else None
    for reduction in REDUCTIONS:
        batched = multiclass_hinge_loss(scores, target, mode=mode, weight=weight, p=2, reduction="none")
        for i in range(3):
            ours = multiclass_hinge_loss(scores[i], target[i], mode=mode, weight=weight, p=2, reduction=reduction)
            assert ours.shape == ()
            torch.testing.assert_close(ours, batched[i], rtol=1e-14, atol=1e-15)
            if mode == "weston_watkins":
                torch.testing.assert_close(ours, F.multi_margin_loss(scores[i], target[i], p=2, weight=weight,
                                                                     reduction=reduction))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32])
@pytest.mark.parametrize("mode", MODES)
def test_every_integer_dtype_holds_class_indices(dtype, mode, device):
    """Indices of any integer dtype give the int64 result (PyTorch's kernel takes int64 only)."""
    scores, target = class_scores(12, 4, device=device, seed=15, scale=2.0)
    scores.requires_grad_()
    weight = class_weight(4, device)
    for reduction in REDUCTIONS:
        ours = multiclass_hinge_loss(scores, target.to(dtype), mode=mode, weight=weight, reduction=reduction)
        expected = multiclass_hinge_loss(scores, target, mode=mode, weight=weight, reduction=reduction)
        torch.testing.assert_close(ours, expected, rtol=0, atol=0)
        grads = [torch.autograd.grad(loss.sum(), scores)[0] for loss in (ours, expected)]
        torch.testing.assert_close(*grads, rtol=0, atol=0)
    if device.type == "cpu":
        with pytest.raises(ValueError, match="target holds class index 4, but input has 4 classes"):
            multiclass_hinge_loss(scores, torch.full((12,), 4, dtype=dtype), mode=mode)


@pytest.mark.parametrize("p", [1, 2])
def test_weston_watkins_under_vmap_is_the_kernel(p):
    """Under torch.func.vmap (no batching rule for F.multi_margin_loss) the masked form is used:
    the same numbers and per-sample gradients as the kernel, sample by sample."""
    scores = torch.randn(4, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(16)).round()
    target = torch.randint(0, 5, (4, 6), generator=torch.Generator().manual_seed(17))
    weight = class_weight(5)

    def loss(s, t):
        return multiclass_hinge_loss(s, t, p=p, margin=1.0, weight=weight)

    torch.testing.assert_close(torch.func.vmap(loss)(scores, target), torch.stack([loss(*pair) for pair in zip(scores, target)]),
                               rtol=1e-14, atol=1e-15)
    per_sample = torch.func.vmap(torch.func.grad(loss))(scores, target)
    for i in range(4):
        s = scores[i].clone().requires_grad_()
        (expected,) = torch.autograd.grad(F.multi_margin_loss(s, target[i], p=p, weight=weight), s)
        torch.testing.assert_close(per_sample[i], expected, rtol=1e-14, atol=1e-15)
