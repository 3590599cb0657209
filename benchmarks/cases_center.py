"""Benchmark cases of book/metric_learning/center.md (read by benchmarks/losses.py)."""

import importlib.util
from pathlib import Path

import torch.nn.functional as F

import lossbook

_path = Path(__file__).resolve().parent.parent / "tests" / "metric_learning" / "cases_center.py"
_spec = importlib.util.spec_from_file_location("benchmark_cases_center_maker", _path)
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)


def gathered_mse(features, labels, centers):
    """The same loss from torch natives: F.mse_loss against the gathered centres averages over
    N * D elements, so D / 2 times it is the mean of 1/2 ||h - c_y||^2."""
    return F.mse_loss(features, centers[labels]) * (features.shape[1] / 2)


# 65,536 features of 128 dimensions and 1,000 classes at scale 1; 64 x 10 (10 classes) for --small.
FEATURES = (_cases.features_labels_centers, 1 << 16, {"dim": 128, "classes": 1000}, {"dim": 10, "classes": 10})

CASES = [
    dict(part="metric_learning", name="center_loss", inputs=FEATURES, ours=lossbook.center_loss,
         peer=gathered_mse, peer_name="F.mse_loss on gathered centres", floor=False),
]
