"""Tests of book/image/chamfer.md: chamfer_distance, chamfer_matching and their helpers.

Oracles: ``scipy.spatial.cKDTree`` (exact nearest neighbours, float64) with PyTorch3D's
rules for padded and empty clouds transcribed from its source; the brute force over the
full distance matrix (``torch.cdist``) for values and gradients; equation (2) of the
chapter by hand; ``scipy.ndimage.distance_transform_edt`` and a brute force over offsets
for the distance transform and chamfer matching. The battery (tests/test_battery.py) runs
the rest; here are the lengths of padded batches, which the battery cannot carry, the
second derivatives, the memory claim and the metric.
"""

import io
import itertools
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from scipy.spatial import cKDTree

import lossbook
import lossbook.nn
from lossbook import chamfer_distance, chamfer_matching
from lossbook.conventions.anatomy import validate_args
from lossbook.image.chamfer import distance_transform, nearest_neighbours


def clouds(batch=4, n=23, m=31, dim=3, *, seed=0, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, dim, generator=g, dtype=torch.float64)
    y = 1.3 * torch.randn(batch, m, dim, generator=g, dtype=torch.float64) + 0.2
    return x.to(device, dtype).requires_grad_(), y.to(device, dtype).requires_grad_()


def kdtree_oracle(x, y, x_lengths=None, y_lengths=None, *, squared=True, single_directional=False, reduction="mean"):
    """PyTorch3D's chamfer_distance (norm=2 for squared, point_reduction="mean"), by k-d tree, in float64:
    padded points ignored, lengths clamped to 1 in the point mean, a point whose other cloud is
    empty at distance 0 (its k-NN kernel leaves the zeros it starts from)."""
    x, y = x.detach().double().cpu().numpy(), y.detach().double().cpu().numpy()
    n_lengths = [x.shape[1]] * len(x) if x_lengths is None else x_lengths.tolist()
    m_lengths = [y.shape[1]] * len(y) if y_lengths is None else y_lengths.tolist()
    per_cloud = []
    for b in range(len(x)):
        xb, yb = x[b, : n_lengths[b]], y[b, : m_lengths[b]]
        value = 0.0
        for queries, points, skip in [(xb, yb, False), (yb, xb, single_directional)]:
            if skip:
                continue
            if len(points) == 0:
                distances = np.zeros(len(queries))
            else:
                distances, _ = cKDTree(points).query(queries) if len(queries) else (np.zeros(0), None)
            terms = distances**2 if squared else distances
            value += terms.sum() / max(len(queries), 1)
        per_cloud.append(value)
    per_cloud = np.array(per_cloud)
    if reduction == "none":
        return per_cloud
    return per_cloud.sum() if reduction == "sum" else (per_cloud.mean() if len(per_cloud) else 0.0)


# --- the oracle, every option ---------------------------------------------------------------------


@pytest.mark.parametrize("squared,single_directional,reduction",
                         list(itertools.product([True, False], [False, True], ["none", "mean", "sum"])))
@pytest.mark.parametrize("dim", [1, 2, 3, 5])
def test_equals_the_kdtree_on_full_clouds(squared, single_directional, reduction, dim):
    x, y = clouds(dim=dim, seed=dim)
    ours = chamfer_distance(x, y, squared=squared, single_directional=single_directional, reduction=reduction,
                            chunk_size=5)
    expected = kdtree_oracle(x, y, squared=squared, single_directional=single_directional, reduction=reduction)
    np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("squared,single_directional", list(itertools.product([True, False], [False, True])))
@pytest.mark.parametrize("chunk_size", [1, 4, None])
def test_padded_batches_follow_pytorch3d(squared, single_directional, chunk_size):
    x, y = clouds(batch=7, n=20, m=15, seed=1)
    x_lengths = torch.tensor([20, 0, 5, 1, 20, 0, 13])
    y_lengths = torch.tensor([15, 4, 0, 15, 1, 0, 7], dtype=torch.int32)  # any integer dtype
    for reduction in ["none", "mean", "sum"]:
        ours = chamfer_distance(x, y, x_lengths=x_lengths, y_lengths=y_lengths, squared=squared,
                                single_directional=single_directional, reduction=reduction, chunk_size=chunk_size)
        expected = kdtree_oracle(x, y, x_lengths, y_lengths, squared=squared,
                                 single_directional=single_directional, reduction=reduction)
        np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-12, atol=1e-14)


