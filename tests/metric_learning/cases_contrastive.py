"""Battery cases of book/metric_learning/contrastive.md (read by tests/registry.py)."""

import torch
from registry import Case, Inputs, embedding_pairs

import lossbook


def _pairs_with_target(dtype):
    """embedding_pairs with its 0/1 target converted to ``dtype`` (bool, int32, ...)."""

    def make(n, **kwargs):
        inputs = embedding_pairs(n, **kwargs)
        first, second, target = inputs.tensors
        return Inputs((first, second, target.to(dtype)), inputs.differentiable, inputs.none_shape)

    make.__name__ = f"embedding_pairs_{str(dtype).removeprefix('torch.')}"
    return make


CASES = [
    Case(lossbook.contrastive_loss, embedding_pairs, {"margin": 1.0},
         bad_options=[({"margin": -1.0}, ValueError, "margin must be a non-negative number, got -1.0"),
                      ({"margin": float("nan")}, ValueError, "margin must be a non-negative number, got nan"),
                      ({"margin": "1"}, TypeError, "margin must be a number, got str"),
                      ({"margin": torch.tensor(1.0)}, TypeError, "margin must be a number, got Tensor")]),
    Case(lossbook.contrastive_loss, _pairs_with_target(torch.bool), {"margin": 2.0}, "bool target,margin=2"),
    Case(lossbook.contrastive_loss, _pairs_with_target(torch.int32), {"margin": 0.0}, "int32 target,margin=0"),
]
