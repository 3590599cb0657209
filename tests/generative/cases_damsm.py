"""Battery cases of book/generative/damsm.md: damsm_word_loss and damsm_sentence_loss
(r_precision is a metric: tests/generative/test_damsm.py)."""

import torch
from registry import NEGATIVE, Case, Inputs, _with, embedding_tuples

import lossbook


def regions_words(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, regions=5, words=3, dim=4,
                  lengths=False) -> Inputs:
    """Region features ``(n, regions, dim)`` of images and word features ``(n, words, dim)`` of
    their captions (each word a noisy copy of one region of its image, so matched pairs
    score higher), both differentiable; with ``lengths``, a third tensor of caption lengths
    ``(n,)`` in ``[1, words]`` (int64). One loss per pair. ``extreme``: features of about
    +-100 (dot products of 1e4 and more)."""
    g = torch.Generator().manual_seed(seed)
    scale = 100.0 if extreme else 1.0
    region = torch.randn(n, regions, dim, generator=g, dtype=torch.float64)
    picked = torch.randint(0, regions, (n, words), generator=g)
    word = region[torch.arange(n)[:, None], picked] + 0.5 * torch.randn(n, words, dim, generator=g, dtype=torch.float64)
    tensors = [scale * region, scale * word]
    if lengths:
        tensors.append(torch.randint(1, words + 1, (n,), generator=g))
    moved = tuple(t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype) for t in tensors)
    return Inputs(moved, (0, 1), (n,))


_BAD_GAMMAS = [({"gamma1": 0.0}, ValueError, "gamma1 must be a positive number, got 0.0"),
               ({"gamma2": -5.0}, ValueError, "gamma2 must be a positive number, got -5.0"),
               ({"gamma3": float("inf")}, ValueError, "gamma3 must be a positive number, got inf"),
               ({"official_code": 1}, TypeError, "official_code must be True or False, got 1")]

CASES = [
    Case(lossbook.damsm_word_loss, regions_words, bad_options=NEGATIVE + _BAD_GAMMAS),
    Case(lossbook.damsm_word_loss, _with(regions_words, lengths=True, words=4), {"official_code": True, "reduction": "sum"},
         "lengths,official_code,sum"),
    Case(lossbook.damsm_word_loss, _with(regions_words, lengths=True), {"gamma1": 1.0, "gamma2": 2.0, "gamma3": 3.0},
         "lengths,gammas"),
    Case(lossbook.damsm_sentence_loss, _with(embedding_tuples, count=2),
         bad_options=NEGATIVE + [({"gamma3": 0.0}, ValueError, "gamma3 must be a positive number, got 0.0"),
                                 ({"gamma3": "10"}, TypeError, "gamma3 must be a number, got str")]),
    Case(lossbook.damsm_sentence_loss, _with(embedding_tuples, count=2, dim=7), {"gamma3": 5.0, "reduction": "sum"},
         "gamma3=5,sum"),
]
