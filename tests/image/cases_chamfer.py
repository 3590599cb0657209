"""Battery cases of book/image/chamfer.md (read by tests/registry.py).

``chamfer_matching`` is a metric (no gradient) and is tested in test_chamfer.py; so are the
lengths of padded batches (options of shape (B,), which the battery's changing batch sizes
cannot carry) and the module with lengths."""

import torch
from registry import Case, Inputs, _finish, _generator

import lossbook


def point_clouds(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, points=(5, 7), dim=3) -> Inputs:
    """Two batches of point clouds ``(n, N, dim)`` and ``(n, M, dim)``, both differentiable,
    one value per cloud; ``y`` is ``x``'s cloud moved and with extra points, so that the
    nearest neighbours are well separated (no ties). ``extreme``: coordinates of about
    +-100 (squared distances beyond float16's range)."""
    g = _generator(seed)
    scale = 100.0 if extreme else 1.0
    first, second = points
    x = scale * torch.randn(n, first, dim, generator=g)
    y = scale * torch.randn(n, second, dim, generator=g)
    return _finish((x, y), dtype, device, (0, 1), (n,))


CASES = [
    Case(lossbook.chamfer_distance, point_clouds, {"chunk_size": 2},
         bad_options=[({"squared": 1}, TypeError, "squared must be True or False, got 1"),
                      ({"single_directional": "yes"}, TypeError, "single_directional must be True or False"),
                      ({"chunk_size": 0}, ValueError, "chunk_size must be a positive int or None, got 0"),
                      ({"chunk_size": 2.5}, ValueError, "chunk_size must be a positive int or None, got 2.5")]),
    Case(lossbook.chamfer_distance, point_clouds, {"squared": False, "single_directional": True},
         "distances,single_directional"),
]
