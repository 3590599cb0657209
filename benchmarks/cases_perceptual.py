"""Benchmark cases of book/image/perceptual.md (read by benchmarks/losses.py).

No library ships these losses with lossbook's normalization, so the peer is the same
loss written with torch natives on the same small network (the battery's, from
tests/image/cases_perceptual.py, which computes half inputs in float32): ``F.mse_loss``
of the features, and the Gram matrices by ``torch.bmm``. The values must agree; the
ratio measures what lossbook adds around the network (checks, upcasts, the layer loop).
"""

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

import lossbook

_path = Path(__file__).resolve().parent.parent / "tests" / "image" / "cases_perceptual.py"
_spec = importlib.util.spec_from_file_location("benchmark_cases_perceptual_maker", _path)
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)

NET = _cases.small_extractor()


def feature_mse(input, target):
    """F.mse_loss of the network's output: the mean over images of the per-image feature MSE."""
    return F.mse_loss(NET(input), NET(target))


def gram_mse(input, target):
    """Johnson et al.'s Gram matrices with torch.bmm; the squared Frobenius norm per image, averaged."""
    def gram(x):
        f = NET(x).flatten(2)
        return torch.bmm(f, f.transpose(1, 2)) / (f.shape[1] * f.shape[2])

    g = gram(input)
    return F.mse_loss(g, gram(target)) * g.shape[1] * g.shape[2]


# 256 images of 3 x 64 x 64 at scale 1; 64 images of 3 x 10 x 10 for --small.
IMAGES = (_cases.images, 256, {"size": (64, 64)}, {"size": (10, 10)})

CASES = [
    dict(part="image", name="perceptual_loss", inputs=IMAGES,
         ours=lambda x, y: lossbook.perceptual_loss(x, y, NET), peer=feature_mse,
         peer_name="F.mse_loss of the features", floor=False),
    dict(part="image", name="style_loss", inputs=IMAGES,
         ours=lambda x, y: lossbook.style_loss(x, y, NET), peer=gram_mse,
         peer_name="torch.bmm Gram + F.mse_loss", floor=False),
]
