"""Tests of book/classification/kl_divergence.md: kl_div and distillation_loss."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from loss_checks import check_gradcheck, check_module
from scipy.special import rel_entr

import lossbook.nn
from lossbook import distillation_loss, kl_div

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
    """The soft term of Hinton et al. (2015), equation (8) of the chapter, in float64 NumPy."""

    def log_softmax(a):
        shifted = a - a.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    log_p, log_q = log_softmax(t / T), log_softmax(s / T)
    per_position = T**2 * np.sum(np.exp(log_p) * (log_p - log_q), axis=1)
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


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_gradcheck(log_target):
    pair = log_prob_pair if log_target else prob_pair
    check_gradcheck(kl_div, pair=pair, log_target=log_target)  # none, mean, sum
    log_q, target = pair((3, 4), scale=2.0, seed=3)
    assert torch.autograd.gradcheck(
        lambda a, b: kl_div(a, b, log_target=log_target), (log_q.requires_grad_(), target.requires_grad_())
    )


@pytest.mark.parametrize("temperature", [0.7, 4.0])
def test_distillation_gradcheck(temperature):
    check_gradcheck(distillation_loss, pair=logit_pair, temperature=temperature)
    student, teacher = logit_pair((3, 4, 2), scale=2.0, seed=3)
    assert torch.autograd.gradcheck(
        lambda s, t: distillation_loss(s, t, temperature=temperature),
        (student.requires_grad_(), teacher.requires_grad_()),
    )


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
def test_kl_div_reductions_and_empty_batch(log_target, device):
    log_q, p = prob_pair((3, 5, 2), device=device)
    target = p.log() if log_target else p
    per_element = kl_div(log_q, target, log_target=log_target, reduction="none")
    assert per_element.shape == log_q.shape and per_element.device == log_q.device
    torch.testing.assert_close(kl_div(log_q, target, log_target=log_target, reduction="sum"), per_element.sum())
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


def test_distillation_reductions_and_empty_batch(device):
    student, teacher = logit_pair((3, 5, 4), device=device, scale=2.0)
    per_position = distillation_loss(student, teacher, temperature=2.0, reduction="none")
    assert per_position.shape == (3, 4) and per_position.device == student.device
    torch.testing.assert_close(distillation_loss(student, teacher, temperature=2.0, reduction="sum"), per_position.sum())
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


# ----------------------------------------------------------------------------- precision


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_kl_div_half_precision(dtype, device):
    """Log-probabilities of logits up to +-50, and near-one-hot targets, in half precision."""
    generator = torch.Generator().manual_seed(8)
    logits = 50 * torch.randn(16, 10, generator=generator).clamp(-1, 1)
    log_q = F.log_softmax(logits, dim=1).to(dtype).to(device).requires_grad_()
    p = F.softmax(logits.flip(0), dim=1).to(dtype).to(device)
    for log_target, target in [(False, p), (True, F.log_softmax(logits.flip(0), dim=1).to(dtype).to(device))]:
        loss = kl_div(log_q, target, log_target=log_target)
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        reference = kl_div(log_q.detach().float(), target.float(), log_target=log_target)
        torch.testing.assert_close(loss, reference, rtol=1e-5, atol=0)
        exact = kl_div(F.log_softmax(logits, dim=1).to(device), F.softmax(logits.flip(0), dim=1).to(device))
        torch.testing.assert_close(loss, exact, rtol=2e-2, atol=0)
        (grad,) = torch.autograd.grad(loss, log_q)
        reference_input = log_q.detach().float().requires_grad_()
        (grad_reference,) = torch.autograd.grad(
            kl_div(reference_input, target.float(), log_target=log_target), reference_input
        )
        assert grad.dtype == dtype and torch.isfinite(grad).all()
        torch.testing.assert_close(grad.float(), grad_reference, rtol=1e-2, atol=1e-3 * grad_reference.abs().max().item())
        with torch.autocast(device_type=torch.device(device).type, dtype=dtype):
            assert torch.isfinite(kl_div(log_q.detach(), target, log_target=log_target))


@pytest.mark.parametrize("temperature", [1.0, 4.0])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_distillation_half_precision(dtype, temperature, device):
    """Logits of +-50 in half precision: finite loss and gradients, close to float32."""
    student32, teacher32 = logit_pair((16, 10), dtype=torch.float32, scale=50.0, seed=9, extreme=True)
    student32, teacher32 = student32.clamp(-50, 50), teacher32.clamp(-50, 50)
    student = student32.to(dtype).to(device).requires_grad_()
    teacher = teacher32.to(dtype).to(device)
    loss = distillation_loss(student, teacher, temperature=temperature)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    reference_student = student.detach().float().requires_grad_()
    reference = distillation_loss(reference_student, teacher.float(), temperature=temperature)
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=0)
    unrounded = distillation_loss(student32.to(device), teacher32.to(device), temperature=temperature)
    torch.testing.assert_close(loss, unrounded, rtol=2e-2, atol=0)
    (grad,) = torch.autograd.grad(loss, student)
    (grad_reference,) = torch.autograd.grad(reference, reference_student)
    assert grad.dtype == dtype and torch.isfinite(grad).all()
    torch.testing.assert_close(grad.float(), grad_reference, rtol=1e-2, atol=1e-3 * grad_reference.abs().max().item())
    with torch.autocast(device_type=torch.device(device).type, dtype=dtype):
        assert torch.isfinite(distillation_loss(student.detach(), teacher, temperature=temperature))


# ----------------------------------------------------------------------------- modules


def test_modules(device):
    check_module(kl_div, device, pair=prob_pair)
    check_module(kl_div, device, pair=prob_pair, reduction="sum")
    check_module(kl_div, device, pair=log_prob_pair, log_target=True)
    check_module(distillation_loss, device, pair=logit_pair, temperature=3.0)
    check_module(distillation_loss, device, pair=logit_pair, temperature=1.0, reduction="none")
    with pytest.raises(TypeError, match="DistillationLoss needs the option temperature"):
        lossbook.nn.DistillationLoss()
    assert "batchmean" in repr(lossbook.nn.KLDivLoss())
