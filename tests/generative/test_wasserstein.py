"""Tests of book/generative/wasserstein.md: wasserstein_1d, sinkhorn_distance (and
sinkhorn_from_cost), the WGAN losses and gradient_penalty.

gradient_penalty takes a network, which the battery of tests/test_battery.py cannot drive;
its battery properties (refusals, reductions and the empty mean, gradients, half precision,
the module, torch.compile) are tested here.
"""

import copy
import io
import math
import pickle

import numpy as np
import ot
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lossbook
import lossbook.nn
from lossbook import gradient_penalty, sinkhorn_distance, wasserstein_1d, wgan_critic_loss, wgan_generator_loss
from lossbook.conventions.anatomy import validate_args
from lossbook.generative.wasserstein import SinkhornResult, sinkhorn_from_cost

F64 = torch.float64


def _rng(seed):
    return np.random.default_rng(seed)


# --- wasserstein_1d ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("weighted", [False, True])
def test_wasserstein_1d_equals_scipy_and_pot(seed, weighted):
    rng = _rng(seed)
    n, m = rng.integers(1, 15, size=2)
    u, v = rng.normal(size=n), 3 * rng.normal(size=m) - 1
    if seed % 3 == 0:
        u, v = u.round(), v.round()  # ties within and across the sets
    uw, vw = (rng.random(n) + 0.01, rng.random(m) + 0.01) if weighted else (None, None)
    t = lambda a: None if a is None else torch.tensor(a)  # noqa: E731
    ours = wasserstein_1d(t(u), t(v), u_weights=t(uw), v_weights=t(vw))
    assert ours.item() == pytest.approx(scipy.stats.wasserstein_distance(u, v, uw, vw), abs=1e-12)
    for p in [1, 1.5, 2, 3]:
        pot = ot.wasserstein_1d(u, v, None if uw is None else uw / uw.sum(), None if vw is None else vw / vw.sum(), p=p)
        ours = wasserstein_1d(t(u), t(v), u_weights=t(uw), v_weights=t(vw), p=p)
        assert ours.item() ** p == pytest.approx(pot, abs=1e-11)  # POT returns W_p^p


def test_wasserstein_1d_is_batched_over_leading_dimensions():
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(2, 3, 6, dtype=F64, generator=g), torch.randn(2, 3, 4, dtype=F64, generator=g)
    w = torch.rand(2, 3, 4, dtype=F64, generator=g)
    batched = wasserstein_1d(u, v, v_weights=w, p=2, reduction="none")
    assert batched.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert torch.allclose(batched[i, j], wasserstein_1d(u[i, j], v[i, j], v_weights=w[i, j], p=2))
    assert torch.allclose(wasserstein_1d(u, v, v_weights=w, p=2), batched.mean())
    assert torch.allclose(wasserstein_1d(u, v, v_weights=w, p=2, reduction="sum"), batched.sum())


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_wasserstein_1d_gradient_is_equation_5(p):
    g = torch.Generator().manual_seed(1)
    u, v = torch.randn(30, dtype=F64, generator=g).requires_grad_(), torch.randn(30, dtype=F64, generator=g)
    distance = wasserstein_1d(u, v, p=p)
    (grad,) = torch.autograd.grad(distance, u)
    d = u.detach() - v.sort().values[u.detach().argsort().argsort()]
    expected = d.abs() ** (p - 1) * d.sign() / (30 * distance.detach() ** (p - 1))
    assert torch.allclose(grad, expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_wasserstein_1d_gradcheck_with_weights(p):
    g = torch.Generator().manual_seed(2)
    tensors = [torch.randn(2, 4, dtype=F64, generator=g), torch.randn(2, 3, dtype=F64, generator=g),
               torch.rand(2, 4, dtype=F64, generator=g) + 0.1, torch.rand(2, 3, dtype=F64, generator=g) + 0.1]
    tensors = [t.requires_grad_() for t in tensors]
    fn = lambda a, b, c, d: wasserstein_1d(a, b, u_weights=c, v_weights=d, p=p, reduction="none")  # noqa: E731
    assert torch.autograd.gradcheck(fn, tensors)
    assert torch.autograd.gradgradcheck(fn, tensors)


def test_wasserstein_1d_weights_under_vmap_and_compile():
    g = torch.Generator().manual_seed(3)
    u, v, w = torch.randn(4, 5, generator=g), torch.randn(4, 6, generator=g), torch.rand(4, 5, generator=g)
    eager = wasserstein_1d(u, v, u_weights=w, reduction="none")
    assert torch.allclose(torch.func.vmap(lambda a, b, c: wasserstein_1d(a, b, u_weights=c))(u, v, w), eager)
    compiled = torch.compile(lambda a, b, c: wasserstein_1d(a, b, u_weights=c, reduction="none"), fullgraph=True,
                             backend="aot_eager")
    assert torch.allclose(compiled(u, v, w), eager)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-100, 100), min_size=1, max_size=12), st.lists(st.floats(-100, 100), min_size=1, max_size=12),
       st.floats(-50, 50), st.sampled_from([1.0, 2.0, 3.0]))
