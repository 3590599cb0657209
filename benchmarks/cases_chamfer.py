"""Benchmark case of book/image/chamfer.md (read by benchmarks/losses.py).

The peer is the brute force, ``torch.cdist`` of whole clouds and the two minima, the same
loss with every distance in memory (``compute_mode="donot_use_mm_for_euclid_dist"``: exact
differences, so that the values agree to float32's precision, as lossbook's do). The memory
at the issue's size, against a naive chunked loop, is measured by benchmarks/chamfer.py."""

import importlib.util
from pathlib import Path

import torch

import lossbook

_spec = importlib.util.spec_from_file_location(
    "cases_chamfer_makers", Path(__file__).resolve().parent.parent / "tests" / "image" / "cases_chamfer.py")
_makers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_makers)


def brute_force_chamfer(x, y):
    """Squared nearest distances from the full (B, N, M) matrix, point means, directions added, batch mean."""
    d = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist").square()
    return (d.min(2).values.mean(1) + d.min(1).values.mean(1)).mean()


# 256 clouds of 1024 points in 3-D at scale 1 (the peer's matrices: 1 GB); 64 clouds of 10 for --small.
CASES = [
    dict(part="image", name="chamfer_distance",
         inputs=(_makers.point_clouds, 256, {"points": (1024, 1024)}, {"points": (10, 10)}),
         ours=lossbook.chamfer_distance, peer=brute_force_chamfer, peer_name="torch.cdist brute force", floor=False),
]
