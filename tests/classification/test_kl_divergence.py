"""Tests of book/classification/kl_divergence.md: kl_div and distillation_loss.

The generic battery (bad input, reductions, gradcheck, half precision, module, tracing)
runs over tests/registry.py in tests/test_battery.py. Here: the oracles (PyTorch, SciPy,
NumPy), hand-derived gradients, properties, the zeros of the target (and the masked
classes of a teacher), the KL reductions and the refusals.
"""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import rel_entr

from lossbook import distillation_loss, kl_div
from lossbook.conventions.anatomy import validate_args

SHAPES = [(1, 3), (7, 4), (4, 10, 3), (2, 5, 3, 4)]
REDUCTIONS = ["none", "batchmean", "mean", "sum"]


def prob_pair(shape, dtype=torch.float64, device="cpu", scale=1.0, seed=0, extreme=False, zeros=False):
    """Log-probabilities and probabilities along dim 1 (the last dim for 1-d shapes).

    ``zeros`` sets about a fifth of the target to exactly 0 (renormalized);
    ``extreme`` makes the first distribution of each one-hot against near-certain logits.
    """
    generator = torch.Generator().manual_seed(seed)
    dim = 1 if len(shape) > 1 else -1
    logits = scale * torch.randn(shape, dtype=torch.float64, generator=generator)
    target = torch.softmax(scale * torch.randn(shape, dtype=torch.float64, generator=generator), dim=dim)
    if zeros:
        target = target * (torch.rand(shape, dtype=torch.float64, generator=generator) > 0.2)
        target = target / target.sum(dim=dim, keepdim=True).clamp_min(1e-300)
    log_q = torch.log_softmax(logits, dim=dim)
    return log_q.to(dtype).to(device), target.to(dtype).to(device)


def log_prob_pair(shape, **kwargs):
    """Log-probabilities for the input and for a ``log_target=True`` target."""
    log_q, p = prob_pair(shape, **kwargs)
    return log_q, p.log()


def logit_pair(shape, dtype=torch.float64, device="cpu", scale=1.0, seed=0, extreme=False):
    """Student and teacher logits of one shape; ``extreme`` puts +-scale in the first row."""
    generator = torch.Generator().manual_seed(seed)
    student = scale * torch.randn(shape, dtype=torch.float64, generator=generator)
    teacher = scale * torch.randn(shape, dtype=torch.float64, generator=generator)
    if extreme:
        student.view(-1)[:2] = torch.tensor([scale, -scale], dtype=torch.float64)
        teacher.view(-1)[:2] = torch.tensor([-scale, scale], dtype=torch.float64)
    return student.to(dtype).to(device), teacher.to(dtype).to(device)


def distillation_numpy(s, t, T, reduction):
    """The soft term of Hinton et al. (2015), equation (8) of the chapter, in float64 NumPy;
    a class the teacher masks out (logit -inf, p = 0) adds 0 (0 log 0 = 0)."""

    def log_softmax(a):
        shifted = a - a.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    log_p, log_q = log_softmax(t / T), log_softmax(s / T)
    with np.errstate(invalid="ignore"):
        terms = np.where(np.isneginf(log_p), 0.0, np.exp(log_p) * (log_p - log_q))
    per_position = T**2 * np.sum(terms, axis=1)
    return {
        "none": per_position,
        "sum": per_position.sum(),
        "mean": per_position.mean(),
        "batchmean": per_position.sum() / s.shape[0],
    }[reduction]


# ----------------------------------------------------------------------------- oracles


@pytest.mark.parametrize("zeros", [False, True])
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_kl_div_matches_torch(shape, reduction, log_target, zeros, device):
    input, p = prob_pair(shape, device=device, scale=2.0, seed=len(shape), zeros=zeros)
    target = p.log() if log_target else p
    ours = kl_div(input, target, log_target=log_target, reduction=reduction)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # F.kl_div warns on reduction="mean"
        if zeros and log_target:
            # torch: exp(-inf) * (-inf - x) is NaN where a log-target is -inf; (1) says 0
            per_element = F.kl_div(input, target, log_target=True, reduction="none").nan_to_num(nan=0.0)
            divisor = {"none": None, "sum": 1, "mean": per_element.numel(), "batchmean": shape[0]}[reduction]
            theirs = per_element if divisor is None else per_element.sum() / divisor
        else:
            theirs = F.kl_div(input, target, log_target=log_target, reduction=reduction)
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("zeros", [False, True])
@pytest.mark.parametrize("shape", [(1, 3), (9, 5), (3, 20)])
def test_kl_div_matches_scipy_rel_entr(shape, zeros):
    log_q, p = prob_pair(shape, scale=3.0, seed=7, zeros=zeros)
    expected = rel_entr(p.numpy(), np.exp(log_q.numpy())).sum(axis=1)
    ours = kl_div(log_q, p, reduction="none").sum(dim=1)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(kl_div(log_q, p).item(), expected.mean(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0, 20.0])
