"""Tests of book/metric_learning/triplet.md: triplet_loss and the mining losses
(batch hard, batch all, semi-hard), against PyTorch, pytorch-metric-learning and NumPy
loops over every triplet."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import distances, losses, miners, reducers

import lossbook
import lossbook.nn
from lossbook import batch_all_triplet_loss, batch_hard_triplet_loss, semi_hard_triplet_loss, triplet_loss

REDUCTIONS = ["none", "mean", "sum"]
LP = distances.LpDistance(normalize_embeddings=False)


def batch(n=24, dim=4, classes=4, seed=0, dtype=torch.float64, device="cpu", scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=generator)
    embeddings = scale * torch.randn(n, dim, dtype=dtype, generator=generator)
    return embeddings.to(device), labels.to(device)


# --- NumPy oracles ------------------------------------------------------------------------------


def distance_matrix(e):
    e = np.asarray(e, dtype=np.float64)
    return np.sqrt(((e[:, None, :] - e[None, :, :]) ** 2).sum(-1))


def triplet_numpy(a, p, n, margin, norm, swap, eps):
    """PyTorch's definition: d = ||x - y + eps||_p, hinge, optional distance swap."""
    a, p, n = (np.asarray(t, dtype=np.float64) for t in (a, p, n))
    dist = lambda x, y: (np.abs(x - y + eps) ** norm).sum(-1) ** (1 / norm)  # noqa: E731
    d_an = dist(a, n)
    if swap:
        d_an = np.minimum(d_an, dist(p, n))
    return np.maximum(0.0, dist(a, p) - d_an + margin)


def all_triplets_numpy(e, y, margin):
    """Every valid (a, p, n) by three loops: the per-anchor sums and the list of losses."""
    d, y = distance_matrix(e), np.asarray(y)
    per_anchor, values = np.zeros(len(y)), []
    for a, p, n in itertools.product(range(len(y)), repeat=3):
        if p != a and y[p] == y[a] and y[n] != y[a]:
            value = max(0.0, d[a, p] - d[a, n] + margin)
            per_anchor[a] += value
            values.append(value)
    return per_anchor, np.array(values)


def batch_hard_numpy(e, y, margin, soft=False):
    """Hermans et al. (4): per anchor, the loop over its triplets; 0 for anchors without a
    positive or a negative; the mean over the valid anchors."""
    d, y = distance_matrix(e), np.asarray(y)
    losses_, valid = np.zeros(len(y)), np.zeros(len(y), dtype=bool)
    for a in range(len(y)):
        positives = [d[a, p] for p in range(len(y)) if p != a and y[p] == y[a]]
        negatives = [d[a, n] for n in range(len(y)) if y[n] != y[a]]
        if positives and negatives:
            x = margin + max(positives) - min(negatives)
            losses_[a] = np.logaddexp(0.0, x) if soft else max(0.0, x)
            valid[a] = True
    return losses_, (losses_.sum() / valid.sum() if valid.any() else 0.0)


def semi_hard_numpy(e, y, margin):
    """A transcription of TensorFlow Addons' triplet_semihard_loss (distance_metric="L2"):
    per positive pair, the smallest negative distance above d_ap, else the largest negative
    distance; mean over the positive pairs (here: of anchors that have a negative)."""
    d, y = distance_matrix(e), np.asarray(y)
    per_anchor, count = np.zeros(len(y)), 0
    for a in range(len(y)):
        negatives = np.array([d[a, n] for n in range(len(y)) if y[n] != y[a]])
        if len(negatives) == 0:
            continue
        for p in range(len(y)):
            if p == a or y[p] != y[a]:
                continue
            outside = negatives[negatives > d[a, p]]
            d_an = outside.min() if len(outside) else negatives.max()
            per_anchor[a] += max(0.0, d[a, p] - d_an + margin)
            count += 1
    return per_anchor, per_anchor.sum() / max(count, 1)


# --- triplet_loss --------------------------------------------------------------------------------


