"""Benchmark cases of book/image/ssim.md (read by benchmarks/losses.py): 16 x 3 x 256 x 256
images at scale 1, against pytorch_msssim's same losses. benchmarks/ssim.py adds kornia
and the thread counts."""

import sys
from pathlib import Path

import pytorch_msssim

import lossbook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from registry import images  # noqa: E402  (the battery's image maker)

# (maker, images at scale 1, sizes at scale 1, sizes for --small): 16 x 3 x 256 x 256; --small
# takes 64 images of 16 x 16 (SSIM) or 64 x 1 x 176 x 176 (five MS-SSIM scales need > 160).
IMAGES = (images, 16, {"size": (256, 256)}, {"size": (16, 16)})
MS_IMAGES = (images, 16, {"size": (256, 256)}, {"size": (176, 176), "channels": 1})

CASES = [
    dict(part="image", name="ssim_loss", inputs=IMAGES,
         ours=lambda input, target: lossbook.ssim_loss(input, target, data_range=1.0),
         peer=lambda input, target: 1 - pytorch_msssim.ssim(input, target, data_range=1.0),
         peer_name="1 - pytorch_msssim.ssim", floor=False),
    dict(part="image", name="ms_ssim_loss", inputs=MS_IMAGES,
         ours=lambda input, target: lossbook.ms_ssim_loss(input, target, data_range=1.0),
         peer=lambda input, target: 1 - pytorch_msssim.ms_ssim(input, target, data_range=1.0),
         peer_name="1 - pytorch_msssim.ms_ssim", floor=False),
]
