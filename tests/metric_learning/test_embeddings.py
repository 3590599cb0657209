"""Tests of book/metric_learning/embeddings.md: distances, masks, retrieval metrics, digits helpers.

The metrics are not losses (no battery case): their oracles are a float64 NumPy brute force
and pytorch-metric-learning's AccuracyCalculator, under the settings where PML computes the
same thing (Euclidean distances of the raw embeddings, ``ref_includes_query=True``).
"""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lossbook import map_at_r, recall_at_k
from lossbook.conventions.anatomy import validate_args
from lossbook.metric_learning.embeddings import (
    check_embeddings,
    cosine_similarity_matrix,
    digits_data,
    embedding_net,
    label_masks,
    pairwise_distances,
    safe_sqrt,
)

SHAPES = [(1, 1, 1), (2, 3, 1), (7, 5, 3), (33, 17, 16)]


def random_embeddings(n, dim, *, classes=4, dtype=torch.float64, seed=0, device="cpu"):
    generator = torch.Generator().manual_seed(seed)
    h = torch.randn(n, dim, dtype=dtype, generator=generator)
    y = torch.randint(0, classes, (n,), generator=generator)
    return h.to(device), y.to(device)


# --- NumPy oracles -----------------------------------------------------------------------


def distances_numpy(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def cosine_numpy(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-8)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-8)
    return a @ b.T


def ranking_numpy(h, y, distance):
    """Leave-one-out neighbours of every query, nearest first, ties by index (stable sort)."""
    h, y = np.asarray(h, np.float64), np.asarray(y)
    if distance == "euclidean":
        key = distances_numpy(h, h)
    else:
        key = -cosine_numpy(h, h)
    rankings = []
    for i in range(len(y)):
        others = np.array([j for j in range(len(y)) if j != i], dtype=int)
        order = others[np.argsort(key[i, others], kind="stable")]
        rankings.append(y[order] == y[i])
    return rankings


def recall_numpy(h, y, k, distance="euclidean"):
    hits = [bool(r[:k].any()) for r in ranking_numpy(h, y, distance) if r.any()]
    return float(np.mean(hits)) if hits else 0.0


def map_at_r_numpy(h, y, distance="euclidean"):
    averages = []
    for relevant in ranking_numpy(h, y, distance):
        r = int(relevant.sum())
        if r == 0:
            continue
        top = relevant[:r].astype(np.float64)
        precision = np.cumsum(top) / np.arange(1, r + 1)
        averages.append((precision * top).sum() / r)
    return float(np.mean(averages)) if averages else 0.0


# --- pairwise_distances ------------------------------------------------------------------


