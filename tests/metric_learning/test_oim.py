"""Tests of book/metric_learning/oim.md: oim_loss, oim_update and the stateful lossbook.nn.OIMLoss."""

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
from lossbook import oim_loss
from lossbook.metric_learning.oim import oim_update
from lossbook.nn import OIMLoss


def unit(rows, dim, generator, dtype=torch.float64):
    return F.normalize(torch.randn(rows, dim, generator=generator, dtype=dtype), dim=1)


def batch(n, dim, num_labeled, generator, unlabelled=0.3, unique=False):
    if unique:
        labels = torch.randperm(num_labeled, generator=generator)[:n]
    else:
        labels = torch.randint(0, num_labeled, (n,), generator=generator)
    labels = torch.where(torch.rand(n, generator=generator) < unlabelled, -1, labels)
    return unit(n, dim, generator), labels


# --- NumPy transcriptions of Xiao et al. 2017 -----------------------------------------------------


def as_numpy(x):
    return x.detach().numpy().astype(np.float64) if isinstance(x, torch.Tensor) else np.array(x, np.float64)


def oim_numpy(h, labels, table, queue, scalar):
    """Loss (1) per sample (0 for unlabelled) and its gradient (4) per sample."""
    h, table, queue, labels = (as_numpy(a) for a in (h, table, queue, labels))
    memory = np.concatenate([table, queue])
    logits = scalar * h @ memory.T
    top = logits.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    p = np.exp(logits - log_z[:, None])
    loss, grad = np.zeros(len(labels)), np.zeros_like(h)
    for i, y in enumerate(labels.astype(int)):
        if y >= 0:
            loss[i] = log_z[i] - logits[i, y]
            grad[i] = scalar * (p[i] @ memory - table[y])
    return loss, grad


def update_numpy_sequential(h, labels, table, queue, pointer, momentum):
    """The paper's rule as its code applies it: one sample at a time, in batch order."""
    table, queue = as_numpy(table), as_numpy(queue)
    for x, y in zip(as_numpy(h), as_numpy(labels).astype(int)):
        if y >= 0:
            v = momentum * table[y] + (1 - momentum) * x
            table[y] = v / np.linalg.norm(v)
        elif y == -1 and len(queue):
            queue[pointer] = x
            pointer = (pointer + 1) % len(queue)
    return table, queue, pointer


def update_numpy_mean(h, labels, table, queue, pointer, momentum):
    """lossbook's rule (3): each identity once, with the mean of its features in the batch."""
    h, labels = as_numpy(h), as_numpy(labels).astype(int)
    table = as_numpy(table)
    for y in sorted(set(labels[labels >= 0].tolist())):
        v = momentum * table[y] + (1 - momentum) * h[labels == y].mean(axis=0)
        table[y] = v / np.linalg.norm(v)
    _, queue, pointer = update_numpy_sequential(h, np.where(labels >= 0, -2, labels), table, queue, pointer, momentum)
    return table, queue, pointer


# --- the function ---------------------------------------------------------------------------------


@pytest.mark.parametrize("queue_size", [0, 1, 7])
@pytest.mark.parametrize("scalar", [1.0, 10.0, 30.0])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_values_and_gradients_against_numpy(queue_size, scalar, reduction):
    g = torch.Generator().manual_seed(queue_size + int(scalar))
    h, labels = batch(9, 5, 6, g)
    labels[0] = 2
    table, queue = unit(6, 5, g), unit(queue_size, 5, g)
    expected, grad = oim_numpy(h, labels, table, queue, scalar)
    labelled = (labels >= 0).numpy()
    h.requires_grad_()
    result = oim_loss(h, labels, table, queue, scalar=scalar, reduction=reduction)
    want = {"none": expected, "sum": expected.sum(), "mean": expected.sum() / labelled.sum()}[reduction]
    np.testing.assert_allclose(result.detach().numpy(), want, rtol=1e-12, atol=1e-13)
    result.sum().backward()
    divisor = labelled.sum() if reduction == "mean" else 1
    np.testing.assert_allclose(h.grad.numpy(), grad / divisor, rtol=1e-10, atol=1e-12)


def test_gradcheck_including_the_memories():
    g = torch.Generator().manual_seed(3)
    h, labels = batch(5, 3, 4, g)
    labels[0] = 1
    tensors = (h.requires_grad_(), unit(4, 3, g).requires_grad_(), unit(2, 3, g).requires_grad_())
    assert torch.autograd.gradcheck(lambda x, t, q: oim_loss(x, labels, t, q, scalar=5.0), tensors)
    assert torch.autograd.gradgradcheck(lambda x, t, q: oim_loss(x, labels, t, q, scalar=5.0), tensors)


