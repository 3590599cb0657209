"""Battery cases of book/metric_learning/quadruplet.md (read by tests/registry.py)."""

import torch
from registry import Case, embedding_tuples

import lossbook


def quadruplets(n, **kwargs):
    """Anchor, positive, negative1, negative2: ``embedding_tuples`` with count=4."""
    return embedding_tuples(n, count=4, **kwargs)


CASES = [
    Case(lossbook.quadruplet_loss, quadruplets,
         bad_options=[({"margin1": -1.0}, ValueError, "margin1 must be a non-negative number, got -1.0"),
                      ({"margin2": float("inf")}, ValueError, "margin2 must be a non-negative number, got inf"),
                      ({"margin2": "0.5"}, TypeError, "margin2 must be a number, got str"),
                      ({"margin1": torch.tensor(1.0)}, TypeError, "margin1 must be a number, got Tensor")]),
    Case(lossbook.quadruplet_loss, quadruplets, {"margin1": 4.0, "margin2": 0.0}, "margin1=4,margin2=0"),
]
