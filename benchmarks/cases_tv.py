"""Benchmark cases of book/image/tv.md (read by benchmarks/losses.py).

No library has the same loss with a fused kernel (kornia's total_variation is the same
formula in autograd), so the peer is the floor of issue 12: one fused pass over the same
tensors, ``F.mse_loss(input, target)`` of the images maker's pair; ``tv_loss`` reads the
first of them.
"""

import sys
from pathlib import Path

import torch.nn.functional as F

import lossbook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from registry import images  # noqa: E402


def anisotropic_tv(input, target):
    return lossbook.tv_loss(input)


# 64 RGB images of 128 x 128 (about 3 million pixels) at scale 1; 64 of 3 x 8 x 8 for --small.
IMAGES = (images, 64, {"size": (128, 128)}, {"size": (8, 8)})

CASES = [
    dict(part="image", name="tv_loss", inputs=IMAGES, ours=anisotropic_tv, peer=F.mse_loss,
         peer_name="F.mse_loss (same tensors)", floor=True),
]
