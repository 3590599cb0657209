"""Battery cases of book/metric_learning/margin_softmax.md: CosFace and ArcFace (stateful: the
modules are tested in test_margin_softmax.py)."""

import torch
from registry import NEGATIVE, Case, Inputs, _finish, _generator

import lossbook


def embeddings_weight_labels(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, dim=4, classes=5) -> Inputs:
    """Embeddings ``(n, dim)``, class weights ``(classes, dim)``, labels ``(n,)``; one loss per
    sample; ``extreme``: coordinates of about +-100 (normalized inside)."""
    g = _generator(seed)
    scale = 100.0 if extreme else 1.0
    weight = torch.randn(classes, dim, generator=g)
    labels = torch.randint(0, classes, (n,), generator=g)
    embeddings = scale * (weight[labels] + torch.randn(n, dim, generator=g))
    return _finish((embeddings, scale * weight, labels), dtype, device, (0, 1), (n,))


SCALE = [({"scale": 0.0}, ValueError, "scale must be a positive number, got 0.0"),
         ({"scale": "64"}, TypeError, "scale must be a number, got str"),
         ({"margin": -0.1}, ValueError, "margin must be a non-negative number, got -0.1")]

CASES = [
    Case(lossbook.cosface_loss, embeddings_weight_labels, bad_options=NEGATIVE + SCALE),
    Case(lossbook.cosface_loss, embeddings_weight_labels, {"scale": 16.0, "margin": 0.0}, "normface,scale=16"),
    Case(lossbook.arcface_loss, embeddings_weight_labels,
         bad_options=NEGATIVE + SCALE + [
             ({"margin": 28.6}, ValueError, "margin is an angle in radians and must be below pi, got 28.6"),
             ({"easy_margin": 1}, TypeError, "easy_margin must be a bool, got int")]),
    Case(lossbook.arcface_loss, embeddings_weight_labels, {"margin": 2.0, "scale": 8.0}, "margin=2,fallback"),
    Case(lossbook.arcface_loss, embeddings_weight_labels, {"easy_margin": True, "scale": 30.0}, "easy_margin"),
]
