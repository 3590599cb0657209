"""Battery cases of book/generative/wasserstein.md: wasserstein_1d, sinkhorn_distance and the WGAN
losses. ``gradient_penalty`` takes a network as its first argument, which the battery cannot
drive: its battery properties are tested in ``test_wasserstein.py``."""

import torch
from registry import NEGATIVE, Case, Inputs, _finish, _generator, residuals

import lossbook


def value_sets(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, sizes=(5, 7)) -> Inputs:
    """``n`` one-dimensional problems: values ``(n, 5)`` and ``(n, 7)``, both differentiable;
    one distance per problem; ``extreme``: values of about +-1e4."""
    g = _generator(seed)
    scale = 1e4 if extreme else 1.0
    u = scale * torch.randn(n, sizes[0], generator=g)
    v = scale * (0.5 * torch.randn(n, sizes[1], generator=g) + 0.7)
    return _finish((u, v), dtype, device, (0, 1), (n,))


def point_sets(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, sizes=(5, 4), dim=2) -> Inputs:
    """``n`` transport problems: points ``(n, 5, dim)`` and ``(n, 4, dim)``, both differentiable;
    one cost per problem; ``extreme``: coordinates of about +-100 (squared costs of 1e4)."""
    g = _generator(seed)
    scale = 100.0 if extreme else 1.0
    x = scale * torch.randn(n, sizes[0], dim, generator=g)
    y = scale * (torch.randn(n, sizes[1], dim, generator=g) + 0.5)
    return _finish((x, y), dtype, device, (0, 1), (n,))


def scores(n, **kwargs) -> Inputs:
    """A critic's scores on ``n`` real and ``n`` fake samples, ``(n, 1)`` each."""
    return residuals(n, columns=1, **kwargs)


scores.__name__ = "scores"


def fake_scores(n, **kwargs) -> Inputs:
    """The critic's scores on ``n`` fakes alone, ``(n, 1)``."""
    inputs = residuals(n, columns=1, **kwargs)
    return Inputs(inputs.tensors[1:], (0,), inputs.none_shape)


P = [({"p": 0.5}, ValueError, "p must be a finite number >= 1"),
     ({"p": "2"}, TypeError, "p must be a number, got str")]
# Sinkhorn's battery runs a fixed number of iterations (tol=0): the loop is unrolled by
# torch.compile, and a mask that flips between two nearby inputs would make gradcheck fail.
SINKHORN = {"eps": 0.5, "max_iter": 10, "tol": 0.0}

CASES = [
    Case(lossbook.wasserstein_1d, value_sets, bad_options=NEGATIVE + P),
    Case(lossbook.wasserstein_1d, value_sets, {"p": 2.0}, "p=2"),
    Case(lossbook.wasserstein_1d, value_sets, {"p": 3.0, "reduction": "sum"}, "p=3,sum"),
    Case(lossbook.sinkhorn_distance, point_sets, SINKHORN,
         bad_options=NEGATIVE + P + [({"eps": 0.0}, ValueError, "eps must be a positive number, got 0.0"),
                                     ({"max_iter": 0}, ValueError, "max_iter must be a positive int, got 0"),
                                     ({"tol": -1.0}, ValueError, "tol must be a non-negative number, got -1.0"),
                                     ({"debiased": 1}, TypeError, "debiased must be True or False, got 1")]),
    Case(lossbook.sinkhorn_distance, point_sets, {**SINKHORN, "p": 1.0, "eps": 0.1}, "p=1,eps=0.1"),
    Case(lossbook.sinkhorn_distance, point_sets, {**SINKHORN, "debiased": True, "max_iter": 5}, "debiased"),
    Case(lossbook.wgan_critic_loss, scores, bad_options=NEGATIVE),
    Case(lossbook.wgan_generator_loss, fake_scores, bad_options=NEGATIVE),
]
