"""Tests of book/performance/linear_cross_entropy.md: linear_cross_entropy.

The oracles: PyTorch's reference path (``F.cross_entropy`` of the materialized logits,
which ``F.linear_cross_entropy`` without options is) for every option PyTorch has, and a
NumPy transcription of equation (3) for z-loss and soft-capping, which PyTorch has not.
"""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import lossbook
from lossbook import linear_cross_entropy

REDUCTIONS = ["none", "mean", "sum"]


def problem(n=23, d=5, v=13, *, seed=0, dtype=torch.float64, device="cpu", ignore=True):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=torch.float64).to(device, dtype).requires_grad_()
    w = torch.randn(v, d, generator=g, dtype=torch.float64).to(device, dtype).requires_grad_()
    b = torch.randn(v, generator=g, dtype=torch.float64).to(device, dtype).requires_grad_()
    y = torch.randint(0, v, (n,), generator=g)
    if ignore:
        y[::4] = -100
    return h, w, b, y.to(device)


def numpy_loss(h, w, b, y, *, weight=None, smoothing=0.0, z_loss=0.0, softcap=None, ignore_index=-100, reduction="mean"):
    """Equation (3), row by row, in float64 NumPy."""
    h, w = h.detach().double().cpu().numpy(), w.detach().double().cpu().numpy()
    b = np.zeros(w.shape[0]) if b is None else b.detach().double().cpu().numpy()
    cw = np.ones(w.shape[0]) if weight is None else weight.double().cpu().numpy()
    losses, denominator = [], 0.0
    for row, target in zip(h, y.cpu().numpy()):
        if target == ignore_index:
            losses.append(0.0)
            continue
        z = w @ row + b
        if softcap is not None:
            z = softcap * np.tanh(z / softcap)
        lse = np.log(np.sum(np.exp(z - z.max()))) + z.max()
        value = (1 - smoothing) * cw[target] * (lse - z[target]) + smoothing / len(z) * np.sum(cw * (lse - z))
        losses.append(value + z_loss * cw[target] * lse**2)
        denominator += cw[target]
    losses = np.array(losses)
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.sum() / max(denominator, 1e-300) if denominator else 0.0


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("bias", "class_weight", "smoothing", "chunk"),
                         list(itertools.product([False, True], [False, True], [0.0, 0.15], [None, 1, 4])))
def test_equals_pytorchs_reference_path_in_values_and_gradients(reduction, bias, class_weight, smoothing, chunk, device):
    h, w, b, y = problem(device=device)
    cw = torch.linspace(0.2, 2.0, w.shape[0], dtype=torch.float64, device=device) if class_weight else None
    b = b if bias else None
    ours = linear_cross_entropy(h, w, y, linear_bias=b, weight=cw, reduction=reduction, label_smoothing=smoothing,
                                chunk_size=chunk)
    reference = F.cross_entropy(F.linear(h, w, b), y, weight=cw, reduction=reduction, label_smoothing=smoothing)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours, F.linear_cross_entropy(h, w, y, linear_bias=b, weight=cw, reduction=reduction,
                                                            label_smoothing=smoothing), rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(ours)
    inputs = [t for t in (h, w, b) if t is not None]
    for got, expected in zip(torch.autograd.grad(ours, inputs, upstream), torch.autograd.grad(reference, inputs, upstream)):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("z_loss", "softcap"), [(1e-2, None), (0.0, 2.0), (1e-1, 3.0)])
def test_z_loss_and_softcap_follow_equation_3(reduction, z_loss, softcap):
    h, w, b, y = problem()
    cw = torch.linspace(0.5, 1.5, w.shape[0], dtype=torch.float64)
    ours = linear_cross_entropy(h, w, y, linear_bias=b, weight=cw, label_smoothing=0.1, z_loss=z_loss, softcap=softcap,
                                reduction=reduction, chunk_size=5)
    expected = numpy_loss(h, w, b, y, weight=cw, smoothing=0.1, z_loss=z_loss, softcap=softcap, reduction=reduction)
    np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda h, w, b: linear_cross_entropy(h, w, y, linear_bias=b, weight=cw, label_smoothing=0.1, z_loss=z_loss,
                                             softcap=softcap, reduction=reduction, chunk_size=5,
                                             allow_retain_graph=True), (h, w, b))


def test_sequence_shaped_input_and_any_integer_target():
    h, w, _, y = problem(n=24, ignore=False)
    ours = linear_cross_entropy(h.reshape(4, 6, -1), w, y.reshape(4, 6).int(), reduction="none")
    assert ours.shape == (4, 6)
    torch.testing.assert_close(ours.reshape(-1), F.cross_entropy(h @ w.T, y, reduction="none"))


def test_the_logits_are_never_materialized():
    """No tensor of N x V elements is made in forward or backward (the chunk is smaller)."""
    n, v = 64, 1000
    h, w, _, y = problem(n=n, d=8, v=v, dtype=torch.float32)
    sizes = []

    class Sizes(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            sizes.extend(t.numel() for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor))
            return out

    for reduction in REDUCTIONS:
        sizes.clear()
        with Sizes():
            linear_cross_entropy(h, w, y, chunk_size=16, reduction=reduction).sum().backward()
        assert max(sizes) <= 16 * v, reduction  # one chunk of logits at most
    sizes.clear()
    with Sizes():
        F.cross_entropy(h @ w.T, y).backward()
    assert max(sizes) == n * v  # the check sees the materialized logits where they exist


