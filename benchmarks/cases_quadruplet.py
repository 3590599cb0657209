"""Benchmark cases of book/metric_learning/quadruplet.md (read by benchmarks/losses.py)."""

import torch.nn.functional as F
from registry import embedding_tuples

import lossbook


def quadruplets(n, **kwargs):
    return embedding_tuples(n, count=4, **kwargs)


def two_triplet_margin_losses(anchor, positive, negative1, negative2):
    """A floor: two native triplet losses over the same tensors (Euclidean, not squared,
    distances; the second on (anchor, positive, negative2)), about the work of (1)."""
    return F.triplet_margin_loss(anchor, positive, negative1, margin=1.0) + F.triplet_margin_loss(
        anchor, positive, negative2, margin=0.5)


# 65,536 quadruplets of 128-d embeddings at scale 1; 64 of 10 for --small.
QUADRUPLETS = (quadruplets, 1 << 16, {"dim": 128}, {"dim": 10})

CASES = [
    dict(part="metric_learning", name="quadruplet_loss", inputs=QUADRUPLETS, ours=lossbook.quadruplet_loss,
         peer=two_triplet_margin_losses, peer_name="2 x F.triplet_margin_loss", floor=True),
]