@pytest.mark.parametrize("n, m, dim", SHAPES)
@pytest.mark.parametrize("squared", [False, True])
def test_distances_match_numpy_and_cdist(n, m, dim, squared, device):
    a, _ = random_embeddings(n, dim, seed=1, device=device)
    b, _ = random_embeddings(m, dim, seed=2, device=device)
    power = 2 if squared else 1
    for ours, expected in [
        (pairwise_distances(a, b, squared=squared), distances_numpy(a.cpu(), b.cpu()) ** power),
        (pairwise_distances(a, squared=squared), distances_numpy(a.cpu(), a.cpu()) ** power),
    ]:
        np.testing.assert_allclose(ours.cpu().numpy(), expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(pairwise_distances(a, b), torch.cdist(a, b), rtol=1e-10, atol=1e-12)
    assert pairwise_distances(a).shape == (n, n) and pairwise_distances(a, b).shape == (n, m)


def test_diagonal_is_exactly_zero_and_symmetric(device):
    h = (10 * torch.randn(64, 128, generator=torch.Generator().manual_seed(3))).to(device)  # float32, large norms
    d = pairwise_distances(h)
    assert (d.diagonal() == 0).all()
    assert (d >= 0).all()
    torch.testing.assert_close(d, d.T)


def test_worked_example():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    expected = torch.tensor([[0.0, 5.0, 10.0], [5.0, 0.0, 5.0], [10.0, 5.0, 0.0]])
    torch.testing.assert_close(pairwise_distances(x), expected)
    torch.testing.assert_close(pairwise_distances(x, squared=True), expected**2)


@pytest.mark.parametrize("with_y", [False, True])
def test_gradient_is_the_unit_vector(with_y):
    """Equation (5): d d_ij / d h_i = (h_i - h_j) / d_ij for distinct points."""
    a, _ = random_embeddings(5, 3, seed=4)
    b = random_embeddings(4, 3, seed=5)[0] if with_y else a
    a = a.clone().requires_grad_()
    d = pairwise_distances(a, b if with_y else None)
    (grad,) = torch.autograd.grad(d[0, 1], a)
    other = (b if with_y else a.detach())[1]
    torch.testing.assert_close(grad[0], (a[0].detach() - other) / (a[0].detach() - other).norm())


def test_gradcheck_with_itself_diagonal_included():
    h = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6), requires_grad=True)
    assert torch.autograd.gradcheck(pairwise_distances, (h,))
    assert torch.autograd.gradgradcheck(pairwise_distances, (h,))
    assert torch.autograd.gradcheck(lambda x: pairwise_distances(x, squared=True), (h,))
    y = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(7), requires_grad=True)
    assert torch.autograd.gradcheck(pairwise_distances, (h, y))
    assert torch.autograd.gradgradcheck(pairwise_distances, (h, y))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_gradients_at_distance_zero(dtype, device):
    """Coinciding rows (a kink) and the diagonal: every first and second derivative finite."""
    base = torch.randn(4, 3, dtype=dtype, generator=torch.Generator().manual_seed(8)).to(device)
    h = base.repeat(2, 1).requires_grad_()
    for d in [pairwise_distances(h), pairwise_distances(h, h), pairwise_distances(h, base)]:
        (grad,) = torch.autograd.grad(d.sum(), h, create_graph=True)
        assert grad.isfinite().all()
        (second,) = torch.autograd.grad(grad.sum(), h)
        assert second.isfinite().all()


def test_naive_sqrt_is_nan_and_safe_sqrt_is_not():
    h = torch.randn(4, 3, requires_grad=True)
    ((h[:, None] - h[None]) ** 2).sum(-1).sqrt().sum().backward()
    assert h.grad.isnan().all()  # the pitfall the chapter shows
    u = torch.tensor([0.0, 0.0, 4.0], dtype=torch.float64, requires_grad=True)
    value = safe_sqrt(u)
    (first,) = torch.autograd.grad(value.sum(), u, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), u)
    torch.testing.assert_close(value.detach(), torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(first.detach(), torch.tensor([0.0, 0.0, 0.25], dtype=torch.float64))
    torch.testing.assert_close(second, torch.tensor([0.0, 0.0, -1 / 32], dtype=torch.float64))
    positive = torch.rand(50, dtype=torch.float64) + 0.01
    torch.testing.assert_close(safe_sqrt(positive), positive.sqrt(), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype, device):
    """Coordinates of 300: squared norms of 3.6e5 overflow float16 (65504); the result is
    float32, finite, and equal to the float32 computation on the same rounded values."""
    h = (300 * torch.randn(16, 4, generator=torch.Generator().manual_seed(9))).to(dtype).to(device)
    other = (300 * torch.randn(5, 4, generator=torch.Generator().manual_seed(10))).to(dtype).to(device)
    for ours, reference in [
        (pairwise_distances(h), pairwise_distances(h.float())),
        (pairwise_distances(h, other), pairwise_distances(h.float(), other.float())),
        (pairwise_distances(h, squared=True), pairwise_distances(h.float(), squared=True)),
        (cosine_similarity_matrix(h), cosine_similarity_matrix(h.float())),
    ]:
        assert ours.dtype == torch.float32 and ours.isfinite().all()
        torch.testing.assert_close(ours, reference)
    leaf = h.clone().requires_grad_()
    pairwise_distances(leaf).sum().backward()
    assert leaf.grad.dtype == dtype and leaf.grad.isfinite().all()


def test_mixed_dtypes_promote():
    a = torch.randn(3, 2, dtype=torch.float64)
    assert pairwise_distances(a, a.float()).dtype == torch.float64
    assert pairwise_distances(a.half(), a.float()).dtype == torch.float32


def test_compile_and_vmap():
    h = torch.randn(6, 3, generator=torch.Generator().manual_seed(11))
    y = torch.randn(4, 3, generator=torch.Generator().manual_seed(12))
    compiled = torch.compile(pairwise_distances, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(h), pairwise_distances(h))
    torch.testing.assert_close(compiled(h, y), pairwise_distances(h, y))
    batch = torch.randn(3, 6, 3, generator=torch.Generator().manual_seed(13))
    torch.testing.assert_close(torch.func.vmap(pairwise_distances)(batch), torch.stack([pairwise_distances(b) for b in batch]))
    grads = torch.func.vmap(torch.func.grad(lambda x: pairwise_distances(x).sum()))(batch)
    assert grads.isfinite().all()
    for b, g in zip(batch, grads):
        leaf = b.clone().requires_grad_()
        pairwise_distances(leaf).sum().backward()
        torch.testing.assert_close(g, leaf.grad)
    cosine = torch.compile(cosine_similarity_matrix, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(cosine(h, y), cosine_similarity_matrix(h, y))


@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(1, 4)), elements=st.floats(-100, 100)),
    st.floats(-50, 50),
)
def test_properties_translation_invariance_and_triangle(points, shift):
    h = torch.from_numpy(points)
    d = pairwise_distances(h)
    assert (d >= 0).all() and (d.diagonal() == 0).all()
    scale = 1 + (h.abs().max().item() + abs(shift)) ** 2
    # translation changes the Gram form's rounding, not the distance: tolerance from (7)
    shifted = pairwise_distances(h + shift)
    assert (shifted - d).abs().max().item() <= 1e-6 * scale**0.5 + 1e-7 * scale
    # triangle inequality, up to the same rounding
    exact = torch.from_numpy(distances_numpy(points, points))
    assert (exact[:, :, None] <= exact[:, None, :] + exact.T[None, :, :] + 1e-9).all()
    np.testing.assert_allclose(d.numpy() ** 2, exact.numpy() ** 2, atol=1e-12 * scale * 10)


