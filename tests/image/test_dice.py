"""Tests of book/image/dice.md: the Dice family (Dice, Tversky, focal Tversky, generalized
Dice) and the Lovasz-softmax and Lovasz hinge, against NumPy transcriptions of MONAI's,
Abraham and Khan's and Berman et al.'s formulas, torchmetrics on hard predictions, and a
brute-force check of the Lovasz extension."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchmetrics.functional.segmentation as tm_segmentation
from hypothesis import given, settings
from hypothesis import strategies as st

import lossbook
from lossbook import (
    dice_loss,
    focal_tversky_loss,
    generalized_dice_loss,
    lovasz_hinge_loss,
    lovasz_softmax_loss,
    tversky_loss,
)
from lossbook.image.dice import lovasz_extension, lovasz_gradient, probabilities_and_truth, soft_counts

REDUCTIONS = ["none", "mean", "sum"]


def problem(shape, *, binary, seed=0, ignore=None, scale=2.0, empty_class=False):
    """float64 logits (N, C, *) and a target (masks or indices), some pixels ignored."""
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(shape, dtype=torch.float64, generator=g)
    if binary:
        target = (torch.rand(shape, generator=g) < 0.25).double()
        if empty_class:
            target[0, 0] = 0
    else:
        target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
        if empty_class:
            target[0] = torch.where(target[0] == 0, 1, target[0])
    if ignore is not None:
        target = torch.where(torch.rand(target.shape, generator=g) < 0.15, torch.tensor(ignore, dtype=target.dtype), target)
    return logits, target


# --- NumPy transcriptions ----------------------------------------------------------------------


def numpy_p_g(logits, target, ignore=None):
    """p, g of shape (N, C, P) in float64 NumPy, with a valid mask (N, 1 or C, P)."""
    z = logits.numpy().reshape(logits.shape[0], logits.shape[1], -1)
    t = target.numpy()
    if target.is_floating_point():
        t = t.reshape(z.shape)
        valid = np.ones_like(t) if ignore is None else (t != ignore).astype(float)
        return 1 / (1 + np.exp(-z)) * valid, np.where(valid > 0, t, 0.0), valid
    t = t.reshape(z.shape[0], 1, -1)
    valid = np.ones(t.shape) if ignore is None else (t != ignore).astype(float)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True) * valid
    g = (t == np.arange(z.shape[1])[None, :, None]).astype(float) * valid
    return p, g, valid


def monai_dice(p, g, smooth):
    """MONAI DiceLoss(batch=False, smooth_nr=smooth_dr=smooth): per image and class."""
    intersection = (p * g).sum(-1)
    return 1.0 - (2.0 * intersection + smooth) / (g.sum(-1) + p.sum(-1) + smooth)


def monai_tversky(p, g, alpha, beta, smooth, valid):
    """MONAI TverskyLoss: tp, alpha * sum p0 g1, beta * sum p1 g0 (ignored pixels masked)."""
    tp = (p * g).sum(-1)
    fp = alpha * (p * (1 - g) * valid).sum(-1)
    fn = beta * ((1 - p) * g * valid).sum(-1)
    return 1.0 - (tp + smooth) / (tp + fp + fn + smooth)


def abraham_focal_tversky(p, g, alpha_fn, gamma, smooth, valid):
    """Abraham and Khan's code: TI = (TP + s) / (TP + a FN + (1 - a) FP + s), loss = (1 - TI) ** gamma."""
    tp = (p * g).sum(-1)
    fn = (g * (1 - p) * valid).sum(-1)
    fp = ((1 - g) * p * valid).sum(-1)
    ti = (tp + smooth) / (tp + alpha_fn * fn + (1 - alpha_fn) * fp + smooth)
    return (1 - ti) ** gamma


def monai_generalized_dice(p, g, smooth):
    """MONAI GeneralizedDiceLoss(w_type='square', batch=False): infinite weights -> the image's max."""
    intersection = (g * p).sum(-1)
    ground, pred = g.sum(-1), p.sum(-1)
    with np.errstate(divide="ignore"):
        w = 1.0 / (ground * ground)
    infs = np.isinf(w)
    w[infs] = 0.0
    w = w + infs * w.max(axis=1, keepdims=True)
    numer = 2.0 * (intersection * w).sum(1) + smooth
    denom = ((ground + pred) * w).sum(1) + smooth
    return 1.0 - numer / denom


