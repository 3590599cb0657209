"""Battery cases of book/image/dice.md: the Dice family and the Lovasz losses (modules generated)."""

import torch
from registry import NEGATIVE, Case, _finish, _generator

import lossbook


def segmentation(
    n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, classes=3, size=(4, 5), binary=False,
    ignore=False, per_image=False, channels_first=True,
):
    """Logits ``(n, C, *size)`` and a target: 0/1 masks of the same shape (``binary``) or class
    indices ``(n, *size)``, with small objects (about a fifth of the pixels per class);
    ``ignore`` marks about a tenth of the pixels 255 (binary) or -1 (indices); ``extreme``:
    logits of +-50. One loss per image and class, or per image (``per_image``)."""
    g = _generator(seed)
    logits = (50.0 if extreme else 2.0) * torch.randn(n, classes, *size, generator=g)
    if binary:
        target = (torch.rand(n, classes, *size, generator=g) < 0.2).double()
        if ignore:
            target = torch.where(torch.rand(target.shape, generator=g) < 0.1, 255.0, target)
    else:
        target = torch.randint(0, classes, (n, *size), generator=g)
        if ignore:
            target = torch.where(torch.rand(target.shape, generator=g) < 0.1, -1, target)
    return _finish((logits, target), dtype, device, (0,), (n,) if per_image else (n, classes))


def binary_masks(n, **kwargs):
    return segmentation(n, binary=True, **kwargs)


def binary_images(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, size=(4, 5), ignore=False):
    """Logits ``(n, *size)`` and 0/1 labels of the same shape (the Lovasz hinge), one loss per image."""
    inputs = segmentation(n, dtype=dtype, device=device, seed=seed, extreme=extreme, classes=1, size=size,
                          binary=True, ignore=ignore, per_image=True)
    logits, target = inputs.tensors
    return _finish((logits[:, 0], target[:, 0]), dtype, device, (0,), (n,))


def _bind(maker, **bound):
    def make(n, **kwargs):
        return maker(n, **bound, **kwargs)

    make.__name__ = maker.__name__
    return make


WEIGHT = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
OVERLAP_BAD = NEGATIVE + [
    ({"smooth": -1.0}, ValueError, "smooth must be a non-negative number, got -1.0"),
    ({"smooth": "1"}, TypeError, "smooth must be a number, got str"),
    ({"ignore_index": 1.5}, TypeError, "ignore_index must be an int or None, got float"),
    ({"weight": torch.ones(3, dtype=torch.long)}, TypeError, "weight must be a floating-point tensor"),
]

CASES = [
    Case(lossbook.dice_loss, segmentation, bad_options=OVERLAP_BAD),
    Case(lossbook.dice_loss, binary_masks, {"smooth": 0.5}, "binary,smooth=0.5"),
    Case(lossbook.dice_loss, _bind(segmentation, ignore=True), {"ignore_index": -1, "weight": WEIGHT},
         "ignore,weight", mean_of_none=False),
    Case(lossbook.dice_loss, _bind(binary_masks, ignore=True), {"ignore_index": 255, "smooth": 0.0},
         "binary,ignore=255,smooth=0"),
    Case(lossbook.tversky_loss, segmentation,
         bad_options=NEGATIVE + [({"alpha": -0.3}, ValueError, "alpha must be a non-negative number, got -0.3"),
                                 ({"beta": float("nan")}, ValueError, "beta must be a non-negative number, got nan")]),
    Case(lossbook.tversky_loss, binary_masks, {"alpha": 0.7, "beta": 0.3, "smooth": 0.1}, "binary,alpha=0.7"),
    Case(lossbook.focal_tversky_loss, segmentation,
         bad_options=NEGATIVE + [({"gamma": 0.0}, ValueError, "gamma must be a positive number, got 0.0"),
                                 ({"gamma": -1.0}, ValueError, "gamma must be a positive number, got -1.0")]),
    Case(lossbook.focal_tversky_loss, _bind(binary_masks, ignore=True),
         {"gamma": 2.0, "ignore_index": 255, "weight": WEIGHT}, "binary,gamma=2,ignore,weight", mean_of_none=False),
    Case(lossbook.generalized_dice_loss, _bind(segmentation, per_image=True),
         bad_options=NEGATIVE + [({"smooth": -1e-5}, ValueError, "smooth must be a non-negative number")]),
    Case(lossbook.generalized_dice_loss, _bind(binary_masks, per_image=True, ignore=True),
         {"ignore_index": 255, "smooth": 1.0}, "binary,ignore,smooth=1"),
    Case(lossbook.lovasz_softmax_loss, _bind(segmentation, per_image=True),
         bad_options=NEGATIVE + [({"classes": "some"}, ValueError, "classes must be 'present' or 'all', got 'some'"),
                                 ({"ignore_index": "255"}, TypeError, "ignore_index must be an int or None")]),
    Case(lossbook.lovasz_softmax_loss, _bind(segmentation, per_image=True, ignore=True, classes=4),
         {"classes": "all", "ignore_index": -1}, "all,ignore"),
    Case(lossbook.lovasz_hinge_loss, binary_images,
         bad_options=NEGATIVE + [({"ignore_index": 0.5}, TypeError, "ignore_index must be an int or None")]),
    Case(lossbook.lovasz_hinge_loss, _bind(binary_images, ignore=True, size=(3, 2, 4)), {"ignore_index": 255},
         "ignore,3d"),
]