# --- cosine similarities and masks ---------------------------------------------------------


@pytest.mark.parametrize("n, m, dim", SHAPES)
def test_cosine_matches_numpy(n, m, dim, device):
    a, _ = random_embeddings(n, dim, seed=14, device=device)
    b, _ = random_embeddings(m, dim, seed=15, device=device)
    np.testing.assert_allclose(cosine_similarity_matrix(a, b).cpu().numpy(), cosine_numpy(a.cpu(), b.cpu()), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cosine_similarity_matrix(a).cpu().numpy(), cosine_numpy(a.cpu(), a.cpu()), rtol=1e-12, atol=1e-12)


def test_cosine_of_a_zero_row_is_zero_and_identity_3():
    h = torch.tensor([[0.0, 0.0], [1.0, 2.0]], requires_grad=True)
    s = cosine_similarity_matrix(h)
    assert s[0].abs().sum() == 0 and s.isfinite().all()
    s.sum().backward()
    assert h.grad.isfinite().all()
    unit = torch.nn.functional.normalize(torch.randn(7, 5, dtype=torch.float64), dim=1)
    expected = (2 - 2 * cosine_similarity_matrix(unit)).fill_diagonal_(0)          # (3), exact 0 diagonal
    torch.testing.assert_close(pairwise_distances(unit, squared=True), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.uint8])