def berman_grad(gt_sorted):
    gts = gt_sorted.sum()
    intersection = gts - np.cumsum(gt_sorted)
    union = gts + np.cumsum(1 - gt_sorted)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def berman_softmax_flat(probas, labels, classes="present"):
    """lovasz_softmax_flat: probas (P, C), labels (P,), ignored pixels already removed."""
    if probas.size == 0:
        return 0.0
    losses = []
    for c in range(probas.shape[1]):
        fg = (labels == c).astype(float)
        if classes == "present" and fg.sum() == 0:
            continue
        errors = np.abs(fg - probas[:, c])
        perm = np.argsort(-errors, kind="stable")
        losses.append(np.dot(errors[perm], berman_grad(fg[perm])))
    return float(np.mean(losses)) if losses else 0.0


def berman_softmax(logits, labels, classes="present", ignore=None):
    """lovasz_softmax(per_image=True) on softmax probabilities, one value per image."""
    z = logits.numpy()
    e = np.exp(z - z.max(axis=1, keepdims=True))
    probas = e / e.sum(axis=1, keepdims=True)
    out = []
    for n in range(z.shape[0]):
        pr = np.moveaxis(probas[n], 0, -1).reshape(-1, z.shape[1])
        lab = labels[n].numpy().reshape(-1)
        keep = np.ones(len(lab), bool) if ignore is None else lab != ignore
        out.append(berman_softmax_flat(pr[keep], lab[keep], classes))
    return np.array(out)


def berman_hinge(logits, labels, ignore=None):
    """lovasz_hinge(per_image=True): one value per image."""
    out = []
    for n in range(logits.shape[0]):
        z, lab = logits[n].numpy().reshape(-1), labels[n].numpy().reshape(-1)
        keep = np.ones(len(lab), bool) if ignore is None else lab != ignore
        z, lab = z[keep], lab[keep]
        if len(lab) == 0:
            out.append(0.0)
            continue
        errors = 1.0 - z * (2.0 * lab - 1.0)
        perm = np.argsort(-errors, kind="stable")
        out.append(float(np.dot(np.maximum(errors[perm], 0), berman_grad(lab[perm]))))
    return np.array(out)


def reduce_numpy(loss, reduction, weight=None):
    if weight is not None:
        loss = loss * weight
        if reduction == "mean":
            return loss.sum() / (weight * np.ones_like(loss)).sum()
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]


# --- oracles ----------------------------------------------------------------------------------

CASES = [((3, 2, 5, 4), True, None), ((3, 3, 6, 5), False, None), ((2, 4, 7), False, -1), ((2, 3, 4, 4), True, 255),
         ((4, 1, 9), True, None), ((2, 3), False, None), ((2, 5, 3, 3), False, 2)]