def test_empty_queue_is_cross_entropy_over_the_table():
    g = torch.Generator().manual_seed(4)
    h, labels = batch(10, 4, 5, g, unlabelled=0.0)
    table = unit(5, 4, g)
    torch.testing.assert_close(oim_loss(h, labels, table, torch.zeros(0, 4, dtype=torch.float64), scalar=7.0),
                               F.cross_entropy(7.0 * h @ table.T, labels))


def test_no_labelled_sample_gives_a_connected_zero():
    g = torch.Generator().manual_seed(5)
    h = unit(4, 3, g).requires_grad_()
    loss = oim_loss(h, torch.full((4,), -1), unit(2, 3, g), unit(3, 3, g))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(h.grad, torch.zeros_like(h))


@given(st.integers(0, 2**31 - 1), st.floats(0.5, 40.0))
def test_properties(seed, scalar):
    """Non-negative; unlabelled samples and queue order change nothing but the negatives;
    a rotation of features and memories together changes nothing."""
    g = torch.Generator().manual_seed(seed)
    h, labels = batch(8, 4, 5, g)
    table, queue = unit(5, 4, g), unit(3, 4, g)
    per_sample = oim_loss(h, labels, table, queue, scalar=scalar, reduction="none")
    assert (per_sample >= 0).all() and (per_sample[labels < 0] == 0).all()
    torch.testing.assert_close(oim_loss(h, labels, table, queue.flip(0), scalar=scalar, reduction="none"), per_sample)
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    torch.testing.assert_close(
        oim_loss(h @ rotation, labels, table @ rotation, queue @ rotation, scalar=scalar, reduction="none"), per_sample)
    # more negatives never lower the loss of a labelled sample
    more = oim_loss(h, labels, table, torch.cat([queue, unit(4, 4, g)]), scalar=scalar, reduction="none")
    assert (more >= per_sample - 1e-12).all()


@pytest.mark.parametrize("label_dtype", [torch.int8, torch.int16, torch.int32, torch.int64])
def test_labels_of_any_integer_dtype(label_dtype):
    g = torch.Generator().manual_seed(6)
    h, labels = batch(6, 3, 4, g)
    table, queue = unit(4, 3, g), unit(2, 3, g)
    torch.testing.assert_close(oim_loss(h, labels.to(label_dtype), table, queue), oim_loss(h, labels, table, queue))


def test_refusals():
    g = torch.Generator().manual_seed(7)
    h, labels = batch(6, 3, 4, g)
    table, queue = unit(4, 3, g), unit(2, 3, g)
    with pytest.raises(ValueError, match=r"lookup_table must have shape \(num_labeled, D\) = \(L, 3\)"):
        oim_loss(h, labels, unit(4, 5, g), queue)
    with pytest.raises(ValueError, match=r"lookup_table must have shape .* with L >= 1"):
        oim_loss(h, labels, torch.zeros(0, 3, dtype=torch.float64), queue)
    with pytest.raises(ValueError, match=r"queue must have shape \(queue_size, D\) = \(Q, 3\)"):
        oim_loss(h, labels, table, unit(2, 4, g))
    with pytest.raises(ValueError, match=r"queue must have shape"):
        oim_loss(h, labels, table, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(TypeError, match="lookup_table must be a floating-point tensor"):
        oim_loss(h, labels, table.long(), queue)
    with pytest.raises(ValueError, match=r"labels must be an identity in \[0, 4\) or -1 \(unlabeled\), got 4"):
        oim_loss(h, torch.tensor([0, 1, 4, -1, 2, 3]), table, queue)
    with pytest.raises(ValueError, match=r"labels must be an identity in \[0, 4\) or -1 \(unlabeled\), got -2"):
        oim_loss(h, torch.tensor([0, 1, -2, -1, 2, 3]), table, queue)
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\) = \(6,\)"):
        oim_loss(h, labels[:5], table, queue)
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        oim_loss(h, labels.double(), table, queue)


# --- the update and the module --------------------------------------------------------------------