def test_label_masks(dtype, device):
    labels = torch.tensor([3, 3, 7, 3, 1], dtype=dtype, device=device)
    positive, negative = label_masks(labels)
    same = np.equal.outer(labels.cpu().numpy(), labels.cpu().numpy())
    np.testing.assert_array_equal(positive.cpu().numpy(), same & ~np.eye(5, dtype=bool))
    np.testing.assert_array_equal(negative.cpu().numpy(), ~same)
    assert positive.dtype == torch.bool and not (positive & negative).any()
    other = torch.tensor([7, 3], dtype=dtype, device=device)
    positive, negative = label_masks(labels, other)
    np.testing.assert_array_equal(positive.cpu().numpy(), np.equal.outer(labels.cpu().numpy(), other.cpu().numpy()))
    np.testing.assert_array_equal(negative.cpu().numpy(), ~positive.cpu().numpy())


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "embeddings, labels, error, message",
    [
        (torch.zeros(4, 2, dtype=torch.long), None, TypeError, "embeddings must be a floating-point tensor"),
        (torch.zeros(4), None, ValueError, "embeddings must have shape (N, D), got (4,)"),
        (torch.zeros(2, 3, 4), None, ValueError, "must have shape (N, D)"),
        (torch.zeros(4, 2), torch.zeros(4), TypeError, "labels must be an integer tensor"),
        (torch.zeros(4, 2), torch.zeros(4, dtype=torch.bool), TypeError, "labels must be an integer tensor"),
        (torch.zeros(4, 2), [0, 1, 2, 3], TypeError, "labels must be a torch.Tensor"),
        (torch.zeros(4, 2), torch.zeros(4, 1, dtype=torch.long), ValueError, "labels must have shape (N,) = (4,)"),
        (torch.zeros(4, 2), torch.zeros(3, dtype=torch.long), ValueError, "got (3,)"),
    ],
)
def test_check_embeddings_refuses(embeddings, labels, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_embeddings(embeddings, labels)
    if labels is not None and isinstance(labels, torch.Tensor):
        for metric in (recall_at_k, map_at_r):
            with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
                metric(embeddings, labels)


def test_pairwise_distances_refuses_shapes():
    for args in [(torch.zeros(3),), (torch.zeros(2, 3, 4),), (torch.zeros(3, 2), torch.zeros(4, 3)), (torch.zeros(3, 2), torch.zeros(4))]:
        with pytest.raises(ValueError, match=r"needs x of shape \(N, D\) and y of shape \(M, D\)"):
            pairwise_distances(*args)


def test_check_embeddings_accepts_any_integer_labels():
    for dtype in [torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64]:
        check_embeddings(torch.zeros(3, 2, dtype=torch.float16), torch.zeros(3, dtype=dtype))
    check_embeddings(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))


def test_metric_options_refused():
    h, y = random_embeddings(6, 2)
    for k in [0, -1, 1.5, True, "1"]:
        with pytest.raises(ValueError, match="k must be a positive int"):
            recall_at_k(h, y, k=k)
    for metric in (recall_at_k, map_at_r):
        with pytest.raises(ValueError, match="distance must be 'euclidean' or 'cosine'"):
            metric(h, y, distance="manhattan")
        with pytest.raises(TypeError, match="embeddings must be a floating-point tensor"):
            metric(y[:, None], y)


# --- recall@k and MAP@R --------------------------------------------------------------------


@pytest.mark.parametrize("n, dim, classes", [(2, 1, 1), (5, 2, 2), (30, 3, 4), (80, 8, 10), (120, 2, 30)])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_metrics_match_numpy_brute_force(n, dim, classes, distance, device):
    h, y = random_embeddings(n, dim, classes=classes, seed=n, device=device)
    for k in [1, 2, 5, n + 3]:
        ours = recall_at_k(h, y, k=k, distance=distance).item()
        assert abs(ours - recall_numpy(h.cpu(), y.cpu(), k, distance)) < 1e-12, k
    assert abs(map_at_r(h, y, distance=distance).item() - map_at_r_numpy(h.cpu(), y.cpu(), distance)) < 1e-12


def test_worked_examples_of_the_chapter():
    h = torch.tensor([[0.0], [0.1], [1.0], [1.2], [5.0]])
    y = torch.tensor([0, 0, 1, 0, 1])
    assert recall_at_k(h, y, k=1).item() == pytest.approx(0.4)
    assert recall_at_k(h, y, k=2).item() == pytest.approx(0.8)
    assert map_at_r(h, y).item() == pytest.approx(0.25)


