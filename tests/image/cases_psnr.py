"""Registry cases of book/image/psnr.md: psnr_loss (psnr is a metric, tested in test_psnr.py)."""

import lossbook
from registry import NEGATIVE, Case, _with, images  # noqa: F401

CASES = [
    Case(lossbook.psnr_loss, images, {"data_range": 1.0},
         bad_options=[({"data_range": 0.0}, ValueError, "data_range must be a positive number, got 0.0"),
                      ({"data_range": -1.0}, ValueError, "data_range must be a positive number, got -1.0"),
                      ({"data_range": float("inf")}, ValueError, "data_range must be a positive number, got inf"),
                      ({"data_range": "1"}, TypeError, "data_range must be a number, got str")]),
    Case(lossbook.psnr_loss, _with(images, channels=1, size=(9, 7), data_range=255.0),
         {"data_range": 255.0, "reduction": "sum"}, "data_range=255,grey"),
]
