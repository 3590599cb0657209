"""Tests of book/classification/focal.md: focal_loss (softmax) and sigmoid_focal_loss."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lossbook import focal_loss, sigmoid_focal_loss
from lossbook.classification.focal import _binary_cross_entropy_with_logits, _zero_safe_pow

REDUCTIONS = ["none", "mean", "sum"]
CLASS_SHAPES = [(1, 2), (6, 3), (4, 5, 3), (2, 4, 3, 2)]
BINARY_SHAPES = [(1,), (7,), (4, 5), (2, 3, 4)]
GAMMAS = [0.0, 0.5, 1.0, 2.0, 5.0]


def random_class_pair(shape, dtype=torch.float64, device="cpu", scale=2.0, seed=0, extreme=False):
    """Logits ``(N, C, *)`` and class indices ``(N, *)``; ``extreme`` makes the first
    position confidently right (true logit +scale) and the second confidently wrong."""
    generator = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(shape, dtype=dtype, generator=generator)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=generator)
    if extreme and shape[0] >= 2:
        logits[:2] = -scale
        logits[0, 0], target[0] = scale, 0
        logits[1, 0], target[1] = scale, 1
    return logits.to(device), target.to(device)


def random_binary_pair(shape, dtype=torch.float64, device="cpu", scale=3.0, seed=0, extreme=False, soft=False):
    """Logits and targets of one shape: hard targets 0/1, or soft ones in [0.05, 0.95];
    ``extreme`` puts logits -scale and +scale on two positive targets first."""
    generator = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(shape, dtype=dtype, generator=generator)
    if soft:
        target = 0.05 + 0.9 * torch.rand(shape, dtype=dtype, generator=generator)
    else:
        target = (torch.rand(shape, generator=generator) < 0.3).to(dtype)
    if extreme and logits.numel() >= 2:
        logits.view(-1)[:2] = torch.tensor([-scale, scale], dtype=dtype)
        target.view(-1)[:2] = 1
    return logits.to(device), target.to(device)


def focal_numpy(logits, target, gamma, alpha=None, weight=None, ignore_index=-100):
    """Equation (5) of the chapter per position, float64 NumPy, class dim 1 moved last."""
    logits = np.moveaxis(np.asarray(logits, np.float64), 1, -1).reshape(-1, logits.shape[1])
    target = np.asarray(target).reshape(-1)
    valid = target != ignore_index
    safe = np.where(valid, target, 0)
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = (z - np.log(np.exp(z).sum(axis=1, keepdims=True)))[np.arange(len(safe)), safe]
    loss = -((1 - np.exp(log_p)) ** gamma) * log_p
    a = np.ones(len(safe)) if alpha is None else np.broadcast_to(np.asarray(alpha, np.float64), (logits.shape[1],))[safe]
    w = (np.ones(len(safe)) if weight is None else np.asarray(weight, np.float64)[safe]) * valid
    return a * w * loss, w


def reduce_numpy(loss, w, reduction, shape):
    if reduction == "none":
        return loss.reshape(shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / w.sum() if w.sum() else 0.0


# --- oracles -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", CLASS_SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, -1, 1])
def test_gamma_zero_is_cross_entropy(shape, weighted, ignore_index, device):
    """gamma = 0, alpha = None equals F.cross_entropy for every weight / ignore_index / reduction."""
    logits, target = random_class_pair(shape, device=device, seed=1)
    if ignore_index != -100:  # -100 is never present; -1 and class 1 are, on a third of the positions
        target = target.clone()
        target.view(-1)[::3] = ignore_index
    weight = (0.1 + torch.rand(shape[1], dtype=torch.float64)).to(device) if weighted else None
    for reduction in REDUCTIONS:
        ours_input, theirs_input = logits.clone().requires_grad_(), logits.clone().requires_grad_()
        ours = focal_loss(ours_input, target, gamma=0.0, weight=weight, ignore_index=ignore_index, reduction=reduction)
        theirs = F.cross_entropy(theirs_input, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
        if reduction == "mean" and torch.isnan(theirs):  # every position ignored: torch's 0/0
            assert ours.item() == 0.0
            continue
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-15)
        ours.sum().backward()
        theirs.sum().backward()
        torch.testing.assert_close(ours_input.grad, theirs_input.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("shape", CLASS_SHAPES[1:])
@pytest.mark.parametrize("alpha_kind", ["none", "number", "tensor"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 1])
def test_focal_matches_numpy(shape, alpha_kind, weighted, ignore_index, device):
    """Every gamma and reduction against the NumPy transcription (independent of the fused
    cross entropy the definition calls), a quarter of the positions ignored (with -100, or
    with a class index)."""
    logits, target = random_class_pair(shape, scale=3.0, seed=2, device=device)
    target = target.clone()
    target.view(-1)[::4] = ignore_index
    classes = shape[1]
    alpha = {"none": None, "number": 0.25, "tensor": torch.linspace(0.2, 2.0, classes, dtype=torch.float64)}[alpha_kind]
    weight = torch.linspace(2.0, 0.5, classes, dtype=torch.float64) if weighted else None
    to_device = lambda t: t.to(device) if isinstance(t, torch.Tensor) else t  # noqa: E731
    for gamma in GAMMAS:
        loss, w = focal_numpy(
            logits.cpu(), target.cpu(), gamma, None if alpha is None else np.asarray(alpha), weight, ignore_index
        )
        for reduction in REDUCTIONS:
            expected = reduce_numpy(loss, w, reduction, target.shape)
            ours = focal_loss(logits, target, gamma=gamma, alpha=to_device(alpha), weight=to_device(weight),
                              ignore_index=ignore_index, reduction=reduction)
            np.testing.assert_allclose(ours.cpu().numpy(), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("shape", BINARY_SHAPES)
@pytest.mark.parametrize("soft", [False, True])
def test_sigmoid_matches_torchvision(shape, soft, device):
    """Every alpha (torchvision's -1 included), gamma and reduction: values and gradients."""
    logits, target = random_binary_pair(shape, soft=soft, seed=3, device=device)
    for alpha in [-1, 0.0, 0.25, 0.5, 1.0]:
        for gamma in GAMMAS:
            for reduction in REDUCTIONS:
                ours_input, theirs_input = logits.clone().requires_grad_(), logits.clone().requires_grad_()
                ours = sigmoid_focal_loss(ours_input, target, alpha=alpha, gamma=gamma, reduction=reduction)
                theirs = torchvision.ops.sigmoid_focal_loss(
                    theirs_input, target, alpha=alpha, gamma=gamma, reduction=reduction
                )
                torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-15)
                ours.sum().backward()
                theirs.sum().backward()
                torch.testing.assert_close(ours_input.grad, theirs_input.grad, rtol=1e-10, atol=1e-14)


