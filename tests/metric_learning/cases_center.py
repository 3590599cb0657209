"""Battery cases of book/metric_learning/center.md: the functional center_loss.

The module ``lossbook.nn.CenterLoss`` holds its centres (stateful): its own tests are in
``test_center.py``.
"""

import torch
from registry import NEGATIVE, Case, Inputs, _finish, _generator, embeddings_labels

import lossbook


def features_labels_centers(
    n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, dim=4, classes=3, label_dtype=torch.int64
) -> Inputs:
    """Features ``(n, dim)``, labels ``(n,)`` in ``[0, classes)`` and centres ``(classes, dim)``;
    features and centres differentiable; one loss per sample; ``extreme``: coordinates of
    about +-100 (squared distances overflow float16)."""
    features, labels = embeddings_labels(n, dtype=torch.float64, seed=seed, extreme=extreme, dim=dim, classes=classes).tensors
    g = _generator(seed + 1000)
    centers = (100.0 if extreme else 1.0) * torch.randn(classes, dim, generator=g)
    return _finish((features, labels.to(label_dtype), centers), dtype, device, (0, 2), (n,))


def _int8_labels(n, **kwargs):
    return features_labels_centers(n, label_dtype=torch.int8, classes=5, **kwargs)


_int8_labels.__name__ = "features_labels_centers"

CASES = [
    Case(lossbook.center_loss, features_labels_centers, bad_options=NEGATIVE),
    Case(lossbook.center_loss, _int8_labels, {"reduction": "sum"}, "int8 labels,sum"),
]
