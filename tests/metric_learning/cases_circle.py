"""Battery cases of book/metric_learning/circle.md: circle_loss (its module is generated)."""

import torch
from registry import NEGATIVE, Case, Inputs, embeddings_labels

import lossbook


def _int32_labels(n, **kwargs):
    inputs = embeddings_labels(n, classes=4, **kwargs)
    return Inputs((inputs.tensors[0], inputs.tensors[1].to(torch.int32)), inputs.differentiable, inputs.none_shape)


_int32_labels.__name__ = "embeddings_labels"

# The weights alpha are detached (the paper, PML): the gradient is deliberately not the
# derivative of the value, so a numerical gradcheck must fail (see Case.gradcheck).
# test_circle.py checks the gradient against equation (6), the chain rule through the
# normalization, and pytorch-metric-learning.
CASES = [
    Case(lossbook.circle_loss, embeddings_labels, mean_of_none=False, gradcheck=False,  # mean over valid anchors
         bad_options=NEGATIVE + [({"m": -0.1}, ValueError, "m must be a non-negative number, got -0.1"),
                                 ({"gamma": 0.0}, ValueError, "gamma must be a positive number, got 0.0"),
                                 ({"gamma": "80"}, TypeError, "gamma must be a number, got str")]),
    Case(lossbook.circle_loss, _int32_labels, {"m": 0.4, "gamma": 80.0, "reduction": "sum"}, "m=0.4,gamma=80,int32,sum",
         mean_of_none=False, gradcheck=False),
]