def test_sigmoid_alpha_none_is_alpha_minus_one():
    logits, target = random_binary_pair((5, 4), seed=4)
    torch.testing.assert_close(
        sigmoid_focal_loss(logits, target, alpha=None), sigmoid_focal_loss(logits, target, alpha=-1)
    )


def test_worked_examples():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.5, 0.0], [1.0, 1.0, 4.0]], dtype=torch.float64)
    target = torch.tensor([0, 2, 2])
    expected, _ = focal_numpy(logits, target, 2.0)
    np.testing.assert_allclose(focal_loss(logits, target, reduction="none").numpy(), expected, rtol=1e-12)
    # the paper's numbers: with gamma = 2, p_t = 0.9 is 100 times below cross entropy
    x = torch.tensor([np.log(9.0)], dtype=torch.float64)  # sigmoid(x) = 0.9
    ratio = sigmoid_focal_loss(x, torch.ones(1, dtype=torch.float64), alpha=None, gamma=2.0) / F.binary_cross_entropy_with_logits(
        x, torch.ones(1, dtype=torch.float64)
    )
    torch.testing.assert_close(ratio, torch.tensor(0.01, dtype=torch.float64))


# --- alpha, weight and ignore_index semantics ----------------------------------------------


def test_alpha_multiplies_and_weight_normalizes():
    logits, target = random_class_pair((20, 4), seed=5)
    base = focal_loss(logits, target)
    vector = torch.tensor([0.25, 0.5, 1.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(focal_loss(logits, target, alpha=0.5), 0.5 * base)
    torch.testing.assert_close(focal_loss(logits, target, alpha=torch.ones(4, dtype=torch.float64)), base)
    torch.testing.assert_close(focal_loss(logits, target, alpha=3 * vector), 3 * focal_loss(logits, target, alpha=vector))
    torch.testing.assert_close(focal_loss(logits, target, weight=3 * vector), focal_loss(logits, target, weight=vector))
    per_position = focal_loss(logits, target, reduction="none")
    torch.testing.assert_close(focal_loss(logits, target, alpha=vector, reduction="none"), vector[target] * per_position)
    torch.testing.assert_close(focal_loss(logits, target, weight=vector, reduction="none"), vector[target] * per_position)
    torch.testing.assert_close(
        focal_loss(logits, target, weight=vector), (vector[target] * per_position).sum() / vector[target].sum()
    )


def test_ignored_positions_contribute_nothing(device):
    logits, target = random_class_pair((6, 3), device=device)
    target = target.clone()
    target[::2] = -100
    logits.requires_grad_()
    per_position = focal_loss(logits, target, reduction="none")
    assert (per_position[::2] == 0).all()
    torch.testing.assert_close(focal_loss(logits, target), per_position[1::2].mean())
    focal_loss(logits, target).backward()
    assert (logits.grad[::2] == 0).all()
    everything = torch.full_like(target, -100)  # every target ignored: 0, where F.cross_entropy gives NaN
    zero = focal_loss(logits, everything, weight=torch.ones(3, dtype=torch.float64, device=device))
    assert zero.item() == 0.0 and zero.requires_grad
    assert torch.isnan(F.cross_entropy(logits, everything))


# --- gradients ------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", GAMMAS)
def test_hand_derived_gradient(gamma):
    """Equation (7): d FL / dx = y (1 - p_t)^gamma (gamma p_t log p_t + p_t - 1), y in {-1, +1}."""
    logits, target = random_binary_pair((50,), scale=4.0, seed=6)
    logits.requires_grad_()
    (autograd,) = torch.autograd.grad(sigmoid_focal_loss(logits, target, alpha=None, gamma=gamma, reduction="sum"), logits)
    sign = 2 * target - 1
    p_t = torch.sigmoid(sign * logits.detach())
    by_hand = sign * (1 - p_t) ** gamma * (gamma * p_t * torch.log(p_t) + p_t - 1)
    torch.testing.assert_close(autograd, by_hand, rtol=1e-12, atol=1e-15)


# --- properties ----------------------------------------------------------------------------


def class_problems(max_classes=5, bound=30.0):
    """Hypothesis strategy: float64 logits (N, C) and class indices (N,)."""
    return st.tuples(st.integers(1, 6), st.integers(1, max_classes)).flatmap(
        lambda nc: st.tuples(
            hnp.arrays("float64", nc, elements=st.floats(-bound, bound, allow_nan=False)),
            hnp.arrays("int64", (nc[0],), elements=st.integers(0, nc[1] - 1)),
        )
    )


def binary_problems(max_side=6, bound=60.0):
    """Hypothesis strategy: float64 logits and targets in [0, 1] of one shape."""
    return hnp.array_shapes(min_dims=1, max_dims=3, max_side=max_side).flatmap(
        lambda shape: st.tuples(
            hnp.arrays("float64", shape, elements=st.floats(-bound, bound, allow_nan=False)),
            hnp.arrays("float64", shape, elements=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))),
        )
    )