@pytest.mark.parametrize("shape", [(1, 2), (6, 10), (3, 4, 5), (2, 3, 2, 2)])
def test_distillation_matches_numpy(shape, temperature, reduction, device):
    student, teacher = logit_pair(shape, device=device, scale=4.0, seed=1)
    ours = distillation_loss(student, teacher, temperature=temperature, reduction=reduction)
    expected = distillation_numpy(student.cpu().numpy(), teacher.cpu().numpy(), temperature, reduction)
    np.testing.assert_allclose(ours.cpu().numpy(), expected, rtol=1e-11, atol=1e-14)
    assert ours.shape == (np.shape(expected))


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_distillation_is_t_squared_kl_div_of_the_softmaxes(temperature, device):
    student, teacher = logit_pair((5, 7), device=device, seed=2, scale=3.0)
    log_q = F.log_softmax(student / temperature, dim=1)
    log_p = F.log_softmax(teacher / temperature, dim=1)
    expected = temperature**2 * F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
    torch.testing.assert_close(distillation_loss(student, teacher, temperature=temperature), expected)


# ----------------------------------------------------------------------------- gradients


def test_hand_derived_gradients():
    """(4): d/dx = -p; (5): d/dz = q - p; (9): distillation d/ds = T (q^T - p^T); /N for batchmean."""
    log_q, p = prob_pair((4, 6), seed=3, scale=2.0)
    x = log_q.clone().requires_grad_()
    target = p.clone().requires_grad_()
    grad_x, grad_p = torch.autograd.grad(kl_div(x, target), (x, target))
    torch.testing.assert_close(grad_x, -p / 4)
    torch.testing.assert_close(grad_p, (p.log() + 1 - log_q) / 4)

    z = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4)).requires_grad_()
    (grad_z,) = torch.autograd.grad(kl_div(F.log_softmax(z, dim=1), p), z)
    torch.testing.assert_close(grad_z, (torch.softmax(z, dim=1).detach() - p) / 4)

    student, teacher = logit_pair((4, 6), seed=5, scale=3.0)
    student.requires_grad_()
    for temperature in [0.5, 2.0, 7.0]:
        (grad_s,) = torch.autograd.grad(distillation_loss(student, teacher, temperature=temperature), student)
        q_t = torch.softmax(student.detach() / temperature, dim=1)
        p_t = torch.softmax(teacher / temperature, dim=1)
        torch.testing.assert_close(grad_s, temperature * (q_t - p_t) / 4)


def test_zero_probabilities_give_zero_terms_and_finite_gradients():
    p = torch.tensor([[0.0, 0.3, 0.7], [0.5, 0.0, 0.5]], dtype=torch.float64)
    for log_target in [False, True]:
        x = p.log().clone().requires_grad_()  # log q = -inf exactly where p = 0
        target = (p.log() if log_target else p).clone().requires_grad_()
        loss = kl_div(x, target, log_target=log_target, reduction="sum")
        assert loss.item() == 0.0  # KL(p || p), with 0 log 0 = 0 and 0 * (-inf) never formed
        grad_x, grad_t = torch.autograd.grad(loss, (x, target))
        assert torch.isfinite(grad_x).all() and torch.isfinite(grad_t).all()
        assert (grad_x[p == 0] == 0).all() and (grad_t[p == 0] == 0).all()
    # log q = -inf where p > 0: the divergence is infinite, as (1) says
    assert kl_div(torch.tensor([[-math.inf, 0.0]]), torch.tensor([[0.5, 0.5]])).item() == math.inf


# ----------------------------------------------------------------------------- properties


def logit_arrays(bound=20.0):
    """Two float64 arrays of logits of one shape (N, C), 1 <= N, C <= 6."""
    return st.tuples(st.integers(1, 6), st.integers(1, 6)).flatmap(
        lambda shape: st.tuples(
            *[hnp.arrays("float64", shape, elements=st.floats(-bound, bound)) for _ in range(2)]
        )
    )


