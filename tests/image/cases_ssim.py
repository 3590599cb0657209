"""Battery cases of book/image/ssim.md: ssim_loss and ms_ssim_loss (ssim and ms_ssim are
metrics, tested through these losses and in tests/image/test_ssim.py)."""

from registry import NEGATIVE, Case, _with, images

import lossbook

WINDOW_OPTIONS = [
    ({"data_range": 0.0}, ValueError, "data_range must be a positive number, got 0.0"),
    ({"data_range": "1"}, TypeError, "data_range must be a number, got str"),
    ({"win_size": 4}, ValueError, "win_size must be an odd positive int, got 4"),
    ({"win_size": 3.0}, TypeError, "win_size must be an odd int, got float"),
    ({"sigma": -1.5}, ValueError, "sigma must be a positive number, got -1.5"),
    ({"k1": 0.0}, ValueError, "k1 must be a positive number, got 0.0"),
    ({"k2": float("nan")}, ValueError, "k2 must be a positive number, got nan"),
]

CASES = [
    Case(lossbook.ssim_loss, _with(images, channels=2, size=(11, 12)), {"data_range": 1.0},
         bad_options=NEGATIVE + WINDOW_OPTIONS),
    Case(lossbook.ssim_loss, _with(images, channels=1, size=(8, 9), data_range=255.0),
         {"data_range": 255.0, "win_size": 7, "sigma": 1.0, "k2": 0.05}, "data_range=255,win_size=7"),
    Case(lossbook.ms_ssim_loss, _with(images, channels=1, size=(10, 9)), {"data_range": 1.0, "win_size": 3, "weights": (0.2, 0.3, 0.5)},
         "3 scales,win_size=3",
         bad_options=WINDOW_OPTIONS + [
             ({"weights": ()}, TypeError, "weights must be a non-empty sequence of numbers"),
             ({"weights": "0.5"}, TypeError, "weights must be a non-empty sequence of numbers"),
             ({"weights": (0.5, -0.5)}, ValueError, "every weight must be a non-negative number, got -0.5"),
         ]),
    Case(lossbook.ms_ssim_loss, _with(images, channels=1, size=(13, 11)),
         {"data_range": 1.0, "win_size": 3, "sigma": 0.8, "weights": (0.3, 0.3, 0.4)}, "odd sides"),
]
