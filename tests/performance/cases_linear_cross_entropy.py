"""Battery cases of book/performance/linear_cross_entropy.md."""

import torch
from registry import Case, _with, linear_inputs

import lossbook

VOCABULARY = 11
CLASS_WEIGHT = torch.linspace(0.5, 1.5, VOCABULARY, dtype=torch.float64)
BIAS = torch.linspace(-1.0, 1.0, VOCABULARY, dtype=torch.float64)

# Differentiable once: double backward is refused (tests/performance/test_linear_cross_entropy.py).
# gradcheck runs the backward twice on one graph, which allow_retain_graph permits.
CASES = [
    Case(lossbook.linear_cross_entropy, linear_inputs, {"chunk_size": 2, "allow_retain_graph": True}, "chunk_size=2",
         gradgrad=False,
         bad_options=[({"label_smoothing": 1.5}, ValueError, r"label_smoothing must be in \[0, 1\], got 1.5"),
                      ({"label_smoothing": -0.1}, ValueError, "label_smoothing must be a non-negative number"),
                      ({"z_loss": -1.0}, ValueError, "z_loss must be a non-negative number, got -1.0"),
                      ({"softcap": 0.0}, ValueError, "softcap must be a positive number, got 0.0"),
                      ({"chunk_size": 0}, ValueError, "chunk_size must be a positive int or None, got 0"),
                      ({"ignore_index": 1.5}, TypeError, "ignore_index must be an int or None, got float"),
                      ({"allow_retain_graph": 1}, TypeError, "allow_retain_graph must be True or False, got 1")]),
    Case(lossbook.linear_cross_entropy, linear_inputs,
         {"linear_bias": BIAS, "weight": CLASS_WEIGHT, "label_smoothing": 0.1, "chunk_size": 3, "allow_retain_graph": True},
         "bias,weight,smoothing", mean_of_none=False, gradgrad=False),
    Case(lossbook.linear_cross_entropy, _with(linear_inputs, vocabulary=7), {"z_loss": 1e-2, "softcap": 5.0, "allow_retain_graph": True},
         "z_loss,softcap", gradgrad=False),
]