@given(logit_arrays())
def test_kl_div_properties(arrays):
    s, t = (torch.from_numpy(a) for a in arrays)
    log_q, log_p = F.log_softmax(s, dim=1), F.log_softmax(t, dim=1)
    p = log_p.exp()
    per_sample = kl_div(log_q, p, reduction="none").sum(dim=1)
    assert (per_sample >= -1e-12).all()  # Gibbs (2)
    assert kl_div(log_p, p).abs().item() < 1e-12  # zero at a perfect prediction
    torch.testing.assert_close(kl_div(log_q, log_p, log_target=True), kl_div(log_q, p), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(kl_div(log_q, p), per_sample.sum() / s.shape[0])
    torch.testing.assert_close(kl_div(log_q, p, reduction="mean"), per_sample.sum() / s.numel())
    # (3): cross entropy = entropy + KL
    cross_entropy = -(p * log_q).sum(dim=1)
    entropy = -torch.special.xlogy(p, p).sum(dim=1)
    torch.testing.assert_close(cross_entropy, entropy + per_sample, rtol=1e-9, atol=1e-9)


@given(logit_arrays(bound=10.0), st.floats(0.1, 30.0))
def test_distillation_properties(arrays, temperature):
    s, t = (torch.from_numpy(a) for a in arrays)
    loss = distillation_loss(s, t, temperature=temperature, reduction="none")
    assert loss.shape == (s.shape[0],) and (loss >= -1e-12).all()
    # zero at a perfect prediction, and only logit differences matter (softmax shift invariance)
    shift = torch.linspace(-5, 5, s.shape[0], dtype=torch.float64)[:, None]
    assert distillation_loss(t + shift, t, temperature=temperature).abs().item() < 1e-10
    torch.testing.assert_close(
        distillation_loss(s + shift, t - 2 * shift, temperature=temperature),
        distillation_loss(s, t, temperature=temperature),
        rtol=1e-8,
        atol=1e-10,
    )
    # the temperature only rescales the logits, and T^2 the loss
    torch.testing.assert_close(
        distillation_loss(s, t, temperature=temperature),
        temperature**2 * distillation_loss(s / temperature, t / temperature, temperature=1.0),
        rtol=1e-8,
        atol=1e-10,
    )
    # T = 1 is the KL divergence between the two softmaxes
    torch.testing.assert_close(
        distillation_loss(s, t, temperature=1.0),
        kl_div(F.log_softmax(s, dim=1), F.softmax(t, dim=1)),
        rtol=1e-9,
        atol=1e-12,
    )


@given(logit_arrays(bound=5.0))
def test_distillation_tends_to_logit_matching(arrays):
    """(10): T^2 KL -> ||(s - mean s) - (t - mean t)||^2 / (2C) as T -> infinity."""
    s, t = (torch.from_numpy(a) for a in arrays)
    centred = (s - s.mean(dim=1, keepdim=True)) - (t - t.mean(dim=1, keepdim=True))
    limit = (centred**2).sum(dim=1) / (2 * s.shape[1])
    for temperature in [1e2, 1e3]:
        loss = distillation_loss(s, t, temperature=temperature, reduction="none")
        # the first correction is O(|logits| / T) relative to the limit; atol: the float64
        # rounding of log-probabilities (~1e-16), multiplied by T^2
        torch.testing.assert_close(loss, limit, rtol=30 / temperature, atol=1e-13 * temperature**2)


# ----------------------------------------------------------------------------- bad input


def test_kl_div_bad_input():
    ones = torch.full((4,), 0.25)
    with pytest.raises(ValueError, match=r"input and target must have the same shape, got \(4, 1\) and \(4,\)"):
        kl_div(torch.zeros(4, 1), ones)
    with pytest.raises(TypeError, match="input must be a floating-point tensor, got dtype torch.int64"):
        kl_div(torch.zeros(4, dtype=torch.long), ones)
    with pytest.raises(TypeError, match="target must be a floating-point tensor, got dtype torch.int32"):
        kl_div(torch.zeros(4), torch.zeros(4, dtype=torch.int32))
    with pytest.raises(TypeError, match="input must be a torch.Tensor, got list"):
        kl_div([0.0, 1.0], torch.ones(2))
    with pytest.raises(ValueError, match="reduction must be one of 'none', 'batchmean', 'mean', 'sum'; got 'avg'"):
        kl_div(torch.zeros(4), ones, reduction="avg")
    with pytest.raises(ValueError, match="target must hold probabilities >= 0, got -1.2.*pass log_target=True"):
        kl_div(torch.zeros(2, 2), torch.tensor([[-1.2, -0.4], [-0.1, -2.0]]))
    with pytest.raises(TypeError, match="log_target must be True or False, got 1"):
        kl_div(torch.zeros(4), ones, log_target=1)


def test_distillation_bad_input():
    logits = torch.zeros(3, 5)
    for temperature in [0.0, -1.0, math.inf, math.nan]:
        with pytest.raises(ValueError, match="temperature must be a positive number"):
            distillation_loss(logits, logits, temperature=temperature)
    for temperature in [True, "4", None]:
        with pytest.raises(TypeError, match="temperature must be a number"):
            distillation_loss(logits, logits, temperature=temperature)
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'temperature'"):
        distillation_loss(logits, logits)
    with pytest.raises(
        ValueError, match=r"student_logits and teacher_logits must have the same shape, got \(3, 5\) and \(3, 1\)"
    ):
        distillation_loss(logits, torch.zeros(3, 1), temperature=2.0)
    with pytest.raises(ValueError, match=r"must have shape \(N, C, \*\), got \(5,\)"):
        distillation_loss(torch.zeros(5), torch.zeros(5), temperature=2.0)
    with pytest.raises(TypeError, match="teacher_logits must be a floating-point tensor, got dtype torch.int64"):
        distillation_loss(logits, torch.zeros(3, 5, dtype=torch.long), temperature=2.0)
    with pytest.raises(ValueError, match="reduction must be one of 'none', 'batchmean', 'mean', 'sum'; got 'elementwise'"):
        distillation_loss(logits, logits, temperature=2.0, reduction="elementwise")


# ----------------------------------------------------------------------------- reductions


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_batchmean_and_empty_batch(log_target, device):
    log_q, p = prob_pair((3, 5, 2), device=device)
    target = p.log() if log_target else p
    per_element = kl_div(log_q, target, log_target=log_target, reduction="none")
    # "mean" divides by the elements, "batchmean" (the default) by the batch: the KL per sample
    torch.testing.assert_close(kl_div(log_q, target, log_target=log_target, reduction="mean"), per_element.mean())
    torch.testing.assert_close(kl_div(log_q, target, log_target=log_target), per_element.sum() / 3)
    # a 0-d input has no batch dimension: batchmean is the sum, as in torch
    scalar = kl_div(torch.tensor(-1.0), torch.tensor(0.5))
    torch.testing.assert_close(scalar, F.kl_div(torch.tensor(-1.0), torch.tensor(0.5), reduction="batchmean"))

    for shape in [(0, 4), (0,)]:
        empty = torch.zeros(shape, device=device, requires_grad=True)
        for reduction in ["batchmean", "mean"]:
            zero = kl_div(empty, torch.zeros(shape, device=device), log_target=log_target, reduction=reduction)
            assert zero.item() == 0.0  # torch: NaN
            zero.backward()
            assert empty.grad is not None and empty.grad.shape == empty.shape


def test_distillation_batchmean_and_empty_batch(device):
    student, teacher = logit_pair((3, 5, 4), device=device, scale=2.0)
    per_position = distillation_loss(student, teacher, temperature=2.0, reduction="none")
    assert per_position.shape == (3, 4)  # the class dimension is summed first
    torch.testing.assert_close(distillation_loss(student, teacher, temperature=2.0, reduction="mean"), per_position.mean())
    torch.testing.assert_close(distillation_loss(student, teacher, temperature=2.0), per_position.sum() / 3)
    flat_s, flat_t = logit_pair((6, 5), device=device)  # (N, C): mean and batchmean agree
    torch.testing.assert_close(
        distillation_loss(flat_s, flat_t, temperature=2.0, reduction="mean"),
        distillation_loss(flat_s, flat_t, temperature=2.0),
    )
    empty = torch.zeros(0, 5, device=device, requires_grad=True)
    for reduction in ["batchmean", "mean"]:
        zero = distillation_loss(empty, torch.zeros(0, 5, device=device), temperature=4.0, reduction=reduction)
        assert zero.item() == 0.0
        zero.backward()
        assert empty.grad is not None and empty.grad.shape == empty.shape


def test_teacher_is_not_detached():
    student, teacher = logit_pair((4, 3), seed=6)
    student.requires_grad_(), teacher.requires_grad_()
    grad_s, grad_t = torch.autograd.grad(distillation_loss(student, teacher, temperature=2.0), (student, teacher))
    assert grad_t.abs().sum() > 0
    grad_s_detached = torch.autograd.grad(distillation_loss(student, teacher.detach(), temperature=2.0), student)[0]
    torch.testing.assert_close(grad_s, grad_s_detached)


# ------------------------------------------------------ zeros of the target, masked classes


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_distillation_with_classes_the_teacher_masks_out(temperature, reduction, device):
    """Teacher logits of -inf (p = 0): finite, the NumPy oracle with 0 log 0 = 0, and kl_div's value."""
    student, teacher = logit_pair((5, 6, 2), device=device, scale=3.0, seed=10)
    teacher[:, 1] = -math.inf  # a class masked for every sample
    teacher[0, 4, 0] = -math.inf  # and one more at one position
    student.requires_grad_(), teacher.requires_grad_()
    ours = distillation_loss(student, teacher, temperature=temperature, reduction=reduction)
    assert torch.isfinite(ours).all()
    expected = distillation_numpy(student.detach().cpu().numpy(), teacher.detach().cpu().numpy(), temperature, reduction)
    np.testing.assert_allclose(ours.detach().cpu().numpy(), expected, rtol=1e-11, atol=1e-14)
    log_q, log_p = (F.log_softmax(x / temperature, dim=1) for x in (student, teacher))
    via_kl = temperature**2 * kl_div(log_q, log_p, log_target=True, reduction="none").sum(dim=1)
    torch.testing.assert_close(distillation_loss(student, teacher, temperature=temperature, reduction="none"), via_kl)
    grad_s, grad_t = torch.autograd.grad(ours.sum(), (student, teacher))
    assert torch.isfinite(grad_s).all() and torch.isfinite(grad_t).all()
    assert (grad_t[:, 1] == 0).all()  # nothing flows into a masked logit
    # the gradient in the student is still T (q - p), with p = 0 on the masked classes
    if reduction == "sum":
        q, p = (torch.softmax(x.detach() / temperature, dim=1) for x in (student, teacher))
        torch.testing.assert_close(grad_s, temperature * (q - p))


def test_distillation_masks_on_both_sides():
    """A class masked for both (student -inf too) adds 0; masked for the teacher only, the student's
    logit of -inf is an infinite divergence where the teacher puts mass."""
    student = torch.tensor([[1.0, -math.inf, 0.0]], dtype=torch.float64, requires_grad=True)
    teacher = torch.tensor([[0.5, -math.inf, 1.0]], dtype=torch.float64)
    loss = distillation_loss(student, teacher, temperature=2.0)
    expected = 4 * kl_div(F.log_softmax(student[:, [0, 2]] / 2, dim=1), F.log_softmax(teacher[:, [0, 2]] / 2, dim=1),
                          log_target=True)
    torch.testing.assert_close(loss, expected)
    (grad,) = torch.autograd.grad(loss, student)
    assert torch.isfinite(grad).all() and grad[0, 1] == 0
    unmasked_teacher = torch.tensor([[0.5, 0.0, 1.0]], dtype=torch.float64)
    assert distillation_loss(student.detach(), unmasked_teacher, temperature=2.0).item() == math.inf


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("zeros", [False, True])
def test_checked_and_unchecked_paths_agree(log_target, zeros):
    """Eagerly on the CPU the sign check also tells whether the target holds zeros, and a target
    without any skips the masking; unchecked (validate_args(False), CUDA, tracing) it always
    masks. Values and both gradients agree."""
    log_q, p = prob_pair((6, 5, 2), scale=2.0, seed=11, zeros=zeros)
    input = log_q.clone().requires_grad_()
    target = (p.log() if log_target else p).clone().requires_grad_()
    for reduction in REDUCTIONS:
        checked = kl_div(input, target, log_target=log_target, reduction=reduction)
        with validate_args(False):
            unchecked = kl_div(input, target, log_target=log_target, reduction=reduction)
        torch.testing.assert_close(checked, unchecked, rtol=1e-13, atol=1e-15)
        for first, second in zip(*(torch.autograd.grad(loss.sum(), (input, target)) for loss in (checked, unchecked))):
            torch.testing.assert_close(first, second, rtol=1e-13, atol=1e-15)


def test_refuses_a_negative_probability_anywhere():
    """The one-pass check finds the negative value wherever it is, and names it."""
    target = torch.full((3, 4), 0.25)
    target[2, 3] = -0.125
    with pytest.raises(ValueError, match="target must hold probabilities >= 0, got -0.125; for log-probabilities"):
        kl_div(torch.zeros(3, 4), target)
    with validate_args(False):  # switched off, as every value check
        kl_div(torch.zeros(3, 4), target)
