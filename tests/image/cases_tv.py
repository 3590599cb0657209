"""Registry cases of book/image/tv.md: tv_loss, anisotropic, isotropic and weighted.

``tv_loss`` takes one tensor (the images): the battery's shape-mismatch refusal, which
pairs the first tensor with a second one, cannot drive it; ``test_tv.py`` tests the
shape refusals (images of fewer than 3 dimensions, weights that do not broadcast).
"""

import torch
from registry import Case, Inputs, images

import lossbook

SIZE = (12, 12)


def tv_images(n, **kwargs) -> Inputs:
    """The images of the shared ``images`` maker (their noisy input half), alone: one TV per image."""
    pair = images(n, **kwargs)
    return Inputs((pair.tensors[0],), (0,), pair.none_shape)


# The anisotropic TV is piecewise linear: its gradient (signs) jumps where two clipped
# neighbours are equal, so a numerical second derivative fails there (gradgrad=False, as
# for the hinge losses); the isotropic one is smooth away from constant patches.
# A weight map (H, W) broadcast over the batch and the channels: small weights on the left.
WEIGHT = torch.linspace(0.1, 2.0, SIZE[1], dtype=torch.float64).repeat(SIZE[0], 1)

CASES = [
    Case(lossbook.tv_loss, tv_images, gradgrad=False,
         bad_options=[({"isotropic": 1}, TypeError, "isotropic must be True or False, got 1"),
                      ({"isotropic": "yes"}, TypeError, "isotropic must be True or False"),
                      ({"weight": [1.0, 2.0]}, TypeError, "weight must be a torch.Tensor, got list"),
                      ({"weight": torch.ones(SIZE, dtype=torch.long)}, TypeError,
                       "weight must be a floating-point tensor, got dtype torch.int64")]),
    Case(lossbook.tv_loss, tv_images, {"isotropic": True}, "isotropic"),
    Case(lossbook.tv_loss, tv_images, {"weight": WEIGHT}, "weighted", gradgrad=False),
    Case(lossbook.tv_loss, tv_images, {"weight": WEIGHT, "isotropic": True, "reduction": "sum"}, "weighted,isotropic"),
]
