"""Random inputs for the chapters' own tests (oracles and properties).

The battery every loss shares (bad input, reductions, gradients, half precision,
modules, tracing) runs from ``tests/registry.py`` in ``tests/test_battery.py``; these
are the hypothesis strategies and seeded pairs the chapter test files use on top:
``random_pair`` (prediction, target) for regression, ``random_margin_pair`` (scores,
labels in {-1, +1}) for margin losses.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def finite_arrays(max_side: int = 6, max_dims: int = 3, bound: float = 1e3):
    """Pairs of float64 arrays of one random shape, as hypothesis strategies."""
    return hnp.array_shapes(min_dims=1, max_dims=max_dims, max_side=max_side).flatmap(
        lambda shape: st.tuples(
            *[
                hnp.arrays(
                    "float64", shape, elements=st.floats(-bound, bound, allow_nan=False)
                )
                for _ in range(2)
            ]
        )
    )


def random_pair(shape, dtype=torch.float64, device="cpu", scale=1.0, seed=0, extreme=False):
    """A prediction and a target of one shape; ``extreme`` puts the residual ``2 * scale`` first."""
    generator = torch.Generator().manual_seed(seed)
    first = scale * torch.randn(shape, dtype=dtype, generator=generator)
    second = scale * torch.randn(shape, dtype=dtype, generator=generator)
    if extreme:
        first.view(-1)[0], second.view(-1)[0] = scale, -scale
    return first.to(device), second.to(device)


def random_margin_pair(shape, dtype=torch.float64, device="cpu", scale=1.0, seed=0, extreme=False):
    """Scores (logits) and labels in {-1, +1}; ``extreme`` puts the margins -scale and +scale first."""
    generator = torch.Generator().manual_seed(seed)
    scores = scale * torch.randn(shape, dtype=dtype, generator=generator)
    labels = (2 * torch.randint(0, 2, shape, generator=generator) - 1).to(dtype)
    if extreme and scores.numel() >= 2:
        scores.view(-1)[:2] = torch.tensor([-scale, scale], dtype=dtype)
        labels.view(-1)[:2] = 1
    return scores.to(device), labels.to(device)