def test_update_equals_the_paper_when_identities_do_not_repeat():
    g = torch.Generator().manual_seed(8)
    table, queue, pointer = unit(10, 4, g), torch.zeros(4, 4, dtype=torch.float64), 0
    t, q, p = table.clone(), queue.clone(), torch.tensor(0)
    for _ in range(6):
        h, labels = batch(6, 4, 10, g, unique=True)
        table, queue, pointer = update_numpy_sequential(h, labels, table, queue, pointer, 0.5)
        t, q, p = oim_update(h, labels, t, q, p, momentum=0.5)
        np.testing.assert_allclose(t.numpy(), table, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(q.numpy(), queue, rtol=1e-12, atol=1e-14)
        assert p.item() == pointer


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9, 1.0])
def test_update_with_repeats_is_the_mean_rule(momentum):
    g = torch.Generator().manual_seed(9)
    table, queue, pointer = unit(3, 4, g), unit(5, 4, g), 3
    t, q, p = table.clone(), queue.clone(), torch.tensor(3)
    for _ in range(5):
        h, labels = batch(12, 4, 3, g, unlabelled=0.6)  # repeats and more unlabelled than the queue holds
        table, queue, pointer = update_numpy_mean(h, labels, table, queue, pointer, momentum)
        t, q, p = oim_update(h, labels, t, q, p, momentum=momentum)
        np.testing.assert_allclose(t.numpy(), table, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(q.numpy(), queue, rtol=1e-12, atol=1e-14)
        assert p.item() == pointer


def test_module_trains_its_memories_over_steps_like_numpy():
    g = torch.Generator().manual_seed(10)
    criterion = OIMLoss(4, 6, 5, scalar=20.0, momentum=0.7).double()
    table, queue, pointer = np.zeros((6, 4)), np.zeros((5, 4)), 0
    for _ in range(5):
        h, labels = batch(6, 4, 6, g, unique=True, unlabelled=0.4)
        expected, _ = oim_numpy(h, labels, table, queue, 20.0)
        labelled = (labels >= 0).numpy()
        loss = criterion(h, labels)
        np.testing.assert_allclose(loss.item(), expected.sum() / max(labelled.sum(), 1), rtol=1e-12)
        table, queue, pointer = update_numpy_sequential(h, labels, table, queue, pointer, 0.7)
        np.testing.assert_allclose(criterion.lookup_table.numpy(), table, atol=1e-14)
        np.testing.assert_allclose(criterion.queue.numpy(), queue, atol=1e-14)
        assert criterion.queue_pointer.item() == pointer


def test_module_eval_mode_and_attributes():
    criterion = OIMLoss(3, 4, 2, scalar=10.0)
    assert repr(criterion) == ("OIMLoss(num_features=3, num_labeled=4, queue_size=2, scalar=10.0, momentum=0.5, "
                               "reduction='mean')")
    assert [name for name, _ in criterion.named_buffers()] == ["lookup_table", "queue", "queue_pointer"]
    assert list(criterion.parameters()) == []
    h = F.normalize(torch.randn(5, 3), dim=1)
    labels = torch.tensor([0, 1, -1, 3, -1])
    criterion.eval()
    criterion(h, labels)
    assert not criterion.lookup_table.any() and criterion.queue_pointer.item() == 0
    criterion.train()
    criterion.reduction = "none"
    assert criterion(h, labels).shape == (5,)
    assert criterion.lookup_table.any() and criterion.queue_pointer.item() == 0  # two pushed into a queue of 2
    criterion.scalar = 1.0
    torch.testing.assert_close(criterion(h, labels), oim_loss(h, labels, criterion.lookup_table, criterion.queue,
                                                               scalar=1.0, reduction="none"), rtol=0, atol=1e-1)


def test_module_refuses_bad_construction_and_inputs():
    with pytest.raises(ValueError, match="num_features must be an int >= 1, got 0"):
        OIMLoss(0, 4, 2)
    with pytest.raises(ValueError, match="num_labeled must be an int >= 1, got 2.5"):
        OIMLoss(3, 2.5, 2)
    with pytest.raises(ValueError, match="queue_size must be an int >= 0, got -1"):
        OIMLoss(3, 4, -1)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\], got 1.5"):
        OIMLoss(3, 4, 2, momentum=1.5)
    with pytest.raises(ValueError, match="scalar must be a positive number, got -30.0"):
        OIMLoss(3, 4, 2, scalar=-30.0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        OIMLoss(3, 4, 2, reduction="avg")
    criterion = OIMLoss(3, 4, 2)
    h = F.normalize(torch.randn(4, 3), dim=1)
    with pytest.raises(ValueError, match=r"lookup_table must have shape \(num_labeled, D\) = \(L, 5\)"):
        criterion(torch.randn(4, 5), torch.tensor([0, 1, 2, 3]))  # features of the wrong size
    with pytest.raises(ValueError, match=r"got 4"):
        criterion(h, torch.tensor([0, 1, 2, 4]))
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\) = \(4,\)"):
        criterion(h, torch.tensor([0, 1, 2]))
    assert not criterion.lookup_table.any()  # nothing updated by a refused call