def test_wasserstein_1d_properties(a, b, shift, p):
    u, v = torch.tensor(a, dtype=F64), torch.tensor(b, dtype=F64)
    forward, backward = wasserstein_1d(u, v, p=p), wasserstein_1d(v, u, p=p)
    assert forward >= 0 and torch.allclose(forward, backward, atol=1e-9)
    assert wasserstein_1d(u, u, p=p).item() == 0
    assert wasserstein_1d(u, u + shift, p=p).item() == pytest.approx(abs(shift), abs=1e-9)
    # scaling every weight changes nothing (weights are normalized)
    w = torch.linspace(1, 2, len(a), dtype=F64)
    assert torch.allclose(wasserstein_1d(u, v, u_weights=w, p=p), wasserstein_1d(u, v, u_weights=7 * w, p=p))


def test_wasserstein_1d_refusals():
    u, v = torch.randn(3, 4), torch.randn(3, 5)
    with pytest.raises(ValueError, match="u is an empty set"):
        wasserstein_1d(torch.empty(3, 0), v)
    with pytest.raises(ValueError, match="v is an empty set"):
        wasserstein_1d(torch.randn(4), torch.empty(0))
    with pytest.raises(ValueError, match="same leading"):
        wasserstein_1d(u, torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"u must have shape \(\*, n\)"):
        wasserstein_1d(torch.tensor(1.0), torch.randn(3))
    with pytest.raises(ValueError, match="u_weights must be non-negative, got -1.0"):
        wasserstein_1d(u, v, u_weights=torch.tensor([1.0, -1.0, 1.0, 1.0]).expand(3, 4))
    with pytest.raises(ValueError, match="v_weights must have a positive sum in every problem"):
        wasserstein_1d(u, v, v_weights=torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"u_weights must have shape \(3, 4\)"):
        wasserstein_1d(u, v, u_weights=torch.ones(4))
    with pytest.raises(TypeError, match="v_weights must be a floating-point tensor"):
        wasserstein_1d(u, v, v_weights=torch.ones(3, 5, dtype=torch.long))
    with validate_args(False):  # value checks off: negative weights are not looked at
        wasserstein_1d(u, v, u_weights=torch.tensor([1.0, -0.5, 1.0, 1.0]).expand(3, 4))


def test_pot_does_not_normalize_weights_and_returns_the_power():
    u, v = np.array([0.0, 1.0]), np.array([0.0, 3.0])
    assert ot.wasserstein_1d(u, v, np.array([2.0, 2.0]), np.array([1.0, 1.0])) == pytest.approx(7.0)
    ours = wasserstein_1d(torch.tensor(u), torch.tensor(v), u_weights=torch.tensor([2.0, 2.0]),
                          v_weights=torch.tensor([1.0, 1.0]))
    assert ours.item() == pytest.approx(1.0)
    assert wasserstein_1d(torch.tensor(u), torch.tensor(v), p=2).item() == pytest.approx(math.sqrt(2))


# --- Sinkhorn ----------------------------------------------------------------------------------