@given(class_problems(), st.floats(0.0, 5.0))
def test_focal_properties(problem, gamma):
    logits, target = (torch.from_numpy(a) for a in problem)
    loss = focal_loss(logits, target, gamma=gamma, reduction="none")
    cross_entropy = F.cross_entropy(logits, target, reduction="none")
    assert (loss >= 0).all() and torch.isfinite(loss).all()
    assert (loss <= cross_entropy * (1 + 1e-12) + 1e-300).all()  # the factor is at most 1
    more = focal_loss(logits, target, gamma=gamma + 1.0, reduction="none")
    assert (more <= loss * (1 + 1e-12) + 1e-300).all()  # non-increasing in gamma
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0, reduction="none"), cross_entropy)  # the limit
    # invariances: a constant added to a row, and a relabelling of the classes
    torch.testing.assert_close(focal_loss(logits + 7.0, target, gamma=gamma, reduction="none"), loss)
    permutation = torch.arange(logits.shape[1]).flip(0)
    inverse = torch.argsort(permutation)
    torch.testing.assert_close(focal_loss(logits[:, permutation], inverse[target], gamma=gamma, reduction="none"), loss)


@given(class_problems(), st.floats(0.0, 5.0))
def test_focal_is_zero_at_a_perfect_prediction(problem, gamma):
    logits, target = (torch.from_numpy(a) for a in problem)
    perfect = torch.full_like(logits, -50.0)
    perfect[torch.arange(len(target)), target] = 50.0
    assert focal_loss(perfect, target, gamma=gamma).item() < 1e-20