def test_double_backward_is_refused_clearly():
    h, w, _, y = problem()
    loss = linear_cross_entropy(h, w, y)
    (grad,) = torch.autograd.grad(loss, h, create_graph=True)
    with pytest.raises(RuntimeError, match="linear_cross_entropy is differentiable once"):
        grad.sum().backward()


def test_a_second_backward_needs_allow_retain_graph():
    h, w, _, y = problem()
    loss = linear_cross_entropy(h, w, y)
    first = torch.autograd.grad(loss, (h, w), retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice on one graph.*allow_retain_graph=True"):
        torch.autograd.grad(loss, (h, w))
    loss = linear_cross_entropy(h, w, y, allow_retain_graph=True)
    second = torch.autograd.grad(loss, (h, w), retain_graph=True)
    third = torch.autograd.grad(loss, (h, w))
    for a, b, c in zip(first, second, third):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(b, c, rtol=0, atol=0)


def test_the_gradients_are_handed_over_not_copied():
    """With one backward, the weight's gradient is the buffer the forward filled: no copy."""
    h, w, _, y = problem(n=64, d=8, v=500, dtype=torch.float32)
    made = []

    class Storages(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            made.extend(t.untyped_storage().data_ptr() for t in torch.utils._pytree.tree_leaves(out)
                        if isinstance(t, torch.Tensor) and t.numel() == w.numel())
            return out

    with Storages():
        linear_cross_entropy(h, w, y, chunk_size=16).backward()
    assert set(made) - {w.untyped_storage().data_ptr()} == {w.grad.untyped_storage().data_ptr()}


def test_nothing_counted_gives_a_connected_zero():
    h, w, _, y = problem()
    y = torch.full_like(y, -100)
    loss = linear_cross_entropy(h, w, y)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.count_nonzero(h.grad) == 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_inputs_are_computed_in_float32(dtype):
    h, w, _, y = problem(dtype=torch.float32)
    low_h, low_w = h.detach().to(dtype).requires_grad_(), w.detach().to(dtype).requires_grad_()
    ours = linear_cross_entropy(low_h, low_w, y)
    reference = F.cross_entropy(low_h.float() @ low_w.float().T, y)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, reference)
    ours.backward()
    assert low_h.grad.dtype == dtype and low_w.grad.dtype == dtype


def test_refusals_name_the_argument():
    h, w, b, y = problem()
    with pytest.raises(ValueError, match=r"input must have shape \(\*, D\) with D = 5"):
        linear_cross_entropy(h[:, :4], w, y)
    with pytest.raises(ValueError, match=r"target must have shape input.shape\[:-1\] = \(23,\), got \(23, 1\)"):
        linear_cross_entropy(h, w, y[:, None])
    with pytest.raises(TypeError, match="target must be an integer tensor of class indices, got dtype torch.float32"):
        linear_cross_entropy(h, w, y.float())
    with pytest.raises(ValueError, match=r"linear_bias must have shape \(V,\) = \(13,\), got \(12,\)"):
        linear_cross_entropy(h, w, y, linear_bias=b[:12])
    with pytest.raises(ValueError, match=r"weight must have shape \(C,\) = \(13,\)"):
        linear_cross_entropy(h, w, y, weight=torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="target holds class index 13, but linear_weight has 13 rows"):
        linear_cross_entropy(h, w, torch.full_like(y, 13))
    with pytest.raises(ValueError, match="target holds class index -100"):
        linear_cross_entropy(h, w, y, ignore_index=None)


def test_the_module_holds_bias_and_class_weights_as_buffers():
    h, w, b, y = problem()
    module = lossbook.nn.LinearCrossEntropyLoss(linear_bias=b.detach(), label_smoothing=0.1)
    torch.testing.assert_close(module(h, w, y), linear_cross_entropy(h, w, y, linear_bias=b.detach(), label_smoothing=0.1))
    assert "linear_bias" in dict(module.named_buffers())


def test_matches_torchs_chunked_path_in_float32():
    h, w, b, y = problem(n=300, d=16, v=700, dtype=torch.float32)
    ours = linear_cross_entropy(h, w, y, linear_bias=b, label_smoothing=0.1)
    theirs = F.linear_cross_entropy(h, w, y, linear_bias=b, label_smoothing=0.1,
                                    options=torch.nn.LinearCrossEntropyOptions())
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_the_benchmark_script_runs(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "linear_cross_entropy.py"
    spec = importlib.util.spec_from_file_location("benchmark_linear_cross_entropy", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rows = script.main(["--n", "64", "--d", "8", "--vocabularies", "300", "--repeats", "1",
                        "--output", str(tmp_path / "lce.json")])
    assert [row["way"] for row in rows] == ["eager", "torch_chunked", "lossbook"]
    losses = [row["loss"] for row in rows]
    assert max(losses) - min(losses) < 1e-4  # the three ways compute the same loss