@pytest.mark.parametrize("shape,binary,ignore", CASES)
@pytest.mark.parametrize("smooth", [0.0, 1e-5, 1.0])
def test_dice_matches_monai(shape, binary, ignore, smooth):
    logits, target = problem(shape, binary=binary, ignore=ignore, seed=1, empty_class=True)
    p, g, _ = numpy_p_g(logits, target, ignore)
    expected = monai_dice(p, g, smooth)
    expected = np.where(np.isnan(expected), 0.0, expected)  # 0 / 0: an empty truth predicted empty (not reached here)
    weight = np.linspace(0.5, 2.0, shape[1])
    for reduction in REDUCTIONS:
        ours = dice_loss(logits, target, smooth=smooth, ignore_index=ignore, reduction=reduction)
        np.testing.assert_allclose(ours.numpy(), reduce_numpy(expected, reduction), rtol=1e-10, atol=1e-12)
        ours = dice_loss(logits, target, smooth=smooth, ignore_index=ignore, reduction=reduction,
                         weight=torch.from_numpy(weight))
        np.testing.assert_allclose(ours.numpy(), reduce_numpy(expected, reduction, weight), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape,binary,ignore", CASES)
@pytest.mark.parametrize("alpha,beta", [(0.5, 0.5), (0.3, 0.7), (0.9, 0.1), (0.0, 1.0)])
def test_tversky_matches_monai(shape, binary, ignore, alpha, beta):
    logits, target = problem(shape, binary=binary, ignore=ignore, seed=2)
    p, g, valid = numpy_p_g(logits, target, ignore)
    for smooth in [1e-5, 1.0]:
        expected = monai_tversky(p, g, alpha, beta, smooth, valid)
        for reduction in REDUCTIONS:
            ours = tversky_loss(logits, target, alpha=alpha, beta=beta, smooth=smooth, ignore_index=ignore,
                                reduction=reduction)
            np.testing.assert_allclose(ours.numpy(), reduce_numpy(expected, reduction), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape,binary,ignore", CASES)
@pytest.mark.parametrize("gamma", [0.5, 0.75, 1.0, 4 / 3, 2.0])
def test_focal_tversky_matches_abraham_and_khan(shape, binary, ignore, gamma):
    """Their alpha (0.7) multiplies the false negatives: our beta = alpha, our alpha = 1 - alpha."""
    logits, target = problem(shape, binary=binary, ignore=ignore, seed=3)
    p, g, valid = numpy_p_g(logits, target, ignore)
    expected = abraham_focal_tversky(p, g, 0.7, gamma, 1.0, valid)
    for reduction in REDUCTIONS:
        ours = focal_tversky_loss(logits, target, alpha=0.3, beta=0.7, gamma=gamma, ignore_index=ignore,
                                  reduction=reduction)
        np.testing.assert_allclose(ours.numpy(), reduce_numpy(expected, reduction), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape,binary,ignore", CASES)
@pytest.mark.parametrize("smooth", [1e-5, 1.0])
def test_generalized_dice_matches_monai(shape, binary, ignore, smooth):
    logits, target = problem(shape, binary=binary, ignore=ignore, seed=4, empty_class=True)
    p, g, _ = numpy_p_g(logits, target, ignore)
    expected = monai_generalized_dice(p, g, smooth)
    for reduction in REDUCTIONS:
        ours = generalized_dice_loss(logits, target, smooth=smooth, ignore_index=ignore, reduction=reduction)
        np.testing.assert_allclose(ours.numpy(), reduce_numpy(expected, reduction), rtol=1e-9, atol=1e-12)


def test_generalized_dice_empty_image_is_zero():
    logits = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    target = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    target[1, 0, 0, 0] = 1
    loss = generalized_dice_loss(logits, target, reduction="none")
    p, g, _ = numpy_p_g(logits, target)
    np.testing.assert_allclose(loss.numpy(), monai_generalized_dice(p, g, 1e-5), rtol=1e-10)
    assert loss[0].item() == 0.0


@pytest.mark.parametrize("shape,ignore", [((3, 3, 6, 5), None), ((2, 4, 7), -1), ((2, 5, 3, 3), 2), ((3, 2, 1), None)])
@pytest.mark.parametrize("classes", ["present", "all"])
def test_lovasz_softmax_matches_berman(shape, ignore, classes):
    logits, target = problem(shape, binary=False, ignore=ignore, seed=5, empty_class=True)
    expected = berman_softmax(logits, target, classes, ignore)
    for reduction in REDUCTIONS:
        ours = lovasz_softmax_loss(logits, target, classes=classes, ignore_index=ignore, reduction=reduction)
        np.testing.assert_allclose(ours.numpy(), reduce_numpy(expected, reduction), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape,ignore", [((3, 6, 5), None), ((2, 17), 255), ((4, 2, 3, 3), -1), ((2, 1), None)])
def test_lovasz_hinge_matches_berman(shape, ignore):
    g = torch.Generator().manual_seed(6)
    logits = 2 * torch.randn(shape, dtype=torch.float64, generator=g)
    target = (torch.rand(shape, generator=g) < 0.3).double()
    target[0] = 0  # an image without foreground
    if ignore is not None:
        target = torch.where(torch.rand(shape, generator=g) < 0.2, float(ignore), target)
    expected = berman_hinge(logits, target, ignore)
    for reduction in REDUCTIONS:
        ours = lovasz_hinge_loss(logits, target, ignore_index=ignore, reduction=reduction)
        np.testing.assert_allclose(ours.numpy(), reduce_numpy(expected, reduction), rtol=1e-10, atol=1e-12)


def test_hard_predictions_match_torchmetrics():
    g = torch.Generator().manual_seed(7)
    labels = torch.randint(0, 4, (5, 9, 9), generator=g)
    predicted = torch.randint(0, 4, (5, 9, 9), generator=g)
    hard = 60.0 * (2 * F.one_hot(predicted, 4).movedim(-1, 1).double() - 1)
    theirs = tm_segmentation.dice_score(predicted, labels, num_classes=4, average="none", input_format="index")
    torch.testing.assert_close(1 - dice_loss(hard, labels, smooth=0.0, reduction="none"), theirs.double(),
                               rtol=0, atol=1e-7)  # torchmetrics computes in float32
    theirs = tm_segmentation.generalized_dice_score(predicted, labels, num_classes=4, input_format="index")
    torch.testing.assert_close(1 - generalized_dice_loss(hard, labels, smooth=0.0, reduction="none"),
                               theirs.double(), rtol=0, atol=1e-7)


@pytest.mark.parametrize("pixels", [1, 2, 5, 9])
def test_lovasz_extension_is_the_jaccard_loss_on_binary_errors(pixels):
    """Brute force over every truth and every mispredicted set of a small image."""
    for truth_bits in itertools.product([0.0, 1.0], repeat=pixels):
        truth = torch.tensor(truth_bits, dtype=torch.float64)
        wrong = torch.tensor(list(itertools.product([0.0, 1.0], repeat=pixels)), dtype=torch.float64)
        union = ((truth + wrong) > 0).sum(-1).clamp(min=1)
        jaccard_loss = wrong.sum(-1) / union
        torch.testing.assert_close(lovasz_extension(wrong, truth.expand_as(wrong)), jaccard_loss, rtol=0, atol=1e-15)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 7).flatmap(lambda n: st.tuples(
    st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n), st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n),
    st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n), st.floats(0.0, 1.0))))