def _problems(seed=0, batch=3, n=6, m=5, d=2):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(batch, n, d, dtype=F64, generator=g), torch.randn(batch, m, d, dtype=F64, generator=g) + 0.5
    a, b = torch.rand(batch, n, dtype=F64, generator=g) + 0.05, torch.rand(batch, m, dtype=F64, generator=g) + 0.05
    return x, y, a, b


def _pot_cost(x, y, p):
    if p == 2:
        return ot.dist(x, y)
    return ot.dist(x, y, metric="euclidean") ** p


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("eps", [0.05, 1.0])
def test_sinkhorn_equals_pot_sinkhorn2_log(p, eps):
    x, y, a, b = _problems(seed=int(10 * p))
    ours = sinkhorn_distance(x, y, a=a, b=b, eps=eps, p=p, tol=1e-12, max_iter=20_000, reduction="none")
    for i in range(3):
        pot = ot.sinkhorn2((a[i] / a[i].sum()).numpy(), (b[i] / b[i].sum()).numpy(), _pot_cost(x[i].numpy(), y[i].numpy(), p),
                           eps, method="sinkhorn_log", stopThr=1e-12, numItermax=20_000)
        assert ours[i].item() == pytest.approx(pot, abs=1e-9)


def test_sinkhorn_pot_docs_example_and_uniform_default():
    half = torch.tensor([0.5, 0.5], dtype=F64)
    swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=F64)
    assert sinkhorn_from_cost(half, half, swap, eps=1.0).cost.item() == pytest.approx(0.26894142136999516, abs=1e-15)
    points = torch.tensor([[0.0], [1.0]], dtype=F64)
    assert sinkhorn_distance(points, points, eps=1.0, p=1).item() == pytest.approx(0.26894142136999516, abs=1e-15)
    assert sinkhorn_distance(points, points, a=3 * half, b=half, eps=1.0, p=1).item() == pytest.approx(0.26894142136999516)


def test_sinkhorn_log_domain_survives_large_costs():
    cost = 1e4 + torch.tensor([[0.0, 3.0], [1.0, 0.0]])
    assert torch.exp(-cost / 0.01).max() == 0  # the plain kernel underflows
    result = sinkhorn_from_cost(torch.ones(2), torch.ones(2), cost, eps=0.01)
    assert torch.isfinite(result.cost) and result.cost.item() == pytest.approx(1e4)
    far = torch.tensor([[0.0, 0.0], [100.0, 0.0]])
    assert torch.isfinite(sinkhorn_distance(far, far + 50.0, eps=0.01))


def test_sinkhorn_tends_to_emd_as_eps_shrinks():
    x, y, _, _ = _problems(seed=4, batch=1)
    exact = ot.emd2([], [], ot.dist(x[0].numpy(), y[0].numpy()))
    errors = [abs(sinkhorn_distance(x[0], y[0], eps=eps, tol=1e-10, max_iter=50_000).item() - exact)
              for eps in [1.0, 0.1, 0.01]]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-2


def test_sinkhorn_gradient_equals_pot_torch_backend():
    x, y, _, _ = _problems(seed=5, batch=1)
    points = x[0].clone().requires_grad_()
    pot = ot.sinkhorn2(torch.full((6,), 1 / 6, dtype=F64), torch.full((5,), 0.2, dtype=F64), ot.dist(points, y[0]), 0.2,
                       method="sinkhorn_log", stopThr=1e-12, numItermax=20_000)
    (expected,) = torch.autograd.grad(pot, points)
    (ours,) = torch.autograd.grad(sinkhorn_distance(points, y[0], eps=0.2, tol=1e-12, max_iter=20_000), points)
    assert torch.allclose(ours, expected, atol=1e-9)


def test_envelope_theorem_on_the_regularized_value():
    from lossbook.generative.wasserstein import _regularized

    g = torch.Generator().manual_seed(6)
    cost = torch.rand(2, 5, 4, dtype=F64, generator=g).requires_grad_()
    solved = sinkhorn_from_cost(torch.ones(2, 5, dtype=F64), torch.ones(2, 4, dtype=F64), cost, eps=0.2, tol=1e-13,
                                max_iter=10_000)
    (grad,) = torch.autograd.grad(_regularized(solved).sum(), cost)
    assert torch.allclose(grad, solved.plan, atol=1e-9)


