"""Tests of book/metric_learning/verification.md: verification_loss and lossbook.nn.VerificationLoss.

The battery (tests/test_battery.py) runs the functional verification_loss through its
checks; this file holds the NumPy oracle (the paper's square layer and two-way softmax),
the properties, the refusals, and what the battery cannot do for a module that holds its
classifier: state_dict / pickle / deepcopy round trips, .to(device), torch.compile and
torch.export of forward, half-precision inputs.
"""

import copy
import io
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import lossbook
import lossbook.nn
from lossbook import verification_loss
from lossbook.conventions.anatomy import validate_args

REDUCTIONS = ["none", "mean", "sum"]


def random_pairs(n=12, dim=4, seed=0, dtype=torch.float64, device="cpu", scale=1.0, soft=False):
    g = torch.Generator().manual_seed(seed)
    f1 = scale * torch.randn(n, dim, generator=g, dtype=torch.float64)
    f2 = scale * torch.randn(n, dim, generator=g, dtype=torch.float64)
    target = torch.rand(n, generator=g, dtype=torch.float64) if soft else (torch.rand(n, generator=g) < 0.5).double()
    weight = torch.randn(dim, generator=g, dtype=torch.float64) / dim
    bias = torch.randn((), generator=g, dtype=torch.float64)
    return tuple(t.to(device, dtype) for t in (f1, f2, target, weight, bias))


def verification_numpy(f1, f2, t, w, b):
    """The paper's layers in float64 NumPy: square layer, two-way softmax with rows
    (different, same) = (0, w), cross entropy with the soft target (1 - t, t); and the
    hand-derived gradients (5) of each pair's loss on f1, w and b."""
    f1, f2, t, w = (np.asarray(a, np.float64) for a in (f1, f2, t, w))
    s = (f1 - f2) ** 2
    z = np.stack([np.zeros(len(s)), s @ w + b], axis=1)
    log_softmax = z - np.logaddexp(z[:, 0], z[:, 1])[:, None]
    loss = -((1 - t) * log_softmax[:, 0] + t * log_softmax[:, 1])
    error = np.exp(log_softmax[:, 1]) - t
    return loss, 2 * error[:, None] * w * (f1 - f2), error @ s, error.sum()


def reduce_numpy(per, reduction):
    if reduction == "none":
        return per
    return per.sum() if reduction == "sum" else (per.mean() if len(per) else 0.0)


# --- oracle -------------------------------------------------------------------------------