def test_state_dict_pickle_and_deepcopy_round_trip():
    g = torch.Generator().manual_seed(11)
    criterion = OIMLoss(4, 5, 3, scalar=15.0, momentum=0.3)
    for _ in range(3):
        h, labels = batch(6, 4, 5, g)
        criterion(h.float(), labels)
    buffer = io.BytesIO()
    torch.save(criterion.state_dict(), buffer)
    restored = OIMLoss(4, 5, 3, scalar=15.0, momentum=0.3)
    restored.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    h, labels = batch(6, 4, 5, g)
    h = h.float()
    clones = [restored, pickle.loads(pickle.dumps(criterion)), copy.deepcopy(criterion)]
    for clone in clones:
        assert repr(clone) == repr(criterion)
        for name, value in criterion.state_dict().items():
            assert torch.equal(clone.state_dict()[name], value)
    expected = criterion(h, labels)  # training mode: the memories move
    for clone in clones:
        torch.testing.assert_close(clone(h, labels), expected)
        for name, value in criterion.state_dict().items():
            assert torch.equal(clone.state_dict()[name], value)


def test_to_device_moves_the_memories(device):
    g = torch.Generator().manual_seed(12)
    criterion = OIMLoss(4, 5, 3).to(device)
    assert all(buffer.device.type == device.type for buffer in criterion.buffers())
    reference = OIMLoss(4, 5, 3)
    for _ in range(3):
        h, labels = batch(6, 4, 5, g)
        loss = criterion(h.float().to(device), labels.to(device))
        torch.testing.assert_close(loss.cpu(), reference(h.float(), labels))
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(criterion.state_dict()[name].cpu(), value)


def test_compiled_forward_equals_eager_and_updates_the_memories():
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(13)
    eager, compiled_module = OIMLoss(4, 6, 3), OIMLoss(4, 6, 3)
    compiled = torch.compile(compiled_module, fullgraph=True, backend="aot_eager")
    for _ in range(3):
        h, labels = batch(8, 4, 6, g)
        h = h.float()
        first, second = h.clone().requires_grad_(), h.clone().requires_grad_()
        expected, result = eager(first, labels), compiled(second, labels)
        torch.testing.assert_close(result, expected)
        expected.backward()
        result.backward()
        torch.testing.assert_close(second.grad, first.grad)
        for name, value in eager.state_dict().items():
            torch.testing.assert_close(compiled_module.state_dict()[name], value)


def test_export_of_the_module_in_eval_mode():
    criterion = OIMLoss(3, 4, 2).eval()
    criterion.lookup_table.copy_(F.normalize(torch.randn(4, 3), dim=1))
    h, labels = F.normalize(torch.randn(5, 3), dim=1), torch.tensor([0, 1, -1, 3, -1])
    program = torch.export.export(criterion, (h, labels))
    torch.testing.assert_close(program.module()(h, labels), criterion(h, labels))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_and_autocast(dtype, device):
    g = torch.Generator().manual_seed(14)
    criterion = OIMLoss(8, 20, 6).to(device)
    reference = OIMLoss(8, 20, 6).to(device)
    for _ in range(3):
        h, labels = batch(16, 8, 20, g)
        low = h.to(device, dtype).requires_grad_()
        loss = criterion(low, labels.to(device))
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        loss.backward()
        assert low.grad.dtype == dtype and torch.isfinite(low.grad).all()
        torch.testing.assert_close(loss, reference(low.detach().float(), labels.to(device)), rtol=1e-5, atol=1e-6)
    assert criterion.lookup_table.dtype == torch.float32
    extreme = (100 * h).to(device, dtype)  # logits of 3000: the compute is float32
    assert torch.isfinite(criterion(extreme, labels.to(device)))
    with torch.autocast(device_type=device.type, dtype=dtype):
        assert torch.isfinite(criterion(extreme.float(), labels.to(device)))


def test_lossbook_namespaces():
    assert lossbook.oim_loss is oim_loss and lossbook.nn.OIMLoss is OIMLoss
    assert oim_loss.nn_module_name == "OIMLoss" and oim_loss.nn_module_stateful