def test_sinkhorn_result_fields_and_tolerance():
    x, y, a, b = _problems(seed=7, batch=4)
    cost = torch.cdist(x, y) ** 2
    result = sinkhorn_from_cost(a, b, cost, eps=0.05, tol=1e-8, max_iter=10_000)
    assert isinstance(result, SinkhornResult)
    assert result.plan.shape == (4, 6, 5) and result.f.shape == (4, 6) and result.iterations.dtype == torch.long
    assert (result.error < 1e-8).all()
    assert torch.allclose(result.plan.sum(-1), a / a.sum(-1, keepdim=True), atol=1e-12)  # rows exact
    # each problem stopped on its own: frozen problems equal their own single solve
    for i in range(4):
        alone = sinkhorn_from_cost(a[i], b[i], cost[i], eps=0.05, tol=1e-8, max_iter=10_000)
        assert alone.iterations == result.iterations[i]
        assert torch.allclose(alone.cost, result.cost[i], rtol=1e-12)
    # POT's dual objective <a, f> + <b, g> at convergence equals the regularized value
    capped = sinkhorn_from_cost(a, b, cost, eps=0.05, max_iter=3, tol=0.0)
    assert (capped.iterations == 3).all() and (capped.error > 1e-8).any()


def test_zero_weights_remove_points():
    x, y, a, b = _problems(seed=8, batch=1)
    padded_x = torch.cat([x[0], 100 * torch.ones(2, 2, dtype=F64)])
    padded_a = torch.cat([a[0], torch.zeros(2, dtype=F64)])
    padded_x.requires_grad_()
    padded = sinkhorn_distance(padded_x, y[0], a=padded_a, b=b[0], eps=0.1, tol=1e-12, max_iter=10_000)
    plain = sinkhorn_distance(x[0], y[0], a=a[0], b=b[0], eps=0.1, tol=1e-12, max_iter=10_000)
    assert padded.item() == pytest.approx(plain.item(), abs=1e-12)
    padded.backward()
    assert torch.isfinite(padded_x.grad).all() and (padded_x.grad[-2:] == 0).all()


def test_debiased_divergence_is_zero_at_equality_and_non_negative():
    x, y, a, b = _problems(seed=9)
    assert torch.allclose(sinkhorn_distance(x, x, a=a, b=a, eps=0.3, debiased=True, reduction="none"),
                          torch.zeros(3, dtype=F64), atol=1e-12)
    for eps in [0.05, 0.5, 5.0]:
        values = sinkhorn_distance(x, y, a=a, b=b, eps=eps, debiased=True, tol=1e-10, max_iter=10_000, reduction="none")
        assert (values >= -1e-10).all()
    # the biased cost of a set against itself is positive: its bias
    assert (sinkhorn_distance(x, x, eps=0.3, reduction="none") > 0).all()


def test_sinkhorn_compiles_with_a_tolerance_and_equals_eager():
    x, y, _, _ = _problems(seed=11, batch=2)
    x, y = x.float(), y.float()
    eager = sinkhorn_distance(x, y, eps=0.5, max_iter=25, tol=1e-4, reduction="none")
    compiled = torch.compile(lambda s, t: sinkhorn_distance(s, t, eps=0.5, max_iter=25, tol=1e-4, reduction="none"),
                             fullgraph=True, backend="aot_eager")
    assert torch.allclose(compiled(x, y), eager, rtol=1e-5)


