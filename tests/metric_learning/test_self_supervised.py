"""Tests of book/metric_learning/self_supervised.md: info_nce_loss, nt_xent_loss, supervised_contrastive_loss."""

import copy
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pytorch_metric_learning import losses as pml

import lossbook
import lossbook.nn
from lossbook import info_nce_loss, nt_xent_loss, supervised_contrastive_loss

REDUCTIONS = ["none", "mean", "sum"]
TEMPERATURES = [0.05, 0.1, 0.5, 2.0]
SHAPES = [(1, 3), (2, 2), (7, 5), (32, 16)]


def random_pair(n, d, seed=0, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(n, d, generator=g, dtype=dtype)
    key = query + 0.8 * torch.randn(n, d, generator=g, dtype=dtype)
    return query.to(device), key.to(device)


def normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)


def logsumexp(a, axis):
    top = a.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def info_nce_numpy(query, key, T, symmetric=False):
    """Equation (2), float64 NumPy: one loss per pair."""
    s = normalize(np.asarray(query, np.float64)) @ normalize(np.asarray(key, np.float64)).T / T
    loss = logsumexp(s, 1) - np.diag(s)
    if symmetric:
        loss = (loss + logsumexp(s, 0) - np.diag(s)) / 2
    return loss


def nt_xent_numpy(view1, view2, T):
    """Equation (3) with explicit loops over the 2N anchors (the paper's definition)."""
    z = normalize(np.concatenate([np.asarray(view1, np.float64), np.asarray(view2, np.float64)]))
    n2 = len(z)
    losses = []
    for a in range(n2):
        p = (a + n2 // 2) % n2
        denominator = sum(np.exp(z[a] @ z[b] / T) for b in range(n2) if b != a)
        losses.append(-np.log(np.exp(z[a] @ z[p] / T) / denominator))
    return np.array(losses)


def supcon_numpy(embeddings, labels, T):
    """L^sup_out of Khosla et al. (2020), equation (2) of the paper, with loops; anchors
    without a positive get 0, and a mask says which anchors count."""
    z = normalize(np.asarray(embeddings, np.float64))
    labels = np.asarray(labels)
    n = len(z)
    losses, counted = np.zeros(n), np.zeros(n, bool)
    for i in range(n):
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(np.exp(z[i] @ z[a] / T) for a in range(n) if a != i)
        losses[i] = -np.mean([np.log(np.exp(z[i] @ z[p] / T) / denominator) for p in positives])
        counted[i] = True
    return losses, counted


def reduce_numpy(loss, reduction, counted=None):
    counted = np.ones(len(loss), bool) if counted is None else counted
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss[counted].mean() if counted.any() else 0.0


# --- oracles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("symmetric", [False, True])
def test_info_nce_matches_numpy_and_cross_entropy(shape, symmetric, device):
    query, key = random_pair(*shape, seed=1, device=device)
    targets = torch.arange(shape[0], device=device)
    for T in TEMPERATURES:
        expected = info_nce_numpy(query.cpu(), key.cpu(), T, symmetric)
        for reduction in REDUCTIONS:
            ours = info_nce_loss(query, key, temperature=T, symmetric=symmetric, reduction=reduction)
            np.testing.assert_allclose(ours.cpu().numpy(), reduce_numpy(expected, reduction), rtol=1e-10, atol=1e-12)
        logits = F.normalize(query, dim=1) @ F.normalize(key, dim=1).T / T
        cross_entropy = F.cross_entropy(logits, targets, reduction="none")
        if symmetric:
            cross_entropy = (cross_entropy + F.cross_entropy(logits.T, targets, reduction="none")) / 2
        torch.testing.assert_close(info_nce_loss(query, key, temperature=T, symmetric=symmetric, reduction="none"),
                                   cross_entropy, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_info_nce_matches_pml_with_a_reference_set(shape):
    query, key = random_pair(*shape, seed=2)
    labels = torch.arange(shape[0])
    for T in TEMPERATURES:
        theirs = pml.NTXentLoss(temperature=T)(query, labels, ref_emb=key, ref_labels=labels.clone())
        torch.testing.assert_close(info_nce_loss(query, key, temperature=T), theirs, rtol=1e-10, atol=1e-12)


def test_pml_drops_every_positive_when_labels_and_ref_labels_are_one_object():
    """The pitfall the chapter shows: the same tensor as labels and ref_labels means 'no reference set' to PML."""
    query, key = random_pair(8, 4, seed=3)
    labels = torch.arange(8)
    assert pml.NTXentLoss()(query, labels, ref_emb=key, ref_labels=labels).item() == 0.0
    assert info_nce_loss(query, key).item() > 0.1


@pytest.mark.parametrize("shape", SHAPES)
def test_nt_xent_matches_numpy_and_pml(shape, device):
    view1, view2 = random_pair(*shape, seed=4, device=device)
    pairs = torch.arange(shape[0])
    for T in TEMPERATURES:
        expected = nt_xent_numpy(view1.cpu(), view2.cpu(), T)
        for reduction in REDUCTIONS:
            ours = nt_xent_loss(view1, view2, temperature=T, reduction=reduction)
            np.testing.assert_allclose(ours.cpu().numpy(), reduce_numpy(expected, reduction), rtol=1e-10, atol=1e-12)
        theirs = pml.NTXentLoss(temperature=T)(torch.cat([view1, view2]).cpu(), torch.cat([pairs, pairs]))
        torch.testing.assert_close(nt_xent_loss(view1, view2, temperature=T).cpu(), theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n,classes", [(2, 1), (6, 3), (16, 4), (24, 12), (5, 5)])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_supervised_contrastive_matches_numpy(n, classes, dtype, device):
    g = torch.Generator().manual_seed(5)
    embeddings = torch.randn(n, 6, generator=g, dtype=torch.float64).to(device)
    labels = torch.randint(0, classes, (n,), generator=g).to(dtype).to(device)
    for T in TEMPERATURES:
        expected, counted = supcon_numpy(embeddings.cpu(), labels.cpu(), T)
        for reduction in REDUCTIONS:
            ours = supervised_contrastive_loss(embeddings, labels, temperature=T, reduction=reduction)
            np.testing.assert_allclose(ours.cpu().numpy(), reduce_numpy(expected, reduction, counted),
                                       rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n,classes", [(6, 3), (16, 4), (24, 12), (32, 2)])
def test_supervised_contrastive_matches_pml(n, classes):
    g = torch.Generator().manual_seed(6)
    embeddings = torch.randn(n, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (n,), generator=g)
    labels[:2] = torch.tensor([0, 1])  # at least two classes, so PML sees a negative pair
    for T in TEMPERATURES:
        theirs = pml.SupConLoss(temperature=T)(embeddings, labels)
        torch.testing.assert_close(supervised_contrastive_loss(embeddings, labels, temperature=T), theirs,
                                   rtol=1e-10, atol=1e-12)


def test_supervised_contrastive_differs_from_pml_on_a_single_class():
    """PML returns 0 for a batch without negative pairs; equation (5) does not (documented)."""
    embeddings = torch.randn(5, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    labels = torch.zeros(5, dtype=torch.long)
    assert pml.SupConLoss()(embeddings, labels).item() == 0.0
    expected, _ = supcon_numpy(embeddings, labels, 0.1)
    np.testing.assert_allclose(supervised_contrastive_loss(embeddings, labels).item(), expected.mean(), rtol=1e-12)


def test_worked_examples():
    basis = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(info_nce_loss(basis, basis, temperature=1.0),
                               torch.tensor(np.log1p(np.exp(-1.0)), dtype=torch.float64))
    torch.testing.assert_close(nt_xent_loss(basis, basis, temperature=1.0),
                               torch.tensor(np.log1p(2 * np.exp(-1.0)), dtype=torch.float64))


# --- gradients ---------------------------------------------------------------------------------


@pytest.mark.parametrize("T", TEMPERATURES)
def test_hand_derived_gradients(T):
    """(4): d l_i / d s_ij = (p_ij - [j = i]) / T; (6): SupCon's (p_ij - [j in P(i)] / |P(i)|) / T."""
    query, key = random_pair(7, 5, seed=8)
    s = (F.normalize(query, dim=1) @ F.normalize(key, dim=1).T).requires_grad_()
    (autograd,) = torch.autograd.grad((torch.logsumexp(s / T, 1) - s.diagonal() / T).sum(), s)
    torch.testing.assert_close(autograd, (torch.softmax(s.detach() / T, 1) - torch.eye(7, dtype=torch.float64)) / T)
    # the exported loss's gradient with respect to the embeddings, through the chain rule
    q = query.clone().requires_grad_()
    (ours,) = torch.autograd.grad(info_nce_loss(q, key, temperature=T, reduction="sum"), q)
    (chain,) = torch.autograd.grad(F.normalize(q, dim=1) @ F.normalize(key, dim=1).T, q, grad_outputs=autograd)
    torch.testing.assert_close(ours, chain)

    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3])
    embeddings = query.clone().requires_grad_()
    (ours,) = torch.autograd.grad(supervised_contrastive_loss(embeddings, labels, temperature=T, reduction="sum"),
                                  embeddings)
    s = F.normalize(query, dim=1) @ F.normalize(query, dim=1).T
    eye = torch.eye(7, dtype=torch.bool)
    p = torch.softmax((s / T).masked_fill(eye, -1e300), 1)
    positive = (labels[:, None] == labels[None, :]) & ~eye
    count = positive.sum(1, keepdim=True)
    by_hand = ((p - positive / count.clamp(min=1)) / T * (count > 0)).masked_fill(eye, 0)  # (6)
    (chain,) = torch.autograd.grad(F.normalize(embeddings, dim=1) @ F.normalize(embeddings, dim=1).T, embeddings,
                                   grad_outputs=by_hand)
    torch.testing.assert_close(ours, chain)


# --- properties ---------------------------------------------------------------------------------


def pairs_strategy(max_n=6, max_d=4):
    return st.tuples(st.integers(1, max_n), st.integers(1, max_d)).flatmap(
        lambda nd: st.tuples(
            hnp.arrays("float64", nd, elements=st.floats(-10, 10, allow_nan=False).filter(lambda v: abs(v) > 1e-3)),
            hnp.arrays("float64", nd, elements=st.floats(-10, 10, allow_nan=False).filter(lambda v: abs(v) > 1e-3)),
            hnp.arrays("float64", (nd[0],), elements=st.floats(0.1, 10)),
        )
    )


@given(pairs_strategy(), st.floats(0.02, 5.0))
def test_contrastive_properties(problem, T):
    query, key, scales = (torch.from_numpy(a) for a in problem)
    n = len(query)
    for loss_fn in (info_nce_loss, nt_xent_loss):
        loss = loss_fn(query, key, temperature=T, reduction="none")
        assert torch.isfinite(loss).all() and (loss >= -1e-12).all()
        # invariant to the norms of the rows, equivariant to a joint permutation of the pairs
        torch.testing.assert_close(loss_fn(query * scales[:, None], key / scales[:, None], temperature=T, reduction="none"), loss)
        order = torch.arange(n).flip(0)
        permuted = loss_fn(query[order], key[order], temperature=T, reduction="none")
        expected = loss[order] if loss_fn is info_nce_loss else loss.view(2, n)[:, order].reshape(-1)
        torch.testing.assert_close(permuted, expected)
    # at most log N + 2 / T (all similarities within [-1, 1]); log N when all are equal
    assert (info_nce_loss(query, key, temperature=T, reduction="none") <= np.log(n) + 2 / T + 1e-9).all()
    same = torch.ones_like(query)
    torch.testing.assert_close(info_nce_loss(same, same, temperature=T), torch.tensor(np.log(n), dtype=torch.float64))
    # SupCon with one positive per anchor (two views) is NT-Xent
    labels = torch.cat([torch.arange(n), torch.arange(n)])
    torch.testing.assert_close(supervised_contrastive_loss(torch.cat([query, key]), labels, temperature=T),
                               nt_xent_loss(query, key, temperature=T))


@given(pairs_strategy(max_n=8), st.floats(0.02, 5.0), st.integers(1, 4))
def test_supervised_contrastive_properties(problem, T, classes):
    embeddings, _, scales = (torch.from_numpy(a) for a in problem)
    labels = torch.arange(len(embeddings)) % classes
    loss = supervised_contrastive_loss(embeddings, labels, temperature=T, reduction="none")
    assert torch.isfinite(loss).all() and (loss >= -1e-12).all()
    alone = torch.bincount(labels)[labels] == 1
    assert (loss[alone] == 0).all()
    torch.testing.assert_close(supervised_contrastive_loss(embeddings * scales[:, None], labels, temperature=T,
                                                           reduction="none"), loss)
    # relabelling the classes changes nothing
    torch.testing.assert_close(supervised_contrastive_loss(embeddings, (labels + 3) * 7, temperature=T, reduction="none"),
                               loss)


def test_small_temperature_limit_is_a_hinge_on_the_hardest_negative():
    query, key = random_pair(16, 8, seed=9)
    s = F.normalize(query, dim=1) @ F.normalize(key, dim=1).T
    hardest = s.masked_fill(torch.eye(16, dtype=torch.bool), -2).amax(1)
    T = 1e-4
    torch.testing.assert_close(T * info_nce_loss(query, key, temperature=T, reduction="none"),
                               (hardest - s.diagonal()).clamp(min=0), rtol=0, atol=1e-3)


# --- refusals, precision, modules ----------------------------------------------------------------


def test_refusals():
    query, key = random_pair(4, 3)
    with pytest.raises(ValueError, match=r"query must have shape \(N, D\), got \(4,\)"):
        info_nce_loss(query[:, 0], key[:, 0])
    with pytest.raises(ValueError, match="query and key must have the same shape, got"):
        info_nce_loss(query, key[:3])
    with pytest.raises(ValueError, match="view1 and view2 must have the same shape"):
        nt_xent_loss(query, key[:, :2])
    with pytest.raises(TypeError, match="view2 must be a floating-point tensor"):
        nt_xent_loss(query, key.long())
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        supervised_contrastive_loss(query, torch.zeros(4))
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\) = \(4,\)"):
        supervised_contrastive_loss(query, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature must be a positive number, got inf"):
        lossbook.nn.NTXentLoss(temperature=float("inf"))
    with pytest.raises(TypeError, match="symmetric must be a bool"):
        lossbook.nn.InfoNCELoss(symmetric="yes")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_at_a_small_temperature(dtype, device):
    """T = 0.05: logits of 20, e^20 far above float16's largest number; finite, float32, close to float32."""
    query, key = random_pair(32, 8, seed=10, dtype=torch.float32, device=device)
    labels = (torch.arange(32) % 5).to(device)
    for fn, args in [(info_nce_loss, (query, key)), (nt_xent_loss, (query, key)),
                     (supervised_contrastive_loss, (query, labels))]:
        low = [a.to(dtype) if a.is_floating_point() else a for a in args]
        result = fn(*low, temperature=0.05)
        reference = fn(*[a.float() if a.is_floating_point() else a for a in low], temperature=0.05)
        assert result.dtype == torch.float32 and torch.isfinite(result)
        torch.testing.assert_close(result, reference, rtol=1e-5, atol=1e-5)
        with torch.autocast(device_type=device.type, dtype=dtype):
            autocast = fn(*args, temperature=0.05)
        assert autocast.dtype == torch.float32 and torch.isfinite(autocast)
        torch.testing.assert_close(autocast, fn(*args, temperature=0.05), rtol=2e-2, atol=2e-2)


def test_one_sample_and_no_positive_give_a_connected_zero():
    one = torch.randn(1, 4, requires_grad=True)
    for loss in (supervised_contrastive_loss(one, torch.tensor([3])), nt_xent_loss(one, one),
                 supervised_contrastive_loss(torch.randn(3, 4, requires_grad=True), torch.tensor([0, 1, 2]))):
        assert loss.item() == 0.0 and loss.requires_grad
        loss.backward()


def test_modules_read_their_options_at_call_time(device):
    query, key = random_pair(6, 4, device=device)
    module = lossbook.nn.InfoNCELoss(temperature=0.2).to(device)
    torch.testing.assert_close(module(query, key), info_nce_loss(query, key, temperature=0.2))
    module.temperature, module.symmetric = 0.05, True
    torch.testing.assert_close(module(query=query, key=key), info_nce_loss(query, key, temperature=0.05, symmetric=True))
    for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        torch.testing.assert_close(clone(query, key), module(query, key))
    supcon = lossbook.nn.SupervisedContrastiveLoss(temperature=0.1, reduction="none")
    assert "temperature=0.1" in repr(supcon)
    assert supcon(query, torch.tensor([0, 0, 1, 1, 2, 2], device=device)).shape == (6,)