def test_padding_values_do_not_matter_and_get_no_gradient():
    x, y = clouds(batch=3, n=12, m=9, seed=2)
    x_lengths, y_lengths = torch.tensor([12, 6, 3]), torch.tensor([4, 9, 0])
    base = chamfer_distance(x, y, x_lengths=x_lengths, y_lengths=y_lengths)
    base.backward()
    x_pad = torch.arange(12)[None, :, None] >= x_lengths[:, None, None]
    y_pad = torch.arange(9)[None, :, None] >= y_lengths[:, None, None]
    assert (x.grad * x_pad).abs().max() == 0 and (y.grad * y_pad).abs().max() == 0
    noisy_x = torch.where(x_pad, 1e3, x.detach())
    noisy_y = torch.where(y_pad, -1e3, y.detach())
    torch.testing.assert_close(chamfer_distance(noisy_x, noisy_y, x_lengths=x_lengths, y_lengths=y_lengths), base.detach())


def test_equals_the_brute_force_values_and_gradients():
    x, y = clouds(seed=3)
    a, b = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
    for squared in [True, False]:
        ours = chamfer_distance(x, y, squared=squared, chunk_size=3)
        d = torch.cdist(a, b)
        d = d.square() if squared else d
        theirs = (d.min(2).values.mean(1) + d.min(1).values.mean(1)).mean()
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)
        for g1, g2 in zip(torch.autograd.grad(ours, (x, y)), torch.autograd.grad(theirs, (a, b))):
            torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)


def test_gradient_by_hand_equation_2_and_3():
    x, y = clouds(batch=1, n=9, m=11, seed=4)
    nu, mu = nearest_neighbours(x, y)
    u = (x - y[:, nu[0]])[0]
    v = (y - x[:, mu[0]])[0]
    for squared in [True, False]:
        gx, gy = torch.autograd.grad(chamfer_distance(x, y, squared=squared), (x, y))
        pull_u = 2 * u if squared else u / u.norm(dim=1, keepdim=True)
        pull_v = 2 * v if squared else v / v.norm(dim=1, keepdim=True)
        by_hand_x = pull_u / 9 - torch.zeros_like(u).index_add(0, mu[0], pull_v / 11)
        by_hand_y = pull_v / 11 - torch.zeros_like(v).index_add(0, nu[0], pull_u / 9)
        torch.testing.assert_close(gx[0], by_hand_x.detach())
        torch.testing.assert_close(gy[0], by_hand_y.detach())


def test_unsquared_gradient_is_zero_not_nan_at_distance_zero():
    x = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]], requires_grad=True)
    y = torch.tensor([[[0.0, 0.0], [2.0, 1.0]]], requires_grad=True)
    gx, gy = torch.autograd.grad(chamfer_distance(x, y, squared=False), (x, y))
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()
    assert gx[0, 0].abs().max() == 0


def test_nearest_neighbours_against_the_kdtree():
    x, y = clouds(batch=2, n=50, m=40, seed=5)
    nu, mu = nearest_neighbours(x, y, rows=7)
    for b in range(2):
        np.testing.assert_array_equal(nu[b].numpy(), cKDTree(y[b].detach().numpy()).query(x[b].detach().numpy())[1])
        np.testing.assert_array_equal(mu[b].numpy(), cKDTree(x[b].detach().numpy()).query(y[b].detach().numpy())[1])


# --- second derivatives, tracing, precision -----------------------------------------------------


@pytest.mark.parametrize("squared", [True, False])
def test_gradcheck_and_gradgradcheck_with_lengths(squared):
    x, y = clouds(batch=3, n=5, m=6, seed=6)
    x_lengths, y_lengths = torch.tensor([5, 3, 0]), torch.tensor([6, 2, 4])
    loss = lambda a, b: chamfer_distance(a, b, x_lengths=x_lengths, y_lengths=y_lengths, squared=squared,  # noqa: E731
                                         chunk_size=2)
    assert torch.autograd.gradcheck(loss, (x, y))
    assert torch.autograd.gradgradcheck(loss, (x, y))


