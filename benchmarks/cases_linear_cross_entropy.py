"""Benchmark case of book/performance/linear_cross_entropy.md (read by benchmarks/losses.py).

The peer is PyTorch's reference path, ``F.linear_cross_entropy`` without options, i.e.
``cross_entropy(input @ weight.T, target)`` with the logits in memory; the memory and the
chunked peer are measured by benchmarks/linear_cross_entropy.py."""

import torch.nn.functional as F
from registry import linear_inputs

import lossbook

CASES = [
    dict(part="performance", name="linear_cross_entropy",
         inputs=(linear_inputs, 4096, {"dim": 128, "vocabulary": 32000}, {"dim": 16, "vocabulary": 10}),
         ours=lossbook.linear_cross_entropy, peer=F.linear_cross_entropy, peer_name="F.linear_cross_entropy"),
]