def test_lovasz_extension_is_convex_and_piecewise_linear(args):
    a, b, truth = (torch.tensor(v, dtype=torch.float64) for v in args[:3])
    t = args[3]
    f = lambda m: lovasz_extension(m, truth).item()  # noqa: E731
    assert f(t * a + (1 - t) * b) <= t * f(a) + (1 - t) * f(b) + 1e-12
    assert abs(f(2 * a) - 2 * f(a)) < 1e-12  # positively homogeneous
    assert f(a) >= -1e-15


# --- the gradient, limits and properties -----------------------------------------------------------


def test_hand_derived_gradient():
    """Equation (5), through the sigmoid."""
    logits, mask = problem((2, 3, 6, 6), binary=True, seed=8)
    logits.requires_grad_()
    (autograd,) = torch.autograd.grad(dice_loss(logits, mask, smooth=0.5, reduction="sum"), logits)
    p = torch.sigmoid(logits.detach())
    tp, S = (p * mask).sum((2, 3), keepdim=True), (p + mask).sum((2, 3), keepdim=True) + 0.5
    torch.testing.assert_close(autograd, ((2 * tp + 0.5) / S**2 - 2 * mask / S) * p * (1 - p), rtol=1e-12, atol=1e-15)


def test_family_limits():
    logits, target = problem((3, 3, 5, 5), binary=False, seed=9)
    for smooth in [0.0, 0.3, 1.0]:
        torch.testing.assert_close(tversky_loss(logits, target, alpha=0.5, beta=0.5, smooth=smooth, reduction="none"),
                                   dice_loss(logits, target, smooth=2 * smooth, reduction="none"))
    torch.testing.assert_close(focal_tversky_loss(logits, target, gamma=1.0), tversky_loss(logits, target))
    torch.testing.assert_close(focal_tversky_loss(logits, target, gamma=0.75, reduction="none"),
                               tversky_loss(logits, target, reduction="none") ** 0.75)
    # a single class with the generalized weights is the Dice loss of that class (the weight cancels, s -> 0)
    logits, mask = problem((3, 1, 5, 5), binary=True, seed=10)
    torch.testing.assert_close(generalized_dice_loss(logits, mask, smooth=0.0, reduction="none"),
                               dice_loss(logits, mask, smooth=0.0, reduction="none")[:, 0])


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([True, False]), st.floats(0.0, 2.0))
def test_properties(seed, binary, smooth):
    logits, target = problem((2, 3, 4, 4), binary=binary, seed=seed, scale=4.0)
    for fn in [dice_loss, tversky_loss, focal_tversky_loss]:
        loss = fn(logits, target, smooth=smooth, reduction="none")
        assert ((loss >= 0) & (loss <= 1 + 1e-12)).all()
        permutation = torch.randperm(16, generator=torch.Generator().manual_seed(seed))
        shuffled = logits.flatten(2)[..., permutation], (target.flatten(2) if binary else target.flatten(1))[..., permutation]
        torch.testing.assert_close(fn(*shuffled, smooth=smooth, reduction="none"), loss)  # pixels are a set
    for fn in [generalized_dice_loss, lovasz_softmax_loss] if not binary else [generalized_dice_loss]:
        loss = fn(logits, target, reduction="none")
        assert ((loss >= 0) & (loss <= 1 + 1e-12)).all()


