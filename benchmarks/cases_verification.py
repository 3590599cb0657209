"""Benchmark cases of book/metric_learning/verification.md (read by benchmarks/losses.py)."""

import importlib.util
from pathlib import Path

import torch.nn.functional as F

import lossbook

_path = Path(__file__).resolve().parent.parent / "tests" / "metric_learning" / "cases_verification.py"
_spec = importlib.util.spec_from_file_location("benchmark_cases_verification_maker", _path)
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)


def hand_written_verification(f1, f2, target, weight, bias):
    """The same loss from torch natives: the square layer, a linear logit and
    F.binary_cross_entropy_with_logits."""
    return F.binary_cross_entropy_with_logits(((f1 - f2) ** 2) @ weight + bias, target)


# 65,536 pairs of 128-d embeddings at scale 1; 64 pairs of 10 for --small.
PAIRS = (_cases.pairs_and_classifier, 1 << 16, {"dim": 128}, {"dim": 10})

CASES = [
    dict(part="metric_learning", name="verification_loss", inputs=PAIRS, ours=lossbook.verification_loss,
         peer=hand_written_verification, peer_name="square layer + F.binary_cross_entropy_with_logits", floor=False),
]