@pytest.mark.parametrize("margin", [0.1, 1.0, 3.0])
@pytest.mark.parametrize("p", [1, 1.5, 2, 3])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_triplet_loss_is_torch_and_numpy(margin, p, swap, reduction):
    generator = torch.Generator().manual_seed(7)
    a, pos, neg = (torch.randn(30, 5, dtype=torch.float64, generator=generator) for _ in range(3))
    ours = triplet_loss(a, pos, neg, margin=margin, p=p, swap=swap, reduction=reduction)
    torch.testing.assert_close(ours, F.triplet_margin_loss(a, pos, neg, margin=margin, p=p, swap=swap, reduction=reduction))
    expected = triplet_numpy(a, pos, neg, margin, p, swap, 1e-6)
    expected = {"none": expected, "mean": expected.mean(), "sum": expected.sum()}[reduction]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_triplet_loss_eps_and_unbatched():
    generator = torch.Generator().manual_seed(8)
    a, p, n = (torch.randn(3, 4, dtype=torch.float64, generator=generator) for _ in range(3))
    np.testing.assert_allclose(triplet_loss(a, p, n, eps=0.0, reduction="none").numpy(),
                               triplet_numpy(a, p, n, 1.0, 2, False, 0.0), rtol=1e-12)
    torch.testing.assert_close(triplet_loss(a[0], p[0], n[0], reduction="none"), triplet_loss(a, p, n, reduction="none")[0])


def test_triplet_gradient_is_the_hand_derived_one():
    """Equation (3): d/dh_a = u_ap - u_an, d/dh_p = -u_ap, d/dh_n = u_an on active triplets."""
    generator = torch.Generator().manual_seed(9)
    a, p, n = (torch.randn(40, 3, dtype=torch.float64, generator=generator).requires_grad_() for _ in range(3))
    loss = triplet_loss(a, p, n, margin=1.0, eps=0.0, reduction="sum")
    grads = torch.autograd.grad(loss, (a, p, n))
    with torch.no_grad():
        u_ap = (a - p) / (a - p).norm(dim=1, keepdim=True)
        u_an = (a - n) / (a - n).norm(dim=1, keepdim=True)
        active = ((a - p).norm(dim=1) - (a - n).norm(dim=1) + 1.0 > 0).double()[:, None]
    for got, expected in zip(grads, (active * (u_ap - u_an), -active * u_ap, active * u_an)):
        torch.testing.assert_close(got, expected)


def test_triplet_loss_refusals():
    x = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="anchor and negative must have the same shape"):
        triplet_loss(x, x, torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"shape \(N, D\) or \(D,\)"):
        triplet_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="margin must be a positive number, got -1.0"):
        lossbook.nn.TripletLoss(margin=-1.0)