@given(binary_problems(), st.floats(0.0, 5.0), st.floats(0.0, 1.0))
def test_sigmoid_properties(problem, gamma, alpha):
    logits, target = (torch.from_numpy(a) for a in problem)
    loss = sigmoid_focal_loss(logits, target, alpha=None, gamma=gamma, reduction="none")
    zero = torch.zeros_like(logits)
    bce = target * torch.logaddexp(zero, -logits) + (1 - target) * torch.logaddexp(zero, logits)  # exact
    assert (loss >= 0).all() and torch.isfinite(loss).all()
    assert (loss <= bce * (1 + 1e-12) + 1e-300).all()
    torch.testing.assert_close(sigmoid_focal_loss(logits, target, alpha=None, gamma=0.0, reduction="none"), bce)
    torch.testing.assert_close(bce, F.binary_cross_entropy_with_logits(logits, target, reduction="none"))
    # flipping the labels and the logits (and alpha with 1 - alpha) changes nothing
    torch.testing.assert_close(
        sigmoid_focal_loss(-logits, 1 - target, alpha=1 - alpha, gamma=gamma, reduction="none"),
        sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma, reduction="none"),
        rtol=1e-9,
        atol=1e-12,
    )
    assert torch.isfinite(
        torch.autograd.grad(sigmoid_focal_loss(logits.requires_grad_(), target, gamma=gamma), logits)[0]
    ).all()


@given(hnp.arrays("float64", st.integers(1, 8), elements=st.floats(-40.0, 40.0)), st.floats(0.0, 5.0))
def test_sigmoid_is_two_class_softmax(logits, gamma):
    x = torch.from_numpy(logits)
    labels = (torch.arange(len(x)) % 2).long()
    two = torch.stack([torch.zeros_like(x), x], dim=1)
    alpha = torch.tensor([0.75, 0.25], dtype=torch.float64)
    torch.testing.assert_close(
        sigmoid_focal_loss(x, labels.double(), alpha=0.25, gamma=gamma, reduction="none"),
        focal_loss(two, labels, alpha=alpha, gamma=gamma, reduction="none"),
        rtol=1e-9,
        atol=1e-15,
    )


@given(hnp.arrays("float64", st.integers(1, 8), elements=st.sampled_from([0.0, 1.0])), st.floats(0.0, 5.0))
def test_sigmoid_is_zero_at_a_perfect_prediction(target, gamma):
    t = torch.from_numpy(target)
    assert sigmoid_focal_loss(100.0 * (2 * t - 1), t, gamma=gamma).item() < 1e-40


# --- bad input ---------------------------------------------------------------------------


