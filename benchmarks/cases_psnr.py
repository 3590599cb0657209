"""Benchmark cases of book/image/psnr.md (read by benchmarks/losses.py)."""

import sys
from pathlib import Path

import torch.nn.functional as F

import lossbook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from registry import images  # noqa: E402


def negative_psnr_loss(input, target):
    return lossbook.psnr_loss(input, target, data_range=1.0)


# 64 RGB images of 128 x 128 (about 3 million values) at scale 1; 64 of 3 x 8 x 8 for --small.
IMAGES = (images, 64, {"size": (128, 128)}, {"size": (8, 8)})

CASES = [
    dict(part="image", name="psnr_loss", inputs=IMAGES, ours=negative_psnr_loss, peer=F.mse_loss,
         peer_name="F.mse_loss", floor=True),
]