@pytest.mark.parametrize("n, dim", [(1, 1), (7, 3), (40, 16)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("soft", [False, True])
def test_value_and_gradients_match_numpy(n, dim, reduction, soft, device):
    f1, f2, target, weight, bias = random_pairs(n, dim, seed=n + dim, device=device, soft=soft)
    per, grad_f1, grad_w, grad_b = verification_numpy(*(t.cpu() for t in (f1, f2, target, weight)), bias.item())
    a, w, b = f1.clone().requires_grad_(), weight.clone().requires_grad_(), bias.clone().requires_grad_()
    f2_ = f2.clone().requires_grad_()
    loss = verification_loss(a, f2_, target, w, b, reduction=reduction)
    np.testing.assert_allclose(loss.detach().cpu().numpy(), reduce_numpy(per, reduction), rtol=1e-12, atol=1e-14)
    loss.sum().backward()
    scale = 1.0 / n if reduction == "mean" else 1.0
    np.testing.assert_allclose(a.grad.cpu().numpy(), scale * grad_f1, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(f2_.grad.cpu().numpy(), -scale * grad_f1, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(w.grad.cpu().numpy(), scale * grad_w, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(b.grad.cpu().numpy(), scale * grad_b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_equals_the_papers_two_way_softmax(reduction):
    """A two-output linear layer on the square layer with F.cross_entropy (row 1 = same)
    equals verification_loss with the difference of the rows, values and gradients."""
    f1, f2, target, _, _ = random_pairs(30, 5, seed=7)
    two_way = torch.nn.Linear(5, 2).double()
    a1, a2 = f1.clone().requires_grad_(), f1.clone().requires_grad_()
    softmax_form = F.cross_entropy(two_way((a1 - f2) ** 2), target.long(), reduction=reduction)
    ours = verification_loss(a2, f2, target, two_way.weight[1] - two_way.weight[0], two_way.bias[1] - two_way.bias[0],
                             reduction=reduction)
    torch.testing.assert_close(ours, softmax_form, rtol=1e-12, atol=1e-14)
    softmax_form.backward()
    ours.backward()
    torch.testing.assert_close(a2.grad, a1.grad, rtol=1e-12, atol=1e-14)


def test_equals_bce_on_the_linear_logit():
    f1, f2, target, weight, bias = random_pairs(20, 6, seed=3)
    linear = torch.nn.Linear(6, 1).double()
    expected = F.binary_cross_entropy_with_logits(linear((f1 - f2) ** 2)[:, 0], target)
    torch.testing.assert_close(verification_loss(f1, f2, target, linear.weight, linear.bias), expected)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool, torch.float32], ids=str)
def test_targets_of_any_real_dtype(dtype):
    f1, f2, target, weight, bias = random_pairs(16, 3, seed=1)
    expected = verification_loss(f1, f2, target, weight, bias, reduction="none")
    torch.testing.assert_close(verification_loss(f1, f2, target.to(dtype), weight, bias, reduction="none"), expected)


# --- properties -----------------------------------------------------------------------------


@given(n=st.integers(1, 10), dim=st.integers(1, 6), seed=st.integers(0, 10_000), shift=st.floats(-50, 50))
def test_properties(n, dim, seed, shift):
    f1, f2, target, weight, bias = random_pairs(n, dim, seed=seed)
    loss = verification_loss(f1, f2, target, weight, bias, reduction="none")
    assert (loss >= 0).all()
    # symmetric in the two embeddings, invariant to a common translation
    torch.testing.assert_close(verification_loss(f2, f1, target, weight, bias, reduction="none"), loss)
    torch.testing.assert_close(verification_loss(f1 + shift, f2 + shift, target, weight, bias, reduction="none"), loss,
                               rtol=1e-7, atol=1e-7)
    # identical embeddings: the loss of the bias alone, and no gradient on the embeddings
    same = f1.clone().requires_grad_()
    at_zero = verification_loss(same, f1, target, weight, bias, reduction="none")
    torch.testing.assert_close(at_zero, F.softplus(bias) - target * bias)
    at_zero.sum().backward()
    assert same.grad.abs().max() == 0
    # the loss of a pair with the wrong target: softplus(u) - t u and softplus(-u) swap
    flipped = verification_loss(f1, f2, 1 - target, weight, bias, reduction="none")
    u = ((f1 - f2) ** 2) @ weight + bias
    torch.testing.assert_close(loss + flipped, 2 * F.softplus(u) - u, rtol=1e-10, atol=1e-10)


# --- refusals -----------------------------------------------------------------------------


def test_refusals_with_their_messages():
    f1, f2, target, weight, bias = random_pairs(6, 3)
    with pytest.raises(ValueError, match=r"f1 and f2 must have the same shape, got \(6, 3\) and \(6, 2\)"):
        verification_loss(f1, f2[:, :2], target, weight, bias)
    with pytest.raises(ValueError, match=r"f1 must have shape \(N, D\), got \(6,\)"):
        verification_loss(f1[:, 0], f2[:, 0], target, weight, bias)
    with pytest.raises(ValueError, match=r"weight must have shape \(D,\) = \(3,\)"):
        verification_loss(f1, f2, target, weight[:2], bias)
    with pytest.raises(ValueError, match=r"weight must have shape"):
        verification_loss(f1, f2, target, weight[:, None], bias)
    with pytest.raises(ValueError, match=r"bias must have shape \(\)"):
        verification_loss(f1, f2, target, weight, bias.expand(2))
    with pytest.raises(ValueError, match=r"target must have shape \(N,\) = \(6,\)"):
        verification_loss(f1, f2, target[:, None], weight, bias)
    with pytest.raises(ValueError, match=r"target must hold values in \[0, 1\] \(1 = same identity\), got 2.0"):
        verification_loss(f1, f2, torch.where(target == 1, 2.0, target), weight, bias)
    with pytest.raises(ValueError, match="got -1"):
        verification_loss(f1, f2, torch.tensor([1, 0, -1, 1, 0, 1]), weight, bias)
    with pytest.raises(TypeError, match="weight must be a floating-point tensor"):
        verification_loss(f1, f2, target, weight.long(), bias)
    with pytest.raises(TypeError, match="bias must be a torch.Tensor, got float"):
        verification_loss(f1, f2, target, weight, 0.5)
    with pytest.raises(TypeError, match="target must be a torch.Tensor, got list"):
        verification_loss(f1, f2, target.tolist(), weight, bias)
    with pytest.raises(TypeError, match="f2 must be a floating-point tensor"):
        verification_loss(f1, f2.long(), target, weight, bias)
    with validate_args(False):  # values not checked; shapes still are
        verification_loss(f1, f2, target + 2, weight, bias)


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"feat_dim": 0}, ValueError, "feat_dim must be a positive int, got 0"),
        ({"feat_dim": 2.5}, ValueError, "feat_dim must be a positive int, got 2.5"),
        ({"feat_dim": True}, ValueError, "feat_dim must be a positive int, got True"),
        ({"feat_dim": 3, "reduction": "avg"}, ValueError, "reduction must be one of"),
    ],
)
def test_module_refuses_bad_options_at_construction(options, error, message):
    with pytest.raises(error, match=message):
        lossbook.nn.VerificationLoss(**options)


