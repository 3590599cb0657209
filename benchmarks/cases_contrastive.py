"""Benchmark cases of book/metric_learning/contrastive.md (read by benchmarks/losses.py)."""

import torch
import torch.nn.functional as F
from registry import embedding_pairs

import lossbook


def hand_written_contrastive(x1, x2, target, margin=1.0):
    """The usual hand-written contrastive loss (target 1 = similar) on F.pairwise_distance;
    eps=0 so that it is the same loss (its gradient is NaN at distance 0, which random
    benchmark pairs never reach)."""
    d = F.pairwise_distance(x1, x2, eps=0.0)
    return (target * d.square() + (1 - target) * torch.clamp(margin - d, min=0).square()).mean()


# 65,536 pairs of 128-d embeddings at scale 1; 64 pairs of 10 for --small.
PAIRS = (embedding_pairs, 1 << 16, {"dim": 128}, {"dim": 10})

CASES = [
    dict(part="metric_learning", name="contrastive_loss", inputs=PAIRS, ours=lossbook.contrastive_loss,
         peer=hand_written_contrastive, peer_name="F.pairwise_distance, hand-written", floor=False),
]
