"""Benchmark cases of book/generative/wasserstein.md (read by benchmarks/losses.py).

The peers are POT's torch backend (the same distances, autograd through the same
iterations) and the hand-written WGAN losses and penalty of Gulrajani et al.'s code."""

import ot
import torch
from registry import _finish, _generator, residuals

import lossbook


def value_sets(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, size=256):
    """``n`` one-dimensional problems of ``size`` values each, ``(n, size)`` twice."""
    g = _generator(seed)
    u, v = torch.randn(n, size, generator=g), 0.5 * torch.randn(n, size, generator=g) + 0.7
    return _finish((u, v), dtype, device, (0, 1), (n,))


def point_sets(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, size=128, dim=2):
    """``n`` transport problems of ``size`` points in ``dim`` dimensions, ``(n, size, dim)`` twice."""
    g = _generator(seed)
    x, y = torch.randn(n, size, dim, generator=g), torch.randn(n, size, dim, generator=g) + 0.5
    return _finish((x, y), dtype, device, (0, 1), (n,))


def pot_wasserstein_1d(u, v):
    """POT's torch backend: problems along the columns; it returns W_1 (p = 1)."""
    return ot.wasserstein_1d(u.T, v.T, p=1).mean()


SINKHORN = {"eps": 0.5, "max_iter": 50, "tol": 0.0}  # fixed iterations on both sides


def pot_sinkhorn(x, y):
    """POT's log-domain Sinkhorn, one call per problem, stopThr=0: exactly 50 iterations."""
    n, m = x.shape[1], y.shape[1]
    a = torch.full((n,), 1 / n, dtype=x.dtype, device=x.device)
    b = torch.full((m,), 1 / m, dtype=x.dtype, device=x.device)
    values = [ot.sinkhorn2(a, b, ot.dist(xi, yi), SINKHORN["eps"], method="sinkhorn_log",
                           numItermax=SINKHORN["max_iter"], stopThr=0.0) for xi, yi in zip(x, y)]
    return torch.stack(values).mean()


_CRITICS = {}


def _critic(device):
    """A small 2-D critic (two hidden layers of 64), one per device."""
    if device not in _CRITICS:
        torch.manual_seed(0)
        _CRITICS[device] = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                                               torch.nn.ReLU(), torch.nn.Linear(64, 1)).to(device)
    return _CRITICS[device]


def ours_penalty(real, fake):
    real, fake = real.float(), fake.float()
    coefficients = torch.Generator(device=real.device).manual_seed(0)
    return lossbook.gradient_penalty(_critic(real.device), real, fake, generator=coefficients)


def hand_written_penalty(real, fake):
    """Gulrajani et al.'s penalty as usually written: autograd.grad with create_graph."""
    real, fake = real.float(), fake.float()
    t = torch.rand(real.shape[0], 1, generator=torch.Generator(device=real.device).manual_seed(0), device=real.device)
    with torch.enable_grad():  # the benchmark compares values under no_grad
        mixed = t * real + (1 - t) * fake
        mixed = mixed if mixed.requires_grad else mixed.requires_grad_()
        (gradient,) = torch.autograd.grad(_critic(real.device)(mixed).sum(), mixed, create_graph=True)
        return ((gradient.norm(2, dim=1) - 1) ** 2).mean()


def _scores(n, **kwargs):
    return residuals(n, columns=1, **kwargs)


def _points_2d(n, **kwargs):
    return residuals(n, columns=2, **kwargs)


CASES = [
    dict(part="generative", name="wasserstein_1d", inputs=(value_sets, 1024, {"size": 1024}, {"size": 10}),
         ours=lossbook.wasserstein_1d, peer=pot_wasserstein_1d, peer_name="POT wasserstein_1d (torch)", floor=False),
    dict(part="generative", name="sinkhorn_distance", inputs=(point_sets, 16, {"size": 256}, {"size": 10}),
         ours=lambda x, y: lossbook.sinkhorn_distance(x, y, **SINKHORN), peer=pot_sinkhorn,
         peer_name="POT sinkhorn2 log (torch), per problem", floor=False),
    dict(part="generative", name="wgan_critic_loss", inputs=(_scores, 1 << 22, {}, {}),
         ours=lossbook.wgan_critic_loss, peer=lambda real, fake: fake.mean() - real.mean(),
         peer_name="fake.mean() - real.mean()", floor=False),
    dict(part="generative", name="wgan_generator_loss", inputs=(_scores, 1 << 22, {}, {}),
         ours=lambda fake, _: lossbook.wgan_generator_loss(fake), peer=lambda fake, _: -fake.mean(),
         peer_name="-fake.mean()", floor=False),
    dict(part="generative", name="gradient_penalty", inputs=(_points_2d, 1 << 16, {}, {}),
         ours=ours_penalty, peer=hand_written_penalty, peer_name="autograd.grad(create_graph=True)", floor=False),
]