def test_sigmoid_bad_input():
    x = torch.zeros(3)
    with pytest.raises(TypeError, match="target must be a floating-point tensor, got dtype torch.int64"):
        sigmoid_focal_loss(x, torch.tensor([0, 1, 1]))  # 0/1 labels as integers: float() them
    with pytest.raises(ValueError, match=r"target must hold probabilities in \[0, 1\], got 2.0"):
        sigmoid_focal_loss(x, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"target must hold probabilities in \[0, 1\], got -1.0"):
        sigmoid_focal_loss(x, torch.tensor([-1.0, 1.0, 1.0]))  # labels in {-1, +1}
    with pytest.raises(ValueError, match="gamma must be a non-negative number, got -1.0"):
        sigmoid_focal_loss(x, torch.ones(3), gamma=-1.0)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\], or -1 or None for no weighting, got 1.5"):
        sigmoid_focal_loss(x, torch.ones(3), alpha=1.5)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\], or -1 or None for no weighting, got -0.5"):
        sigmoid_focal_loss(x, torch.ones(3), alpha=-0.5)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\], or -1 or None for no weighting, got nan"):
        sigmoid_focal_loss(x, torch.ones(3), alpha=float("nan"))
    with pytest.raises(TypeError, match="alpha must be a number in"):
        sigmoid_focal_loss(x, torch.ones(3), alpha=torch.tensor([0.25, 0.5, 0.75]))  # per element: not an option
    with pytest.raises(TypeError, match="gamma must be a number, got str"):
        sigmoid_focal_loss(x, torch.ones(3), gamma="2")


def test_focal_bad_input():
    logits, target = torch.zeros(4, 3), torch.tensor([0, 1, 2, 1])
    with pytest.raises(TypeError, match="target must be an integer tensor of class indices, got dtype torch.float32"):
        focal_loss(logits, target.float())
    with pytest.raises(ValueError, match=r"target must have shape \(N, \*\) = \(4,\)"):
        focal_loss(logits, target[:, None])
    with pytest.raises(ValueError, match=r"input must have shape \(N, C, \*\), got \(4,\)"):
        focal_loss(torch.zeros(4), target)
    with pytest.raises(ValueError, match="target holds class index 3, but input has 3 classes"):
        focal_loss(logits, torch.tensor([0, 1, 3, 1]))
    with pytest.raises(ValueError, match="target holds class index -1, but input has 3 classes"):
        focal_loss(logits, torch.tensor([0, -1, 2, 1], dtype=torch.int8))  # -1 is not the default ignore_index
    with pytest.raises(ValueError, match="alpha must be non-negative, got -1.0"):
        focal_loss(logits, target, alpha=torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="gamma must be a non-negative number, got -2.0"):
        focal_loss(logits, target, gamma=-2.0)
    with pytest.raises(ValueError, match="alpha must be a non-negative number, got -0.25"):
        focal_loss(logits, target, alpha=-0.25)
    with pytest.raises(TypeError, match="alpha must be None, a number or a tensor of shape"):
        focal_loss(logits, target, alpha=[0.25, 0.5, 0.25])
    with pytest.raises(ValueError, match=r"alpha must have shape \(C,\) = \(3,\), one value per class, got \(2,\)"):
        focal_loss(logits, target, alpha=torch.ones(2))
    with pytest.raises(ValueError, match=r"weight must have shape \(C,\) = \(3,\), one value per class, got \(3, 1\)"):
        focal_loss(logits, target, weight=torch.ones(3, 1))
    with pytest.raises(TypeError, match="weight must be a floating-point tensor, got dtype torch.int64"):
        focal_loss(logits, target, weight=torch.ones(3, dtype=torch.long))


# --- integer targets, precision at the extremes, the helpers ----------------------------------


