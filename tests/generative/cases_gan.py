"""Battery cases of book/generative/gan.md: gan_discriminator_loss and gan_generator_loss."""

import torch
from registry import NEGATIVE, Case, Inputs

import lossbook


def gan_logits(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, spatial=()) -> Inputs:
    """A discriminator's logits on ``n`` real and ``n`` fake samples, ``(n, *spatial)`` each
    (``spatial``: a patch discriminator's map), both differentiable; ``extreme``: logits of
    +-100, the confident discriminator the half-precision checks need."""
    g = torch.Generator().manual_seed(seed)
    scale = 100.0 if extreme else 3.0
    real = scale * torch.randn(n, *spatial, generator=g, dtype=torch.float64)
    fake = scale * torch.randn(n, *spatial, generator=g, dtype=torch.float64)
    if extreme and n:
        real.view(-1)[0], fake.view(-1)[0] = -scale, scale  # confidently wrong on both
    moved = tuple(t.to(device=device, dtype=dtype) for t in (real, fake))
    return Inputs(moved, (0, 1), (n, *spatial))


def fake_logits(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, spatial=()) -> Inputs:
    """The discriminator's logits on ``n`` fakes alone, ``(n, *spatial)``."""
    inputs = gan_logits(n, dtype=dtype, device=device, seed=seed, extreme=extreme, spatial=spatial)
    return Inputs(inputs.tensors[1:], (0,), inputs.none_shape)


def _patch(maker):
    def make(n, **kwargs):
        return maker(n, spatial=(2, 3), **kwargs)

    make.__name__ = maker.__name__
    return make


CASES = [
    Case(lossbook.gan_discriminator_loss, gan_logits, bad_options=NEGATIVE),
    Case(lossbook.gan_discriminator_loss, _patch(gan_logits), {"reduction": "sum"}, "patch,sum"),
    Case(lossbook.gan_generator_loss, fake_logits,
         bad_options=NEGATIVE + [({"non_saturating": 1}, TypeError, "non_saturating must be True or False, got 1"),
                                 ({"non_saturating": "yes"}, TypeError, "non_saturating must be True or False")]),
    Case(lossbook.gan_generator_loss, _patch(fake_logits), {"non_saturating": False}, "saturating,patch"),
]