@pytest.mark.parametrize("fn", [dice_loss, tversky_loss, focal_tversky_loss, generalized_dice_loss])
def test_perfect_prediction_is_zero_and_empty_is_not_nan(fn):
    labels = torch.randint(0, 3, (2, 6, 6), generator=torch.Generator().manual_seed(11))
    perfect = 100.0 * (2 * F.one_hot(labels, 3).movedim(-1, 1).double() - 1)
    assert fn(perfect, labels).item() < 1e-12
    empty = torch.full((2, 1, 6, 6), -200.0, requires_grad=True)
    for smooth in [0.0, 1.0]:
        loss = fn(empty, torch.zeros(2, 1, 6, 6), smooth=smooth)
        (gradient,) = torch.autograd.grad(loss, empty)
        assert loss.item() < 1e-20 and torch.isfinite(gradient).all()  # focal Tversky: tiny ** gamma


def test_lovasz_perfect_and_empty():
    labels = torch.randint(0, 3, (2, 6, 6), generator=torch.Generator().manual_seed(12))
    perfect = 100.0 * (2 * F.one_hot(labels, 3).movedim(-1, 1).double() - 1)
    assert lovasz_softmax_loss(perfect, labels).item() < 1e-12
    everything_ignored = torch.full_like(labels, -1)
    logits = perfect.clone().requires_grad_()
    zero = lovasz_softmax_loss(logits, everything_ignored, ignore_index=-1)
    zero.backward()
    assert zero.item() == 0.0 and (logits.grad == 0).all()
    mask = (labels == 1).double()
    assert lovasz_hinge_loss(20.0 * (2 * mask - 1), mask).item() == 0.0  # every margin beyond 1