def test_sinkhorn_refusals():
    x, y = torch.randn(2, 4, 3), torch.randn(2, 5, 3)
    with pytest.raises(ValueError, match="x is an empty set"):
        sinkhorn_distance(torch.empty(2, 0, 3), y, eps=0.1)
    with pytest.raises(ValueError, match="y is an empty set"):
        sinkhorn_distance(x[0], torch.empty(0, 3), eps=0.1)
    with pytest.raises(ValueError, match="same \\* and d"):
        sinkhorn_distance(x, torch.randn(2, 5, 2), eps=0.1)
    with pytest.raises(ValueError, match=r"x must have shape \(\*, n, d\)"):
        sinkhorn_distance(torch.randn(4), torch.randn(4), eps=0.1)
    with pytest.raises(ValueError, match=r"a must have shape \(2, 4\)"):
        sinkhorn_distance(x, y, a=torch.ones(4), eps=0.1)
    with pytest.raises(ValueError, match="b must have a positive sum in every problem"):
        sinkhorn_distance(x, y, b=torch.zeros(2, 5), eps=0.1)
    with pytest.raises(ValueError, match="a must be non-negative"):
        sinkhorn_distance(x, y, a=-torch.ones(2, 4), eps=0.1)
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'eps'"):
        sinkhorn_distance(x, y)
    with pytest.raises(ValueError, match=r"a, b and cost must have shapes"):
        sinkhorn_from_cost(torch.ones(3), torch.ones(2), torch.ones(2, 2), eps=1.0)
    with pytest.raises(ValueError, match="an empty set"):
        sinkhorn_from_cost(torch.ones(0), torch.ones(2), torch.ones(0, 2), eps=1.0)
    with pytest.raises(ValueError, match="eps must be a positive number"):
        lossbook.nn.SinkhornLoss(eps=-1.0)


# --- WGAN losses --------------------------------------------------------------------------------


def test_wgan_losses_closed_forms():
    g = torch.Generator().manual_seed(12)
    real, fake = torch.randn(7, 1, dtype=F64, generator=g), torch.randn(7, 1, dtype=F64, generator=g)
    assert torch.allclose(wgan_critic_loss(real, fake), fake.mean() - real.mean())
    assert torch.allclose(wgan_critic_loss(real, fake, reduction="none"), fake - real)
    assert torch.allclose(wgan_generator_loss(fake), -fake.mean())
    # unequal numbers of real and fake samples: the documented combination
    more_real = torch.randn(11, dtype=F64, generator=g)
    combined = wgan_generator_loss(more_real) - wgan_generator_loss(fake[:, 0])
    assert torch.allclose(combined, fake.mean() - more_real.mean())
    with pytest.raises(ValueError, match="real_scores and fake_scores must have the same shape"):
        wgan_critic_loss(more_real, fake[:, 0])


# --- gradient_penalty -----------------------------------------------------------------------------


def _critic(kind="mlp"):
    torch.manual_seed(0)
    if kind == "conv":
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                                   torch.nn.Linear(4 * 4 * 4, 1)).double()
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()


def _samples(kind="mlp", n=5, seed=13):
    g = torch.Generator().manual_seed(seed)
    shape = (n, 3, 6, 6) if kind == "conv" else (n, 3)
    return torch.randn(shape, dtype=F64, generator=g), torch.randn(shape, dtype=F64, generator=g)


def _penalty_by_hand(critic, real, fake, t):
    mixed = (t * real + (1 - t) * fake).requires_grad_()
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1) ** 2


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_gradient_penalty_equals_autograd_with_create_graph(kind):
    critic = _critic(kind)
    real, fake = _samples(kind)
    t = torch.rand((5,) + (1,) * (real.dim() - 1), dtype=F64, generator=torch.Generator().manual_seed(1))
    expected = _penalty_by_hand(critic, real, fake, t)
    ours = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(1), reduction="none")
    assert ours.shape == (5,) and torch.allclose(ours, expected, rtol=1e-12)
    parameters = list(critic.parameters())
    expected_grads = torch.autograd.grad(expected.mean(), parameters, allow_unused=True, materialize_grads=True)
    ours_mean = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(1))
    our_grads = torch.autograd.grad(ours_mean, parameters, allow_unused=True, materialize_grads=True)
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(our_grads, expected_grads))
    assert any(g.abs().sum() > 0 for g in our_grads)  # the critic's parameters get a gradient


def test_gradient_penalty_norm_is_over_all_non_batch_dimensions():
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1, bias=False)).double()
    with torch.no_grad():
        critic[1].weight.fill_(0.5)  # gradient 0.5 everywhere: norm sqrt(12) / 2 per sample
    real, fake = torch.randn(4, 3, 2, 2, dtype=F64), torch.randn(4, 3, 2, 2, dtype=F64)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx((math.sqrt(12) / 2 - 1) ** 2)
    wrong = ((torch.full((4, 3, 2, 2), 0.5).norm(dim=1) - 1) ** 2).mean()  # the norm(dim=1) bug
    assert wrong.item() == pytest.approx((math.sqrt(3) / 2 - 1) ** 2)