def test_module_refuses_bad_input():
    criterion = lossbook.nn.VerificationLoss(3)
    with pytest.raises(ValueError, match=r"f1 must have shape \(N, feat_dim\) = \(N, 3\), got \(5, 2\)"):
        criterion(torch.randn(5, 2), torch.randn(5, 2), torch.ones(5))
    with pytest.raises(ValueError, match=r"f1 must have shape \(N, feat_dim\) = \(N, 3\)"):
        criterion.logits(torch.randn(5, 4), torch.randn(5, 4))
    with pytest.raises(ValueError, match="f1 and f2 must have the same shape"):
        criterion(torch.randn(5, 3), torch.randn(4, 3), torch.ones(5))
    with pytest.raises(ValueError, match="target must have shape"):
        criterion(torch.randn(5, 3), torch.randn(5, 3), torch.ones(4))


# --- the module ---------------------------------------------------------------------------


def module_with_data(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    criterion = lossbook.nn.VerificationLoss(4).to(dtype)
    f1, f2, target, _, _ = random_pairs(10, 4, seed=seed, dtype=dtype)
    return criterion, f1, f2, target


def test_module_is_the_function_and_holds_a_linear_initialization():
    criterion, f1, f2, target = module_with_data()
    assert [name for name, _ in criterion.named_parameters()] == ["weight", "bias"]
    assert criterion.weight.shape == (4,) and criterion.bias.shape == ()
    assert criterion.weight.abs().max() <= 0.5 and criterion.bias.abs() <= 0.5  # U(-1/sqrt(4), 1/sqrt(4))
    torch.testing.assert_close(criterion(f1, f2, target),
                               verification_loss(f1, f2, target, criterion.weight, criterion.bias))
    torch.testing.assert_close(criterion.logits(f1, f2), ((f1 - f2) ** 2) @ criterion.weight + criterion.bias)
    criterion.reduction = "none"
    assert criterion(f1, f2, target).shape == (10,)
    assert repr(criterion) == "VerificationLoss(feat_dim=4, reduction='none')"
    loss = criterion(f1, f2, target).sum()
    loss.backward()
    assert criterion.weight.grad is not None and criterion.bias.grad is not None


def test_state_dict_pickle_and_deepcopy_round_trips():
    criterion, f1, f2, target = module_with_data(seed=1)
    with torch.no_grad():
        criterion.weight.mul_(3.0)
        criterion.bias.fill_(0.7)
    expected = criterion(f1, f2, target)
    buffer = io.BytesIO()
    torch.save(criterion.state_dict(), buffer)
    torch.manual_seed(99)
    restored = lossbook.nn.VerificationLoss(4).double()
    assert not torch.equal(restored.weight, criterion.weight)
    restored.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    for clone in (restored, copy.deepcopy(criterion), pickle.loads(pickle.dumps(criterion))):
        torch.testing.assert_close(clone(f1, f2, target), expected)
        assert repr(clone) == repr(criterion)
        assert isinstance(clone.weight, torch.nn.Parameter)
    with pytest.raises(RuntimeError, match="size mismatch"):
        lossbook.nn.VerificationLoss(5).double().load_state_dict(criterion.state_dict())


def test_to_device(device):
    criterion, f1, f2, target = module_with_data(seed=2)
    expected = criterion(f1, f2, target)
    moved = copy.deepcopy(criterion).to(device)
    assert moved.weight.device.type == device.type and moved.bias.device.type == device.type
    loss = moved(f1.to(device), f2.to(device), target.to(device))
    assert loss.device.type == device.type
    torch.testing.assert_close(loss.cpu(), expected)
    loss.backward()
    assert moved.weight.grad.device.type == device.type


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_inputs(dtype, device):
    torch.manual_seed(0)
    criterion = lossbook.nn.VerificationLoss(4).to(device)
    with torch.no_grad():
        criterion.weight.fill_(-0.01)
    f1, f2, target, _, _ = random_pairs(16, 4, seed=5, dtype=torch.float32, device=device, scale=200.0)
    low1, low2 = f1.to(dtype).requires_grad_(), f2.to(dtype)
    loss = criterion(low1, low2, target.to(dtype))  # squared differences of ~1e5 overflow float16
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    single = low1.detach().float().requires_grad_()
    reference = copy.deepcopy(criterion)(single, low2.float(), target)
    torch.testing.assert_close(loss, reference)
    loss.backward()
    reference.backward()
    assert low1.grad.dtype == dtype and torch.isfinite(low1.grad).all()
    torch.testing.assert_close(low1.grad, single.grad.to(dtype))
    with torch.autocast(device_type=device.type, dtype=dtype):
        assert torch.isfinite(criterion(low1.detach(), low2, target))
        assert torch.isfinite(criterion.logits(low1.detach(), low2)).all()
    # the module itself in half precision: computed in float32 still
    half = copy.deepcopy(criterion).to(dtype)
    assert torch.isfinite(half(low1.detach(), low2, target.to(dtype)))


def test_compile_fullgraph_equals_eager():
    torch._dynamo.reset()
    eager, f1, f2, target = module_with_data(seed=3)
    traced = copy.deepcopy(eager)
    compiled = torch.compile(traced, fullgraph=True, backend="aot_eager")
    for reduction in ["mean", "none"]:
        eager.reduction = traced.reduction = reduction
        x_eager, x_traced = f1.clone().requires_grad_(), f1.clone().requires_grad_()
        expected, result = eager(x_eager, f2, target), compiled(x_traced, f2, target)
        torch.testing.assert_close(result, expected)
        expected.sum().backward()
        result.sum().backward()
        torch.testing.assert_close(x_traced.grad, x_eager.grad)
    torch.testing.assert_close(traced.weight.grad, eager.weight.grad)
    torch.testing.assert_close(traced.bias.grad, eager.bias.grad)


def test_module_exports():
    criterion, f1, f2, target = module_with_data(seed=4)
    program = torch.export.export(criterion, (f1, f2, target))
    torch.testing.assert_close(program.module()(f1, f2, target), criterion(f1, f2, target))


def test_empty_batch_is_a_connected_zero():
    criterion = lossbook.nn.VerificationLoss(3)
    f1 = torch.zeros(0, 3, requires_grad=True)
    loss = criterion(f1, torch.zeros(0, 3), torch.zeros(0))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert f1.grad.shape == (0, 3) and criterion.weight.grad is not None


def test_training_separates_same_and_different_pairs():
    """A few steps on the embeddings of two separated clusters teach the classifier a
    negative weight (a distance) and a threshold between the pair distances."""
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    labels = torch.randint(0, 2, (200,), generator=g)
    points = centres[labels] + 0.3 * torch.randn(200, 2, generator=g)
    first, second = torch.randint(0, 200, (2, 400), generator=g)
    target = (labels[first] == labels[second]).float()
    torch.manual_seed(0)
    criterion = lossbook.nn.VerificationLoss(2)
    optimizer = torch.optim.Adam(criterion.parameters(), lr=0.1)
    for _ in range(300):
        loss = criterion(points[first], points[second], target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert (criterion.weight[0] < 0) and loss.item() < 0.1
    accuracy = ((criterion.logits(points[first], points[second]) > 0).float() == target).float().mean()
    assert accuracy > 0.98
