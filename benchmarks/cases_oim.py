"""Benchmark of book/metric_learning/oim.md: oim_loss against its floor, F.cross_entropy over
the same logits (the matrix product with the memories included); no library ships OIM."""

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

import lossbook

_path = Path(__file__).resolve().parent.parent / "tests" / "metric_learning" / "cases_oim.py"
_spec = importlib.util.spec_from_file_location("benchmark_cases_oim_maker", _path)
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)

# 1024 features of dimension 256 against CUHK-SYSU's memories at scale 1 (5532 labelled
# identities, a queue of 5000 unlabelled features); 64 x 10 for --small.
MEMORIES = (_cases.features_labels_memories, 1024, {"dim": 256, "num_labeled": 5532, "queue_size": 5000},
            {"dim": 10, "num_labeled": 10, "queue_size": 10})


def _cross_entropy_floor(features, labels, lookup_table, queue):
    logits = 30.0 * features @ torch.cat([lookup_table, queue]).T
    return F.cross_entropy(logits, labels.long(), ignore_index=-1)


CASES = [
    dict(part="metric_learning", name="oim_loss", inputs=MEMORIES,
         ours=lambda x, y, t, q: lossbook.oim_loss(x, y, t, q, scalar=30.0),
         peer=_cross_entropy_floor, peer_name="F.cross_entropy (same logits)", floor=True),
]