def test_ties_are_broken_by_index():
    """The query at the origin has four neighbours at distance 1 exactly: the lowest index
    comes first (as the stable NumPy oracle does)."""
    h = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    # positive of the origin at index 4: its first neighbour is 1 (a negative); only query 4 hits
    assert recall_at_k(h, torch.tensor([0, 1, 1, 1, 0])).item() == pytest.approx(0.2)
    # positive at index 1: queries 0 and 1 hit
    assert recall_at_k(h, torch.tensor([0, 0, 1, 1, 1])).item() == pytest.approx(0.4)
    for labels in ([0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [2, 0, 1, 2, 0]):
        y = torch.tensor(labels)
        assert recall_at_k(h, y).item() == pytest.approx(recall_numpy(h, y, 1))
        assert map_at_r(h, y).item() == pytest.approx(map_at_r_numpy(h, y))


def test_perfect_and_worst_embeddings():
    y = torch.arange(5).repeat_interleave(4)
    clustered = y[:, None].double() * 100 + torch.rand(20, 1, dtype=torch.float64)
    assert recall_at_k(clustered, y).item() == 1 and map_at_r(clustered, y).item() == 1
    # every class mate farther than every other point: recall@1 = 0, MAP@R = 0
    far = torch.tensor([[0.0], [10.0], [1.0], [11.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    assert recall_at_k(far, labels).item() == 0 and map_at_r(far, labels).item() == 0
    assert recall_at_k(far, labels, k=2).item() == 0.5 and recall_at_k(far, labels, k=3).item() == 1


def test_queries_without_a_positive_are_left_out():
    h, y = random_embeddings(40, 3, classes=3, seed=20)
    alone = y.clone()
    alone[:4] = torch.tensor([100, 101, 102, 103])
    keep = torch.arange(40) >= 4
    # leaving the lone queries out of the denominator, but not out of the reference set
    relevant = ranking_numpy(h, alone, "euclidean")
    hits = [bool(r[:1].any()) for r, k in zip(relevant, keep) if k]
    assert recall_at_k(h, alone).item() == pytest.approx(np.mean(hits), abs=1e-12)
    # nobody has a positive: 0, not NaN
    unique = torch.arange(6)
    assert recall_at_k(h[:6], unique).item() == 0 and map_at_r(h[:6], unique).item() == 0
    # empty and single inputs
    for n in [0, 1]:
        assert recall_at_k(h[:n], y[:n]).item() == 0 and map_at_r(h[:n], y[:n]).item() == 0


def test_metrics_dtypes_devices_and_no_gradient(device):
    h, y = random_embeddings(50, 4, seed=21, device=device)
    h32 = h.float().requires_grad_()
    for metric in (recall_at_k, map_at_r):
        assert metric(h, y).dtype == torch.float64
        value = metric(h32, y)
        assert value.dtype == torch.float32 and not value.requires_grad
        assert value.device == h.device
        half = metric(h.half(), y)
        assert half.dtype == torch.float32 and half.isfinite()
        for dtype in [torch.int32, torch.uint8]:
            assert metric(h, y.to(dtype)).item() == pytest.approx(metric(h, y).item())


def test_metrics_compile():
    h, y = random_embeddings(30, 3, seed=22, dtype=torch.float32)
    with validate_args(False):
        for metric in (recall_at_k, map_at_r):
            compiled = torch.compile(metric, fullgraph=True, backend="aot_eager")
            torch.testing.assert_close(compiled(h, y), metric(h, y))


@given(st.integers(2, 40), st.integers(1, 6), st.integers(0, 10_000))
def test_metric_properties(n, classes, seed):
    """Recall@k is in [0, 1] and non-decreasing in k, MAP@R in [0, 1]; both invariant to a
    rotation, a translation and a scaling (the ranking does not change; near ties excepted)."""
    h, y = random_embeddings(n, 3, classes=classes, seed=seed)
    recalls = [recall_at_k(h, y, k=k).item() for k in range(1, n + 1)]
    assert all(0 <= r <= 1 for r in recalls) and all(a <= b + 1e-12 for a, b in zip(recalls, recalls[1:]))
    m = map_at_r(h, y).item()
    assert 0 <= m <= 1
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)))
    moved = 3 * h @ rotation + 0.5
    assert recall_at_k(moved, y).item() == pytest.approx(recalls[0], abs=1e-12) or _has_near_ties(h)
    assert map_at_r(moved, y).item() == pytest.approx(m, abs=1e-12) or _has_near_ties(h)


def _has_near_ties(h):
    d = distances_numpy(h, h) + np.eye(len(h)) * 1e9
    sorted_rows = np.sort(d, axis=1)
    return bool((np.diff(sorted_rows, axis=1) < 1e-9).any())


# --- against pytorch-metric-learning ------------------------------------------------------


def pml_accuracy(h, y, *, normalize, k=None, reference=None):
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    calculator = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"),
        knn_func=CustomKNN(LpDistance(normalize_embeddings=normalize)),
        k=k,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if reference is None:
            return calculator.get_accuracy(h, y, ref_includes_query=True)
        return calculator.get_accuracy(h, y, reference, y, ref_includes_query=False)


@pytest.mark.parametrize("n, dim, classes", [(60, 2, 3), (200, 8, 10), (300, 16, 6)])
@pytest.mark.parametrize("lonely", [False, True])
def test_metrics_match_pytorch_metric_learning(n, dim, classes, lonely):
    """What is truly comparable: PML's precision_at_1 is recall@1 and its
    mean_average_precision_at_r is MAP@R when both rank by the same distance of the same
    vectors (LpDistance(normalize_embeddings=False) for "euclidean"; PML's default
    LpDistance() normalizes, which is our "cosine") with ref_includes_query=True.
    Queries without a positive are left out by both."""
    h, y = random_embeddings(n, dim, classes=classes, seed=n + dim, dtype=torch.float32)
    if lonely:
        y = y.clone()
        y[:3] = torch.tensor([100, 101, 102])
    for distance, normalize in [("euclidean", False), ("cosine", True)]:
        theirs = pml_accuracy(h, y, normalize=normalize)
        assert recall_at_k(h, y, distance=distance).item() == pytest.approx(theirs["precision_at_1"], abs=1e-6)
        assert map_at_r(h, y, distance=distance).item() == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-6)