@pytest.mark.parametrize("gamma", [0.1, 0.5, 2.0])
def test_huge_logits_keep_gradients_finite(gamma, device):
    """Where 1 - p_t underflows (|x| > 100 in float32), the factor's gradient stays finite."""
    x = torch.tensor([-1e4, -200.0, -90.0, 90.0, 200.0, 1e4], device=device)
    for t in (torch.zeros_like(x), torch.ones_like(x)):
        logits = x.clone().requires_grad_()
        loss = sigmoid_focal_loss(logits, t, gamma=gamma, reduction="sum")
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    logits = torch.tensor([[1e4, 0.0, -1e4], [90.0, 0.0, 0.0]], device=device, requires_grad=True)
    loss = focal_loss(logits, torch.tensor([0, 0], device=device), gamma=gamma)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64], ids=str)
def test_every_integer_dtype_of_target(dtype, device):
    """Class indices of any integer dtype give the int64 result (gather needs int64: the
    conversion is lossbook's, not the caller's), with class vectors indexed by them too."""
    logits, target = random_class_pair((6, 3, 2), seed=10, device=device)
    alpha = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64, device=device)
    weight = torch.tensor([1.0, 0.5, 3.0], dtype=torch.float64, device=device)
    ignore_index = -1 if dtype.is_signed else -100  # uint8 cannot hold a negative ignore_index
    if dtype.is_signed:
        target = target.clone()
        target.view(-1)[::5] = -1
    for options in [{}, {"alpha": alpha, "weight": weight, "gamma": 0.5}]:
        for reduction in REDUCTIONS:
            expected = focal_loss(logits, target, ignore_index=ignore_index, reduction=reduction, **options)
            narrow = logits.clone().requires_grad_()
            got = focal_loss(narrow, target.to(dtype), ignore_index=ignore_index, reduction=reduction, **options)
            torch.testing.assert_close(got, expected, rtol=0, atol=0)
            got.sum().backward()
            assert torch.isfinite(narrow.grad).all()


@pytest.mark.parametrize("exponent", [0.01, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_zero_safe_pow(exponent, dtype):
    """The power where the base is normal; at 0 and below the smallest normal number a
    finite value and a zero gradient (the plain power's gradient there is inf or NaN)."""
    tiny = torch.finfo(dtype).tiny
    base = torch.tensor([0.0, tiny / 4, tiny, 1e-3, 0.5, 1.0], dtype=dtype, requires_grad=True)
    power = _zero_safe_pow(base, exponent)
    (gradient,) = torch.autograd.grad(power.sum(), base)
    normal = base.detach() > tiny  # at tiny itself the power is exact and the gradient 0, as clamp's
    torch.testing.assert_close(power[normal], base.detach()[normal] ** exponent)
    torch.testing.assert_close(gradient[normal], exponent * base.detach()[normal] ** (exponent - 1))
    assert (gradient[~normal] == 0).all() and torch.isfinite(power).all()
    assert (power[~normal] == tiny**exponent).all()  # counted as tiny: as close to 0 as the dtype allows
    if exponent < 1:
        (plain,) = torch.autograd.grad((base**exponent).sum(), base)
        assert not torch.isfinite(plain[0])


def test_binary_cross_entropy_keeps_every_digit():
    """The lerp of two softplus is exact at hard targets, where torch's fused kernel
    (1 - t) x - log sigma(x) cancels for confident negatives; soft targets agree with it."""
    x = torch.tensor([-80.0, -30.0, -17.0, -5.0, 0.0, 5.0, 17.0, 30.0, 80.0])  # losses down to 1.8e-35
    for t in (torch.zeros_like(x), torch.ones_like(x)):
        exact = t.double() * F.softplus(-x.double()) + (1 - t.double()) * F.softplus(x.double())
        torch.testing.assert_close(_binary_cross_entropy_with_logits(x, t).double(), exact, rtol=1e-6, atol=0)
    fused = F.binary_cross_entropy_with_logits(x, torch.zeros_like(x), reduction="none")
    assert fused[2] == 0 and _binary_cross_entropy_with_logits(x, torch.zeros_like(x))[2] > 4e-8
    logits, soft = random_binary_pair((50,), soft=True, seed=11)
    fused = F.binary_cross_entropy_with_logits(logits, soft, reduction="none")
    torch.testing.assert_close(_binary_cross_entropy_with_logits(logits, soft), fused)