def test_hessian_vector_product_equals_the_brute_force():
    x, y = clouds(batch=1, n=8, m=10, seed=7)
    a, b = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
    direction = torch.randn_like(x)
    (gx,) = torch.autograd.grad(chamfer_distance(x, y), x, create_graph=True)
    (hv,) = torch.autograd.grad((gx * direction).sum(), x)
    d = torch.cdist(a, b).square()
    (ga,) = torch.autograd.grad((d.min(2).values.mean(1) + d.min(1).values.mean(1)).mean(), a, create_graph=True)
    (expected,) = torch.autograd.grad((ga * direction).sum(), a)
    torch.testing.assert_close(hv, expected)


def test_compile_with_lengths_equals_eager():
    torch._dynamo.reset()
    x, y = clouds(batch=3, n=6, m=5, seed=8)
    lengths = torch.tensor([6, 2, 0]), torch.tensor([5, 5, 1])
    fn = lambda a, b, nx, ny: chamfer_distance(a, b, x_lengths=nx, y_lengths=ny, squared=False, reduction="none")  # noqa: E731
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    a, b = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
    expected, result = fn(x, y, *lengths), compiled(a, b, *lengths)
    torch.testing.assert_close(result, expected)
    expected.sum().backward()
    result.sum().backward()
    torch.testing.assert_close(a.grad, x.grad)
    torch.testing.assert_close(b.grad, y.grad)


def test_vmap_with_lengths_and_per_sample_gradients():
    problems = [clouds(batch=2, n=6, m=7, seed=seed) for seed in range(3)]
    xs = torch.stack([p[0].detach() for p in problems])
    ys = torch.stack([p[1].detach() for p in problems])
    x_lengths, y_lengths = torch.tensor([6, 3]), torch.tensor([2, 7])
    fn = lambda a, b: chamfer_distance(a, b, x_lengths=x_lengths, y_lengths=y_lengths)  # noqa: E731
    torch.testing.assert_close(torch.func.vmap(fn)(xs, ys), torch.stack([fn(a, b) for a, b in zip(xs, ys)]))
    per_sample = torch.func.vmap(torch.func.grad(fn))(xs, ys)
    for index in range(3):
        a = xs[index].clone().requires_grad_()
        (expected,) = torch.autograd.grad(fn(a, ys[index]), a)
        torch.testing.assert_close(per_sample[index], expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_with_lengths(dtype, device):
    x, y = clouds(batch=3, n=40, m=30, seed=9, dtype=torch.float32, device=device)
    x, y = (100 * x.detach()).to(dtype).requires_grad_(), (100 * y.detach()).to(dtype)
    lengths = torch.tensor([40, 7, 0], device=device)
    loss = chamfer_distance(x, y, x_lengths=lengths)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    torch.testing.assert_close(loss, chamfer_distance(x.float(), y.float(), x_lengths=lengths))
    loss.backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad).all()


def test_float32_far_from_the_origin_keeps_its_precision():
    g = torch.Generator().manual_seed(10)
    x = (1000 + 0.01 * torch.randn(2, 300, 3, generator=g, dtype=torch.float64)).float()
    y = (x.double() + 0.001 * torch.randn(2, 300, 3, generator=g, dtype=torch.float64)).float()
    expected = chamfer_distance(x.double(), y.double())
    torch.testing.assert_close(chamfer_distance(x, y).double(), expected, rtol=1e-5, atol=0)


def test_device_parity(device):
    x, y = clouds(batch=2, n=33, m=17, seed=11)
    expected = chamfer_distance(x, y, reduction="none")
    torch.testing.assert_close(chamfer_distance(x.to(device), y.to(device), reduction="none").cpu(), expected)


# --- memory ---------------------------------------------------------------------------------------


def test_saves_no_distance_matrix_for_the_backward():
    """Autograd keeps the two clouds and two index vectors: linear in the points."""
    x, y = clouds(batch=2, n=2048, m=1024, dtype=torch.float32, seed=12)
    saved = {}

    def pack(tensor):
        saved[(tensor.untyped_storage().data_ptr(), tuple(tensor.shape))] = tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = chamfer_distance(x, y)
    loss.backward()
    bound = 4 * (x.numel() + y.numel()) + 8 * 2 * (2048 + 1024) + 4096  # clouds + int64 indices + small
    assert sum(saved.values()) <= bound, saved
    assert max(saved.values()) < 2 * 2048 * 1024 * 4 // 100  # far below one distance matrix