def test_why_pml_disagreed_at_first():
    """The lead's first comparison (precision_at_1 0.14 against 0.28) used LpDistance()
    with its default normalize_embeddings=True: a cosine ranking. On random 2-D data with
    different norms, Euclidean and cosine recall@1 differ, and PML's default equals our
    cosine, not our Euclidean. Without ref_includes_query=True, the query finds itself."""
    directions, y = random_embeddings(200, 2, classes=4, seed=23, dtype=torch.float32)
    h = torch.nn.functional.normalize(directions, dim=1) * (1 + 3 * y[:, None])  # the class is the norm
    default = pml_accuracy(h, y, normalize=True)["precision_at_1"]
    assert default == pytest.approx(recall_at_k(h, y, distance="cosine").item(), abs=1e-6)
    assert default < 0.5 and recall_at_k(h, y).item() > 0.9
    assert pml_accuracy(h, y, normalize=False)["precision_at_1"] == pytest.approx(recall_at_k(h, y).item(), abs=1e-6)
    assert pml_accuracy(h, y, normalize=False, reference=h)["precision_at_1"] == 1.0


# --- the part's data and network ------------------------------------------------------------


def test_digits_data_and_embedding_net():
    x_train, y_train, x_test, y_test = digits_data()
    assert x_train.shape == (1258, 64) and x_test.shape == (539, 64)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert 0 <= x_train.min() and x_train.max() <= 1
    assert set(y_test.tolist()) == set(range(10))
    again = digits_data()
    assert all(torch.equal(a, b) for a, b in zip(again, (x_train, y_train, x_test, y_test)))
    other = digits_data(seed=1, test_fraction=0.5)
    assert other[0].shape == (898, 64) and not torch.equal(other[1][:50], y_train[:50])
    first, second = embedding_net(2), embedding_net(2)
    for p, q in zip(first.parameters(), second.parameters()):
        assert torch.equal(p, q)
    assert embedding_net(5, hidden=16)(x_test).shape == (539, 5)
    assert not torch.equal(embedding_net(2, seed=1)[0].weight, first[0].weight)