# --- batch all ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,n,classes", [(0, 5, 2), (1, 17, 3), (2, 40, 6), (3, 12, 12), (4, 9, 1)])
@pytest.mark.parametrize("margin", [0.0, 0.3, 1.0, 5.0])
def test_batch_all_is_the_loop_over_all_triplets(seed, n, classes, margin):
    e, y = batch(n, classes=classes, seed=seed)
    per_anchor, values = all_triplets_numpy(e, y, margin)
    np.testing.assert_allclose(batch_all_triplet_loss(e, y, margin=margin, reduction="none").numpy(), per_anchor,
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(batch_all_triplet_loss(e, y, margin=margin, reduction="sum").item(), values.sum(),
                               rtol=1e-10, atol=1e-12)
    mean_all = values.mean() if len(values) else 0.0
    mean_positive = values[values > 0].mean() if (values > 0).any() else 0.0
    np.testing.assert_allclose(batch_all_triplet_loss(e, y, margin=margin).item(), mean_all, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(batch_all_triplet_loss(e, y, margin=margin, mean_over="positive").item(), mean_positive,
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("margin", [0.2, 1.0])
def test_batch_all_is_pml(seed, margin):
    """mean_over="all" = TripletMarginLoss without a miner and MeanReducer; "positive" = its
    default AvgNonZeroReducer; also with TripletMarginMiner("all"), which drops the triplets
    beyond the margin (loss 0): the same mean over the positive losses."""
    e, y = batch(32, classes=4, seed=seed)
    mean_reducer = losses.TripletMarginLoss(margin=margin, distance=LP, reducer=reducers.MeanReducer())
    nonzero = losses.TripletMarginLoss(margin=margin, distance=LP)
    torch.testing.assert_close(batch_all_triplet_loss(e, y, margin=margin), mean_reducer(e, y))
    torch.testing.assert_close(batch_all_triplet_loss(e, y, margin=margin, mean_over="positive"), nonzero(e, y))
    mined = miners.TripletMarginMiner(margin=margin, type_of_triplets="all", distance=LP)(e, y)
    torch.testing.assert_close(batch_all_triplet_loss(e, y, margin=margin, mean_over="positive"), nonzero(e, y, mined))


def test_batch_all_gradient_is_the_cube_s(device):
    e, y = batch(30, classes=3, seed=5, device=device)
    for mean_over in ("all", "positive"):
        ours, cube = e.clone().requires_grad_(), e.clone().requires_grad_()
        batch_all_triplet_loss(ours, y, margin=0.8, mean_over=mean_over).backward()
        d = torch.cdist(cube, cube)
        same = y[:, None] == y[None, :]
        valid = (same & ~torch.eye(30, dtype=torch.bool, device=device))[:, :, None] & ~same[:, None, :]
        values = F.relu(d[:, :, None] - d[:, None, :] + 0.8)[valid]
        (values.mean() if mean_over == "all" else values[values > 0].mean()).backward()
        torch.testing.assert_close(ours.grad, cube.grad)


def test_batch_all_memory_is_quadratic():
    """Autograd saves O(N^2) numbers, not N^3: at N = 400 the cube would be 64e6 entries."""
    e, y = batch(400, dim=16, classes=10, seed=0, dtype=torch.float32)
    e.requires_grad_()
    saved = []

    def pack(tensor):
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = batch_all_triplet_loss(e, y)
    loss.backward()
    assert sum(saved) < 20 * 400 * 400 * 8, sum(saved)  # a handful of (N, N) tensors


# --- batch hard ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,n,classes", [(0, 6, 2), (1, 17, 3), (2, 40, 6), (3, 9, 9), (4, 7, 1)])
@pytest.mark.parametrize("margin", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("soft", [False, True])
def test_batch_hard_is_the_loop(seed, n, classes, margin, soft):
    e, y = batch(n, classes=classes, seed=seed)
    per_anchor, mean = batch_hard_numpy(e, y, margin, soft)
    np.testing.assert_allclose(batch_hard_triplet_loss(e, y, margin=margin, soft=soft, reduction="none").numpy(),
                               per_anchor, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(batch_hard_triplet_loss(e, y, margin=margin, soft=soft).item(), mean, rtol=1e-12)
    np.testing.assert_allclose(batch_hard_triplet_loss(e, y, margin=margin, soft=soft, reduction="sum").item(),
                               per_anchor.sum(), rtol=1e-12, atol=1e-12)


def test_batch_hard_is_the_largest_triplet_loss_of_each_anchor():
    e, y = batch(20, classes=3, seed=11)
    d, yy = distance_matrix(e), y.numpy()
    hard = batch_hard_triplet_loss(e, y, margin=0.7, reduction="none").numpy()
    for a in range(20):
        values = [max(0, d[a, p] - d[a, n] + 0.7) for p in range(20) for n in range(20)
                  if p != a and yy[p] == yy[a] and yy[n] != yy[a]]
        assert hard[a] == pytest.approx(max(values, default=0.0), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("margin", [0.1, 1.0])
def test_batch_hard_is_pml(seed, margin):
    """MeanReducer: the mean over the anchors the miner keeps (those with a positive and a
    negative); smooth_loss=True is soft=True with the same margin. PML's default
    AvgNonZeroReducer averages over the anchors with a positive loss instead."""
    e, y = batch(32, classes=5, seed=seed)
    mined = miners.BatchHardMiner(distance=LP)(e, y)
    for soft in (False, True):
        pml = losses.TripletMarginLoss(margin=margin, smooth_loss=soft, distance=LP, reducer=reducers.MeanReducer())
        torch.testing.assert_close(batch_hard_triplet_loss(e, y, margin=margin, soft=soft), pml(e, y, mined))
    nonzero = batch_hard_triplet_loss(e, y, margin=margin, reduction="none")
    torch.testing.assert_close(nonzero.sum() / (nonzero > 0).sum(),
                               losses.TripletMarginLoss(margin=margin, distance=LP)(e, y, mined))


# --- semi-hard ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,n,classes", [(0, 6, 2), (1, 17, 3), (2, 40, 6), (3, 8, 8), (4, 5, 1)])
@pytest.mark.parametrize("margin", [0.0, 0.5, 2.0])
def test_semi_hard_is_the_tensorflow_transcription(seed, n, classes, margin):
    e, y = batch(n, classes=classes, seed=seed)
    per_anchor, mean = semi_hard_numpy(e, y, margin)
    np.testing.assert_allclose(semi_hard_triplet_loss(e, y, margin=margin, reduction="none").numpy(), per_anchor,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(semi_hard_triplet_loss(e, y, margin=margin).item(), mean, rtol=1e-12, atol=1e-12)


def test_semi_hard_differs_from_pml_semihard_miner():
    """PML's semihard miner averages every triplet in the ring 0 < d_an - d_ap <= margin:
    the batch-all sum restricted to the ring, which the NumPy loop computes."""
    e, y = batch(30, classes=3, seed=2)
    mined = miners.TripletMarginMiner(margin=0.5, type_of_triplets="semihard", distance=LP)(e, y)
    pml = losses.TripletMarginLoss(margin=0.5, distance=LP)(e, y, mined).item()
    d, yy = distance_matrix(e), y.numpy()
    ring = [0.5 - (d[a, n] - d[a, p]) for a, p, n in itertools.product(range(30), repeat=3)
            if p != a and yy[p] == yy[a] and yy[n] != yy[a] and 0 < d[a, n] - d[a, p] <= 0.5]
    assert pml == pytest.approx(np.mean([v for v in ring if v > 0]), rel=1e-10)
    assert abs(semi_hard_triplet_loss(e, y, margin=0.5).item() - pml) > 1e-3


# --- properties ---------------------------------------------------------------------------------

MINING = [batch_hard_triplet_loss, batch_all_triplet_loss, semi_hard_triplet_loss]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 20), classes=st.integers(1, 5),
       margin=st.floats(0.0, 3.0), shift=st.floats(-10, 10))
def test_mining_losses_are_non_negative_and_invariant(seed, n, classes, margin, shift):
    e, y = batch(n, classes=classes, seed=seed)
    rotation = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)))[0]
    for loss in MINING:
        value = loss(e, y, margin=margin)
        assert value >= 0
        torch.testing.assert_close(loss(e @ rotation.T + shift, y, margin=margin), value, rtol=1e-7, atol=1e-7)
        # relabelling the classes changes nothing
        torch.testing.assert_close(loss(e, (y * 7 + 3) % 1000, margin=margin), value)


def test_well_separated_classes_give_zero():
    y = torch.arange(12) % 3
    e = torch.randn(12, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.01 + 100.0 * F.one_hot(y, 4)
    for loss in MINING:
        assert loss(e, y, margin=1.0).item() == 0.0


@pytest.mark.parametrize("loss", MINING, ids=lambda f: f.__name__)
@pytest.mark.parametrize("labels", [torch.arange(6), torch.zeros(6, dtype=torch.long), torch.tensor([0])],
                         ids=["distinct", "one class", "single"])
def test_no_valid_anchor_is_a_connected_zero(loss, labels, device):
    """PML issue 107: a batch without a valid triplet must not give NaN."""
    e = torch.randn(len(labels), 3, device=device, requires_grad=True)
    value = loss(e, labels.to(device))
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert torch.equal(e.grad, torch.zeros_like(e))


@pytest.mark.parametrize("loss", MINING, ids=lambda f: f.__name__)
def test_collapsed_and_duplicate_embeddings_have_finite_gradients(loss):
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    for e in (torch.zeros(6, 3), torch.tensor([[0.0, 1.0]] * 3 + [[2.0, 0.0]] * 3)):
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            x = e.to(dtype).clone().requires_grad_()
            value = loss(x, y, margin=0.5)
            value.backward()
            assert value.dtype == torch.float32 and torch.isfinite(value) and torch.isfinite(x.grad).all()
    assert batch_hard_triplet_loss(torch.zeros(6, 3), y, margin=0.5).item() == 0.5


@pytest.mark.parametrize("loss", MINING, ids=lambda f: f.__name__)
def test_device_parity_and_float32(loss, device):
    e, y = batch(64, dim=8, classes=6, seed=3)
    expected = loss(e, y, margin=0.5, reduction="none")
    result = loss(e.float().to(device), y.to(device), margin=0.5, reduction="none")
    torch.testing.assert_close(result.double().cpu(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("loss", MINING, ids=lambda f: f.__name__)
def test_mining_refusals(loss):
    e = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\) = \(4,\)"):
        loss(e, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\)"):
        loss(e, torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        loss(e, torch.zeros(4))
    with pytest.raises(ValueError, match=r"embeddings must have shape \(N, D\)"):
        loss(torch.randn(4, 3, 2), torch.zeros(4, dtype=torch.long))


def test_modules_read_their_options():
    e, y = batch(16, classes=3, seed=1)
    module = lossbook.nn.BatchAllTripletLoss(margin=0.5)
    module.mean_over = "positive"
    torch.testing.assert_close(module(e, y), batch_all_triplet_loss(e, y, margin=0.5, mean_over="positive"))
    with pytest.raises(ValueError, match="mean_over must be 'all' or 'positive'"):
        lossbook.nn.BatchAllTripletLoss(mean_over="nonzero")
    hard = lossbook.nn.BatchHardTripletLoss(margin=0.0, soft=True)
    torch.testing.assert_close(hard(e, y), batch_hard_triplet_loss(e, y, margin=0.0, soft=True))
    assert "soft=True" in repr(hard)