def test_forward_holds_one_chunk_at_a_time():
    from torch.utils._python_dispatch import TorchDispatchMode

    class Largest(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in torch.utils._pytree.tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self.largest = max(self.largest, t.numel())
            return out

    x, y = clouds(batch=2, n=1024, m=1024, dtype=torch.float32, seed=13)
    with Largest() as mode:
        chamfer_distance(x, y, chunk_size=32).backward()
    assert mode.largest <= 2 * 32 * 1024  # one (B, chunk, M) block, never (B, N, M)


# --- properties -----------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 12), m=st.integers(1, 12), dim=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_properties(n, m, dim, seed):
    x, y = (t.detach() for t in clouds(batch=2, n=n, m=m, dim=dim, seed=seed))
    value = chamfer_distance(x, y)
    assert value >= 0
    torch.testing.assert_close(value, chamfer_distance(y, x))                                  # symmetric
    assert chamfer_distance(x, x) == 0 and chamfer_distance(x, x, squared=False) == 0          # zero on equal sets
    shift = torch.randn(1, 1, dim, dtype=torch.float64)
    torch.testing.assert_close(chamfer_distance(x + shift, y + shift), value)                  # translation
    order = torch.randperm(m)
    torch.testing.assert_close(chamfer_distance(x, y[:, order]), value)                        # permutation
    torch.testing.assert_close(chamfer_distance(3 * x, 3 * y), 9 * value)                      # scaling
    torch.testing.assert_close(chamfer_distance(3 * x, 3 * y, squared=False), 3 * chamfer_distance(x, y, squared=False))
    both = chamfer_distance(x, y, reduction="none")
    one_way = chamfer_distance(x, y, single_directional=True, reduction="none")
    other_way = chamfer_distance(y, x, single_directional=True, reduction="none")
    torch.testing.assert_close(both, one_way + other_way)


# --- refusals -------------------------------------------------------------------------------------


def test_refusals_with_their_messages():
    x, y = clouds(batch=2, n=4, m=5)
    with pytest.raises(ValueError, match=r"shapes \(B, N, D\) and \(B, M, D\) with the same B and D, got \(2, 4, 3\) and \(3, 5, 3\)"):
        chamfer_distance(x, torch.randn(3, 5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="same B and D"):
        chamfer_distance(x, torch.randn(2, 5, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        chamfer_distance(x[0], y[0])
    with pytest.raises(TypeError, match="y must be a floating-point tensor"):
        chamfer_distance(x, y.long())
    with pytest.raises(TypeError, match="x_lengths must be an integer tensor of point counts, got dtype torch.float32"):
        chamfer_distance(x, y, x_lengths=torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="y_lengths must be a torch.Tensor of point counts, got list"):
        chamfer_distance(x, y, y_lengths=[1, 2])
    with pytest.raises(ValueError, match=r"x_lengths must have shape \(B,\) = \(2,\), got \(3,\)"):
        chamfer_distance(x, y, x_lengths=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"y_lengths holds 6, outside \[0, 5\]"):
        chamfer_distance(x, y, y_lengths=torch.tensor([6, 2]))
    with pytest.raises(ValueError, match=r"x_lengths holds -1, outside \[0, 4\]"):
        chamfer_distance(x, y, x_lengths=torch.tensor([-1, 2]))
    with validate_args(False):  # value checks can be switched off
        chamfer_distance(x, y, x_lengths=torch.tensor([1, 2]))


# --- the module with lengths --------------------------------------------------------------------------


def test_module_with_lengths_as_buffers(device):
    x, y = clouds(batch=3, n=7, m=6, seed=14, device=device)
    lengths = torch.tensor([7, 2, 4], device=device)
    module = lossbook.nn.ChamferDistance(x_lengths=lengths, squared=False).to(device)
    expected = chamfer_distance(x, y, x_lengths=lengths, squared=False)
    torch.testing.assert_close(module(x, y), expected)
    assert "x_lengths" in dict(module.named_buffers())
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    restored = lossbook.nn.ChamferDistance(x_lengths=torch.zeros(3, dtype=torch.long), squared=False).to(device)
    restored.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    torch.testing.assert_close(restored(x, y), expected)
    torch.testing.assert_close(pickle.loads(pickle.dumps(module.cpu()))(x.cpu(), y.cpu()), expected.cpu())
    module.x_lengths = None  # options are attributes read at call time
    torch.testing.assert_close(module.to(device)(x, y), chamfer_distance(x, y, squared=False))


# --- distance transform and chamfer matching -------------------------------------------------------


@pytest.mark.parametrize("shape,density", [((1, 1), 1.0), ((17, 9), 0.05), ((40, 63), 0.01), ((64, 64), 0.002)])
def test_distance_transform_equals_scipy(shape, density):
    g = torch.Generator().manual_seed(sum(shape))
    edges = torch.rand(3, *shape, generator=g) < density
    edges[:, 0, 0] = True
    expected = np.stack([ndimage.distance_transform_edt(~e) for e in edges.numpy()])
    np.testing.assert_allclose(distance_transform(edges.double()).numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(distance_transform(edges[0]).numpy(), expected[0], rtol=1e-6)
    np.testing.assert_array_equal(distance_transform(edges.int(), squared=True).numpy(), np.round(expected**2))
    assert distance_transform(edges[0]).dtype == torch.float32


def test_distance_transform_without_edges_is_inf_and_refusals():
    assert torch.isinf(distance_transform(torch.zeros(4, 5))).all()
    with pytest.raises(ValueError, match=r"edge_map must have shape \(H, W\) or \(B, H, W\), got \(5,\)"):
        distance_transform(torch.zeros(5))
    with pytest.raises(TypeError, match="edge_map must be a torch.Tensor, got ndarray"):
        distance_transform(np.zeros((3, 3)))


def brute_matching(points, dt):
    points = points - points.min(0)
    h, w = points.max(0) + 1
    out = np.zeros((dt.shape[0] - h + 1, dt.shape[1] - w + 1))
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[r, c] = dt[r + points[:, 0], c + points[:, 1]].mean()
    return out


@pytest.mark.parametrize("truncate", [None, 2.5])
def test_chamfer_matching_equals_the_brute_force(truncate):
    g = torch.Generator().manual_seed(15)
    edges = torch.rand(2, 30, 41, generator=g) < 0.03
    template = torch.tensor([[3, 5], [3, 6], [7, 2], [9, 9], [3, 5], [5, 11]])  # a repeated point counts twice
    scores = chamfer_matching(template, edges.double(), truncate=truncate)
    for b in range(2):
        dt = ndimage.distance_transform_edt(~edges[b].numpy())
        dt = dt if truncate is None else np.minimum(dt, truncate)
        np.testing.assert_allclose(scores[b].numpy(), brute_matching(template.numpy(), dt), rtol=0, atol=1e-12)
    torch.testing.assert_close(chamfer_matching(template.int(), edges[1], truncate=truncate), scores[1].float())


def test_chamfer_matching_finds_a_planted_template():
    g = torch.Generator().manual_seed(16)
    edges = torch.rand(50, 60, generator=g) < 0.02
    template = torch.tensor([[0, 0], [0, 4], [4, 0], [4, 4], [2, 2], [0, 2], [2, 0]])
    edges[template[:, 0] + 21, template[:, 1] + 33] = True
    scores = chamfer_matching(template, edges)
    assert divmod(scores.argmin().item(), scores.shape[1]) == (21, 33) and scores.min() == 0


def test_chamfer_matching_edge_cases_and_refusals():
    template = torch.tensor([[0, 0], [1, 1]])
    assert torch.isinf(chamfer_matching(template, torch.zeros(2, 5, 5))).all()
    assert chamfer_matching(template, torch.ones(5, 5)).abs().max() == 0
    with pytest.raises(TypeError, match="template_points must be an integer tensor of pixel coordinates"):
        chamfer_matching(template.float(), torch.ones(5, 5))
    with pytest.raises(ValueError, match=r"template_points must have shape \(K, 2\) with K >= 1, got \(0, 2\)"):
        chamfer_matching(template[:0], torch.ones(5, 5))
    with pytest.raises(ValueError, match=r"the template \(9 x 2\) does not fit in the edge map \(5, 5\)"):
        chamfer_matching(torch.tensor([[0, 0], [8, 1]]), torch.ones(5, 5))
    with pytest.raises(ValueError, match="truncate must be a positive number or None, got 0"):
        chamfer_matching(template, torch.ones(5, 5), truncate=0)
    assert "chamfer_matching" in lossbook.__all__ and not hasattr(lossbook.chamfer_matching, "nn_module_name")
