"""Benchmark of book/metric_learning/circle.md: circle_loss against pytorch-metric-learning's
CircleLoss, the same loss (the values are checked equal before timing)."""

from pytorch_metric_learning.losses import CircleLoss
from registry import embeddings_labels

import lossbook

# Batches of 1024 embeddings of dimension 128 from 64 classes at scale 1; 64 x 10 for --small.
EMBEDDINGS = (embeddings_labels, 1024, {"dim": 128, "classes": 64}, {"dim": 10, "classes": 8})
_pml = CircleLoss(m=0.25, gamma=256)

CASES = [
    dict(part="metric_learning", name="circle_loss", inputs=EMBEDDINGS,
         ours=lambda x, y: lossbook.circle_loss(x, y, m=0.25, gamma=256.0),
         peer=lambda x, y: _pml(x, y), peer_name="PML CircleLoss(m=0.25, gamma=256)", floor=False),
]