def test_gradient_penalty_interpolates_one_coefficient_per_sample():
    seen = []

    def critic(x):
        seen.append(x.detach())
        return x.sum(dim=(1, 2))

    real, fake = torch.ones(6, 2, 3), torch.zeros(6, 2, 3)
    gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(0))
    mixed = seen[0]
    assert (mixed == mixed[:, :1, :1]).all()  # constant within a sample: its t
    assert len(set(mixed[:, 0, 0].tolist())) == 6  # different between samples
    assert ((mixed >= 0) & (mixed <= 1)).all()


def test_gradient_penalty_reductions_empty_batch_and_half_precision():
    critic = _critic()
    real, fake = _samples()
    none = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(2), reduction="none")
    total = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(2), reduction="sum")
    assert torch.allclose(total, none.sum())
    empty = torch.empty(0, 3, dtype=F64, requires_grad=True)
    zero = gradient_penalty(critic, empty, empty.detach())
    assert zero.item() == 0 and zero.requires_grad
    zero.backward()
    assert empty.grad is not None and empty.grad.shape == (0, 3)
    half_critic = copy.deepcopy(critic).to(torch.bfloat16)
    value = gradient_penalty(half_critic, real.to(torch.bfloat16), fake.to(torch.bfloat16))
    assert value.dtype == torch.float32 and torch.isfinite(value)
    value.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in half_critic.parameters())


def test_gradient_penalty_gradcheck_in_the_inputs():
    critic = _critic()
    real, fake = (t.requires_grad_() for t in _samples(n=3))
    fn = lambda a, b: gradient_penalty(critic, a, b, generator=torch.Generator().manual_seed(3))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (real, fake))


def test_gradient_penalty_compiles():
    critic = _critic().float()
    real, fake = (t.float() for t in _samples())
    torch._dynamo.reset()
    compiled = torch.compile(lambda a, b: gradient_penalty(critic, a, b, reduction="none"), fullgraph=True,
                             backend="aot_eager")
    value = compiled(real, fake)
    assert value.shape == (5,) and torch.isfinite(value).all()
    value.mean().backward()
    assert critic[0].weight.grad is not None


def test_gradient_penalty_refusals():
    critic = _critic()
    real, fake = _samples()
    with pytest.raises(ValueError, match="real and fake must have the same shape"):
        gradient_penalty(critic, real, fake[:4])
    with pytest.raises(TypeError, match="real must be a floating-point tensor"):
        gradient_penalty(critic, real.long(), fake)
    with pytest.raises(TypeError, match="fake must be a torch.Tensor, got list"):
        gradient_penalty(critic, real, fake.tolist())
    with pytest.raises(TypeError, match="critic must be a callable"):
        gradient_penalty("critic", real, fake)
    with pytest.raises(ValueError, match="reduction must be one of"):
        gradient_penalty(critic, real, fake, reduction="avg")
    with pytest.raises(ValueError, match="reduction must be one of"):
        lossbook.nn.GradientPenalty(reduction="avg")


def test_gradient_penalty_module():
    module = lossbook.nn.GradientPenalty()
    assert repr(module) == "GradientPenalty(reduction='mean')"
    critic = _critic()
    real, fake = _samples()
    expected = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(module(critic, real, fake, generator=torch.Generator().manual_seed(4)), expected)
    module.reduction = "none"
    assert module(critic, real, fake).shape == (5,)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    restored = lossbook.nn.GradientPenalty(reduction="none")
    restored.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module)), restored):
        assert repr(clone) == repr(module)
        assert torch.allclose(clone(critic, real, fake, generator=torch.Generator().manual_seed(4)),
                              module(critic, real, fake, generator=torch.Generator().manual_seed(4)))
    assert list(module.parameters()) == []  # the critic is an argument, not a submodule