def test_focal_tversky_gradient_is_finite_at_a_perfect_class():
    logits = torch.tensor([[[30.0, 30.0, -30.0]]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[[1.0, 1.0, 0.0]]], dtype=torch.float64)
    loss = focal_tversky_loss(logits, mask, gamma=0.5, smooth=0.0)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_half_precision_sums_over_a_large_mask():
    """smp issue 463: float16 sums of 512 x 512 masks overflow; ours sum in float32."""
    logits = torch.full((1, 1, 512, 512), 8.0, dtype=torch.float16, requires_grad=True)
    mask = torch.ones(1, 1, 512, 512, dtype=torch.float16)
    for fn in [dice_loss, tversky_loss, focal_tversky_loss, generalized_dice_loss]:
        loss = fn(logits, mask)
        assert loss.dtype == torch.float32 and torch.isfinite(loss) and loss.item() < 1e-2
        (gradient,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(gradient).all()
    assert torch.isinf((torch.sigmoid(logits) * mask).sum())  # the naive float16 sum
    tp, fp, fn = soft_counts(logits, mask)
    assert tp.dtype == torch.float32 and abs(tp.item() - 262144 * torch.sigmoid(torch.tensor(8.0)).item()) < 2


def test_helpers():
    p, g = probabilities_and_truth(torch.zeros(1, 2, 3), torch.tensor([[0, 1, -1]]), ignore_index=-1)
    torch.testing.assert_close(g, torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]))
    torch.testing.assert_close(p.sum(1), torch.tensor([[1.0, 1.0, 0.0]]))
    torch.testing.assert_close(lovasz_gradient(torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])),
                               torch.tensor([[0.5, 1 / 6, 1 / 3, 0.0], [1.0, 0.0, 0.0, 0.0]]))


def test_integer_dtypes_of_indices():
    logits, target = problem((2, 3, 4, 4), binary=False, seed=13)
    for dtype in [torch.uint8, torch.int8, torch.int16, torch.int32]:
        for fn in [dice_loss, generalized_dice_loss, lovasz_softmax_loss]:
            torch.testing.assert_close(fn(logits, target.to(dtype)), fn(logits, target))


# --- refusals ------------------------------------------------------------------------------------


def test_bad_input():
    logits = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match=r"target holds class index 3, but input has 3 classes"):
        dice_loss(logits, torch.full((2, 4), 3))
    with pytest.raises(ValueError, match=r"target must have shape \(N, \*\) = \(2, 4\)"):
        dice_loss(logits, torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target must hold mask values in \[0, 1\], got 2.0"):
        dice_loss(logits, torch.full((2, 3, 4), 2.0))
    with pytest.raises(ValueError, match=r"target must hold mask values in \[0, 1\], got 255.0"):
        tversky_loss(logits, torch.full((2, 3, 4), 255.0))  # an ignore value without ignore_index
    with pytest.raises(TypeError, match="target must be a floating-point mask of input's shape or an integer tensor"):
        dice_loss(logits, torch.zeros(2, 3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"input must have shape \(N, C, \*\), got \(4,\)"):
        dice_loss(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match=r"weight must have shape \(C,\) = \(3,\), one value per class, got \(2,\)"):
        dice_loss(logits, torch.zeros(2, 4, dtype=torch.long), weight=torch.ones(2))
    with pytest.raises(ValueError, match="weight must be non-negative, got -1.0"):
        dice_loss(logits, torch.zeros(2, 4, dtype=torch.long), weight=torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(TypeError, match="target must be an integer tensor of class indices"):
        lovasz_softmax_loss(logits, torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="target must hold labels 0 or 1, got 0.5"):
        lovasz_hinge_loss(torch.zeros(2, 4), torch.full((2, 4), 0.5))
    with pytest.raises(ValueError, match="classes must be 'present' or 'all', got 'every'"):
        lovasz_softmax_loss(logits, torch.zeros(2, 4, dtype=torch.long), classes="every")
    with pytest.raises(ValueError, match="classes must be 'present' or 'all'"):
        lossbook.nn.LovaszSoftmaxLoss(classes="every")
    with pytest.raises(ValueError, match="gamma must be a positive number, got 0"):
        lossbook.nn.FocalTverskyLoss(gamma=0)


def test_modules_repr_and_options():
    module = lossbook.nn.FocalTverskyLoss(alpha=0.4, beta=0.6, gamma=0.5, weight=torch.ones(3))
    assert "gamma=0.5" in repr(module) and "weight" in dict(module.named_buffers())
    logits, target = problem((2, 3, 4), binary=False, seed=14)
    module = module.double()
    torch.testing.assert_close(module(logits, target),
                               focal_tversky_loss(logits, target, alpha=0.4, beta=0.6, gamma=0.5,
                                                  weight=torch.ones(3, dtype=torch.float64)))
