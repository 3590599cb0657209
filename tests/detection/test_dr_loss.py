"""Tests of lossbook.detection.dr_loss against a NumPy transcription of the official code."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lossbook import dr_loss

DEFAULTS = dict(pos_lambda=1.0, neg_lambda=0.1 / math.log(3.5), L=6.0, tau=4.0, margin=0.5)
OPTIONS = [{}, dict(pos_lambda=0.3, neg_lambda=0.05, L=2.0, tau=1.0, margin=0.0), dict(neg_lambda=2.0, L=20.0)]


def label_pair(shape, dtype=torch.float64, device="cpu", scale=1.0, seed=0, extreme=False):
    """Logits of ``shape`` (..., N, C) and detection labels in -1..C of shape (..., N)."""
    generator = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(shape, dtype=dtype, generator=generator)
    labels = torch.randint(-1, shape[-1] + 1, shape[:-1], generator=generator)
    if extreme and logits.numel() >= 2:
        logits.view(-1)[:2] = torch.tensor([-scale, scale], dtype=dtype)
    return logits.to(device), labels.to(device)


def softmax(z):
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def oracle_problem(logits, targets, pos_lambda, neg_lambda, L, tau, margin):
    """SigmoidDRLoss.forward (github.com/idstcv/DR_loss), in float64 NumPy with loops."""
    n, c = logits.shape
    pos, neg = [], []
    for i in range(n):
        for k in range(c):
            p = 1.0 / (1.0 + math.exp(-logits[i, k]))
            if targets[i] == k + 1:
                pos.append(p)
            elif targets[i] >= 0:
                neg.append(p)
    if not pos and not neg:
        return 0.0  # lossbook's documented choice for a problem with no candidates
    neg, pos = np.array(neg), np.array(pos)
    neg_dist = float((softmax(neg / neg_lambda) * neg).sum()) if len(neg) else 0.0
    pos_dist = float((softmax(-pos / pos_lambda) * pos).sum()) if len(pos) else 1.0
    return tau * math.log1p(math.exp(L * (neg_dist - pos_dist + margin))) / L


def oracle(logits, targets, reduction="mean", **options):
    options = {**DEFAULTS, **options}
    logits, targets = logits.detach().cpu().double().numpy(), targets.cpu().numpy()
    if logits.ndim == 2:
        return np.float64(oracle_problem(logits, targets, **options))
    losses = np.array([oracle_problem(a, b, **options) for a, b in zip(logits, targets)])
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    counted = sum((b >= 0).any() for b in targets) if logits.shape[-1] else 0
    return losses.sum() / max(counted, 1)


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("shape", [(40, 3), (7, 1), (3, 25, 4), (5, 6, 2)])
def test_oracle(shape, reduction, options, device):
    for seed in range(3):
        logits, labels = label_pair(shape, device=device, scale=3.0, seed=seed)
        if seed == 1:
            labels = labels.clamp(max=0)  # no positives
        if seed == 2 and len(shape) == 3:
            labels[0] = -1  # a problem with nothing to rank
        got = dr_loss(logits, labels, reduction=reduction, **options)
        expected = torch.as_tensor(oracle(logits, labels, reduction, **options))
        torch.testing.assert_close(got.cpu(), expected, rtol=1e-10, atol=1e-12)


def test_official_torch_transcription_and_corner_cases(device):
    def official(logits, targets, pos_lambda=1.0, neg_lambda=0.1 / math.log(3.5), L=6.0, tau=4.0):
        class_range = torch.arange(1, logits.shape[1] + 1, dtype=targets.dtype).unsqueeze(0)
        t = targets.unsqueeze(1)
        pos_prob = logits[t == class_range].sigmoid()
        neg_prob = logits[(t != class_range) * (t >= 0)].sigmoid()
        neg_dist = torch.sum(torch.softmax(neg_prob / neg_lambda, dim=0) * neg_prob)
        pos_dist = torch.sum(torch.softmax(-pos_prob / pos_lambda, 0) * pos_prob) if pos_prob.numel() else 1.0
        return tau * torch.log(1.0 + torch.exp(L * (neg_dist - pos_dist + 0.5))) / L

    logits, _ = label_pair((12, 3), scale=2.0)
    for labels in [torch.full((12,), 2), torch.zeros(12, dtype=torch.long), torch.tensor([1, 2, 3, 0] * 3)]:
        torch.testing.assert_close(dr_loss(logits.to(device), labels.to(device)).cpu(), official(logits, labels))
    # no candidate at all: 0 connected to the graph, where the official code gives a constant
    for logits in [torch.zeros(0, 3, device=device), torch.zeros(4, 3, device=device)]:
        logits.requires_grad_()
        labels = torch.full(logits.shape[:1], -1, dtype=torch.long, device=device)
        for reduction in ["none", "mean", "sum"]:
            zero = dr_loss(logits, labels, reduction=reduction)
            assert zero.item() == 0.0
        zero.backward()
        assert logits.grad is not None and (logits.grad == 0).all()
    batch = torch.zeros(0, 5, 3, device=device, requires_grad=True)
    assert dr_loss(batch, torch.zeros(0, 5, dtype=torch.long, device=device)).item() == 0.0
    assert dr_loss(batch, torch.zeros(0, 5, dtype=torch.long, device=device), reduction="none").shape == (0,)


def test_hand_gradient():
    """Equation (6) of the chapter."""
    logits, labels = label_pair((30, 1), scale=2.0, seed=7)
    labels = (torch.arange(30) < 6).long()
    x = logits.requires_grad_()
    loss = dr_loss(x, labels, **DEFAULTS)
    (autograd,) = torch.autograd.grad(loss, x)
    p = x.detach().sigmoid().squeeze(1)
    pos = labels == 1
    lam_p, lam_n, L, tau, margin = (DEFAULTS[k] for k in ["pos_lambda", "neg_lambda", "L", "tau", "margin"])
    q_n, q_p = torch.softmax(p[~pos] / lam_n, 0), torch.softmax(-p[pos] / lam_p, 0)
    e_n, e_p = (q_n * p[~pos]).sum(), (q_p * p[pos]).sum()
    outer = tau * torch.sigmoid(L * (e_n - e_p + margin))
    by_hand = torch.zeros(30, dtype=torch.float64)
    by_hand[~pos] = outer * q_n * (1 + (p[~pos] - e_n) / lam_n)
    by_hand[pos] = -outer * q_p * (1 - (p[pos] - e_p) / lam_p)
    torch.testing.assert_close(autograd.squeeze(1), by_hand * p * (1 - p), rtol=0, atol=1e-14)


logit_values = st.floats(-30, 30, allow_nan=False)


@st.composite
def problems(draw):
    n, c = draw(st.integers(1, 8)), draw(st.integers(1, 4))
    logits = np.array(draw(st.lists(logit_values, min_size=n * c, max_size=n * c))).reshape(n, c)
    labels = np.array(draw(st.lists(st.integers(-1, c), min_size=n, max_size=n)))
    return torch.tensor(logits), torch.tensor(labels)


@given(problems())
def test_properties(problem):
    logits, labels = problem
    loss = dr_loss(logits, labels)
    assert loss.item() >= 0
    # the minimum: every positive at p = 1, every negative at p = 0, gives tau * l_L(margin - 1)
    floor = 4.0 * math.log1p(math.exp(6.0 * (0.5 - 1.0))) / 6.0
    counted = (labels >= 0).any()
    assert loss.item() >= (floor - 1e-12 if counted else 0.0)
    perfect = torch.full_like(logits, -40.0)
    fg = labels > 0
    perfect[fg.nonzero().squeeze(1), labels[fg] - 1] = 40.0
    if counted:
        assert math.isclose(dr_loss(perfect, labels).item(), floor, rel_tol=1e-9)
    # ignored candidates do not count, whatever their scores
    shuffled = torch.where((labels < 0)[:, None], torch.randn_like(logits) * 10, logits)
    torch.testing.assert_close(dr_loss(shuffled, labels), loss)


@given(problems())
def test_limits(problem):
    logits, labels = problem
    classes = logits.shape[1]
    p = logits.sigmoid()
    onehot = labels[:, None] == torch.arange(1, classes + 1)
    negatives = ~onehot & (labels[:, None] >= 0)
    if not onehot.any() or not negatives.any():
        return
    pos_mean, neg_mean = p[onehot].mean(), p[negatives].mean()
    # huge lambdas: uniform means; huge L: tau * hinge
    uniform = dr_loss(logits, labels, pos_lambda=1e9, neg_lambda=1e9, L=1e6, tau=1.0)
    torch.testing.assert_close(uniform, (neg_mean - pos_mean + 0.5).clamp(min=0), rtol=0, atol=1e-6)
    # a tiny neg_lambda: the hardest negative; a tiny pos_lambda: the hardest positive
    hardest = dr_loss(logits, labels, pos_lambda=1e-9, neg_lambda=1e-9, L=1e6, tau=1.0)
    torch.testing.assert_close(hardest, (p[negatives].max() - p[onehot].min() + 0.5).clamp(min=0), rtol=0, atol=1e-6)


def test_bad_input():
    logits = torch.zeros(4, 3)
    labels = torch.tensor([0, 1, 3, -1])
    with pytest.raises(TypeError, match="target must be an integer tensor of labels in -1..C, got dtype torch.float32"):
        dr_loss(logits, labels.float())
    with pytest.raises(ValueError, match=r"target must have shape \(4,\) for input of shape \(4, 3\), got \(4, 1\)"):
        dr_loss(logits, labels[:, None])
    with pytest.raises(ValueError, match=r"input must have shape \(N, C\) or \(B, N, C\), got \(4,\)"):
        dr_loss(torch.zeros(4), labels)
    for wrong in [4, -2]:
        with pytest.raises(ValueError, match=f"target holds label {wrong}, but labels must be -1"):
            dr_loss(logits, torch.tensor([0, 1, wrong, -1]))
    for name in ["pos_lambda", "neg_lambda", "L", "tau"]:
        for value in [0.0, -1.0]:
            with pytest.raises(ValueError, match=f"{name} must be a positive number, got {value}"):
                dr_loss(logits, labels, **{name: value})
    with pytest.raises(ValueError, match="margin must be a non-negative number, got -0.5"):
        dr_loss(logits, labels, margin=-0.5)


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32], ids=str)
def test_every_signed_dtype_of_target(dtype, device):
    logits, labels = label_pair((2, 20, 3), scale=3.0, seed=8, device=device)
    expected = dr_loss(logits, labels, reduction="none")
    torch.testing.assert_close(dr_loss(logits, labels.to(dtype), reduction="none"), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="target holds label -2, but labels must be -1"):  # values: checked on CPU
        dr_loss(logits.cpu(), torch.full(labels.shape, -2, dtype=dtype))


def test_unsigned_target_without_ignored_candidates(device):
    """uint8 holds labels 0..C (no -1 needed) and gives the int64 result; a -1 written into
    it wraps to 255, which is refused with a message that says why."""
    logits, labels = label_pair((30, 3), scale=3.0, seed=9, device=device)
    labels = labels.clamp(min=0)
    torch.testing.assert_close(dr_loss(logits, labels.to(torch.uint8)), dr_loss(logits, labels), rtol=0, atol=0)
    wrapped = torch.tensor([-1, 0, 1, 2] * 3).to(torch.uint8)
    assert wrapped[0] == 255
    with pytest.raises(ValueError, match=r"target holds label 255, .*torch.uint8 cannot hold -1: use a signed dtype"):
        dr_loss(torch.zeros(12, 3), wrapped)
