"""Benchmark cases of book/metric_learning/margin_softmax.md against pytorch-metric-learning (same values)."""

import math
import sys
from pathlib import Path

from pytorch_metric_learning import losses as pml

import lossbook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "metric_learning"))
from cases_margin_softmax import embeddings_weight_labels  # noqa: E402

# batch 1024, embedding 128, 1000 classes at scale 1; 64 x 10 and 10 classes for --small
INPUTS = (embeddings_weight_labels, 1024, {"dim": 128, "classes": 1000}, {"dim": 10, "classes": 10})


class PMLWithWeight:
    """PML's module (weights (D, C) as its Parameter W) called with lossbook's (C, D) weight."""

    def __init__(self, module_class, **options):
        self.module_class, self.options, self.module = module_class, options, None

    def __call__(self, embeddings, weight, labels):
        classes, dim = weight.shape
        if self.module is None or self.module.W.shape != (dim, classes):
            self.module = self.module_class(classes, dim, **self.options).to(weight.device)
        self.module.W.data = weight.detach().T.to(self.module.W.dtype)
        return self.module(embeddings, labels)


CASES = [
    dict(part="metric_learning", name="cosface_loss", inputs=INPUTS, ours=lossbook.cosface_loss,
         peer=PMLWithWeight(pml.CosFaceLoss, margin=0.35, scale=64), peer_name="PML CosFaceLoss"),
    dict(part="metric_learning", name="arcface_loss", inputs=INPUTS, ours=lossbook.arcface_loss,
         peer=PMLWithWeight(pml.ArcFaceLoss, margin=math.degrees(0.5), scale=64), peer_name="PML ArcFaceLoss"),
]
