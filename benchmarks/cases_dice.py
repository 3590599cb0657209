"""Benchmark cases of book/image/dice.md (read by benchmarks/losses.py).

No library in the benchmark environment has these losses, so each is timed against the
cost of one fused memory-bound pass over the same tensors (``floor=True``): ``F.mse_loss``
of the logits against the masks for the binary and multi-label forms, and, where the target
holds class indices (a mean squared error is not defined on them), ``F.cross_entropy``.
"""

import importlib.util
from pathlib import Path

import torch.nn.functional as F

import lossbook

_path = Path(__file__).resolve().parent.parent / "tests" / "image" / "cases_dice.py"
_spec = importlib.util.spec_from_file_location("benchmark_cases_dice_maker", _path)
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)

# 32 images of 4 channels at 128 x 128 (two million logits) at scale 1; 64 images of 10 pixels for --small.
MASKS = (_cases.binary_masks, 32, {"classes": 4, "size": (128, 128)}, {"classes": 1, "size": (10,)})
INDICES = (_cases.segmentation, 32, {"classes": 4, "size": (128, 128)}, {"classes": 10, "size": (1,)})
IMAGES = (_cases.binary_images, 32, {"size": (4, 128, 128)}, {"size": (10,)})

CASES = [
    dict(part="image", name="dice_loss", inputs=MASKS, ours=lossbook.dice_loss, peer=F.mse_loss,
         peer_name="F.mse_loss", floor=True),
    dict(part="image", name="dice_loss", inputs=INDICES, ours=lossbook.dice_loss, peer=F.cross_entropy,
         peer_name="F.cross_entropy (class indices)", floor=True),
    dict(part="image", name="tversky_loss", inputs=MASKS, ours=lossbook.tversky_loss, peer=F.mse_loss,
         peer_name="F.mse_loss", floor=True),
    dict(part="image", name="focal_tversky_loss", inputs=MASKS, ours=lossbook.focal_tversky_loss, peer=F.mse_loss,
         peer_name="F.mse_loss", floor=True),
    dict(part="image", name="generalized_dice_loss", inputs=MASKS, ours=lossbook.generalized_dice_loss,
         peer=F.mse_loss, peer_name="F.mse_loss", floor=True),
    dict(part="image", name="lovasz_hinge_loss", inputs=IMAGES, ours=lossbook.lovasz_hinge_loss, peer=F.mse_loss,
         peer_name="F.mse_loss", floor=True),
    dict(part="image", name="lovasz_softmax_loss", inputs=INDICES, ours=lossbook.lovasz_softmax_loss,
         peer=F.cross_entropy, peer_name="F.cross_entropy (class indices)", floor=True),
]
