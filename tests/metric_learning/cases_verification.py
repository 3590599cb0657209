"""Battery cases of book/metric_learning/verification.md: the functional verification_loss.

The module ``lossbook.nn.VerificationLoss`` holds its classifier (stateful): its own
tests are in ``test_verification.py``.
"""

import torch
from registry import NEGATIVE, Case, Inputs, _finish, _generator, embedding_pairs

import lossbook


def pairs_and_classifier(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, dim=4, linear_shapes=False) -> Inputs:
    """Two embeddings ``(n, dim)``, a 0/1 target ``(n,)`` (1 = same identity), the classifier's
    weight ``(dim,)`` and bias ``()`` (``nn.Linear``'s ``(1, dim)`` and ``(1,)`` with
    ``linear_shapes``); embeddings, weight and bias differentiable; one loss per pair;
    ``extreme``: embeddings of about +-100, whose squared differences overflow float16."""
    first, second, target = embedding_pairs(n, dtype=torch.float64, seed=seed, extreme=extreme, dim=dim).tensors
    g = _generator(seed + 2000)
    weight = torch.randn(dim, generator=g) / dim
    bias = torch.randn((), generator=g)
    if linear_shapes:
        weight, bias = weight[None, :], bias[None]
    return _finish((first, second, target, weight, bias), dtype, device, (0, 1, 3, 4), (n,))


def _linear_shapes(n, **kwargs):
    return pairs_and_classifier(n, linear_shapes=True, dim=3, **kwargs)


_linear_shapes.__name__ = "pairs_and_classifier"

CASES = [
    Case(lossbook.verification_loss, pairs_and_classifier, bad_options=NEGATIVE),
    Case(lossbook.verification_loss, _linear_shapes, {"reduction": "sum"}, "nn.Linear shapes,sum"),
]
