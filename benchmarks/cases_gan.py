"""Benchmark cases of book/generative/gan.md (read by benchmarks/losses.py): the GAN losses
against the binary cross entropies they are, written with F.binary_cross_entropy_with_logits
as GAN training loops write them (the values are checked equal before timing)."""

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

import lossbook

_path = Path(__file__).resolve().parent.parent / "tests" / "generative" / "cases_gan.py"
_spec = importlib.util.spec_from_file_location("benchmark_cases_gan_maker", _path)
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)


def bce_discriminator(real, fake):
    """The usual discriminator loss: BCE of real logits against ones plus fake logits against zeros."""
    return F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )


def bce_generator(fake):
    """The usual non-saturating generator loss: BCE of fake logits against ones ("flipped labels")."""
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


# A patch discriminator's maps: 65,536 samples of 8 x 8 logits at scale 1 (about four
# million logits per side); 64 single logits for --small.
LOGITS = (_cases.gan_logits, 1 << 16, {"spatial": (8, 8)}, {"spatial": ()})
FAKE = (_cases.fake_logits, 1 << 16, {"spatial": (8, 8)}, {"spatial": ()})

CASES = [
    dict(part="generative", name="gan_discriminator_loss", inputs=LOGITS, ours=lossbook.gan_discriminator_loss,
         peer=bce_discriminator, peer_name="F.binary_cross_entropy_with_logits (real vs 1) + (fake vs 0)", floor=False),
    dict(part="generative", name="gan_generator_loss", inputs=FAKE, ours=lossbook.gan_generator_loss,
         peer=bce_generator, peer_name="F.binary_cross_entropy_with_logits (fake vs 1)", floor=False),
]
