"""Battery cases of book/image/perceptual.md: perceptual_loss and style_loss.

The loss takes a network; the battery passes it as the keyword ``feature_extractor``
(its signature allows it). The networks here compute in the input's compute dtype
(float64 for gradcheck, float32 for half inputs, as autocast would) and on the input's
device, so that one module serves every check of the battery. Their layers are named
children of an ``nn.Sequential`` (the path that stops early and compiles); the hook path
and the module lossbook.nn.PerceptualLoss are tested in tests/image/test_perceptual.py.
"""

from collections import OrderedDict
from functools import partial

import torch
import torch.nn.functional as F
from registry import NEGATIVE, Case, images
from torch import nn

import lossbook
from lossbook.conventions.anatomy import compute_dtype


class FollowingConv(nn.Module):
    """A 3 x 3 convolution with fixed random weights that follows its input's dtype and device."""

    def __init__(self, in_channels: int, out_channels: int, seed: int, stride: int = 1) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("weight", torch.randn(out_channels, in_channels, 3, 3, generator=g) / (3 * in_channels**0.5))
        self.register_buffer("bias", 0.1 * torch.randn(out_channels, generator=g))
        self.stride = stride

    def forward(self, x):
        dtype = compute_dtype(x)
        return F.conv2d(x.to(dtype), self.weight.to(x.device, dtype), self.bias.to(x.device, dtype), stride=self.stride)


def small_extractor(seed: int = 0) -> nn.Sequential:
    """conv -> softplus -> conv (stride 2) -> softplus: smooth, so gradgradcheck holds."""
    return nn.Sequential(OrderedDict(
        conv1=FollowingConv(3, 4, seed), act1=nn.Softplus(),
        conv2=FollowingConv(4, 5, seed + 1, stride=2), act2=nn.Softplus(),
    ))


EXTRACTOR = small_extractor()
IMAGES = partial(images, size=(10, 10))

BAD = NEGATIVE + [
    ({"layers": "act1"}, TypeError, "layers must be None or a list of submodule names, got str"),
    ({"layers": []}, ValueError, "layers must name at least one submodule"),
    ({"layers": ["act1", "act1"]}, ValueError, "layers must not repeat a name"),
    ({"layers": ["act1", 2]}, TypeError, r"layers must hold submodule names \(str\), got int"),
    ({"weights": [1.0, -1.0], "layers": ["act1", "act2"]}, ValueError, "weights must be a non-negative number, got -1.0"),
    ({"weights": [1.0], "layers": ["act1", "act2"]}, ValueError, "weights must hold one number per layer: got 1 weights for 2 layers"),
    ({"weights": torch.ones(2), "layers": ["act1", "act2"]}, TypeError, "weights must be None or a list of numbers"),
]

CASES = [
    Case(lossbook.perceptual_loss, IMAGES, {"feature_extractor": EXTRACTOR}, "output", bad_options=BAD),
    Case(lossbook.perceptual_loss, IMAGES,
         {"feature_extractor": EXTRACTOR, "layers": ["act1", "act2"], "weights": [1.0, 0.5]}, "layers,weights"),
    Case(lossbook.style_loss, IMAGES, {"feature_extractor": EXTRACTOR}, "output", bad_options=BAD),
    Case(lossbook.style_loss, IMAGES,
         {"feature_extractor": EXTRACTOR, "layers": ["conv1", "act2"], "weights": [2.0, 1.0]}, "layers,weights"),
]
