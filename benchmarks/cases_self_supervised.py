"""Benchmark cases of book/metric_learning/self_supervised.md, each against the same loss (values agree).

InfoNCE and NT-Xent are timed against their usual hand-written form, ``F.cross_entropy``
over the similarity matrix (CLIP's and SimCLR's reference code), not against
pytorch-metric-learning's ``NTXentLoss``: that one is pair-based and materializes a
(positive pairs x negative pairs) matrix, O(N^3) memory (about 4 GB at 1024 queries, more
than 30 GB for NT-Xent's 2048 views); the tests compare its values on small batches.
SupCon is timed against PML's ``SupConLoss`` (matrix-based, the same values).
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml

import lossbook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from registry import embedding_tuples, embeddings_labels  # noqa: E402

# batch 1024, embedding 128 at scale 1 (the part's benchmark size); 64 x 10 for --small
PAIRS = (lambda n, **kw: embedding_tuples(n, count=2, **kw), 1024, {"dim": 128}, {"dim": 10})
LABELLED = (embeddings_labels, 1024, {"dim": 128, "classes": 64}, {"dim": 10, "classes": 8})


def cross_entropy_info_nce(query, key, temperature=0.1):
    """CLIP / MoCo style: cross entropy of the cosine-similarity matrix with targets arange(N)."""
    logits = F.normalize(query, dim=1) @ F.normalize(key, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(query), device=query.device))


def cross_entropy_nt_xent(view1, view2, temperature=0.1):
    """SimCLR style: the 2N x 2N matrix, the diagonal masked out, targets the other view."""
    z = F.normalize(torch.cat([view1, view2]), dim=1)
    n = len(view1)
    logits = (z @ z.T / temperature).fill_diagonal_(torch.finfo(z.dtype).min)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, targets)


CASES = [
    dict(part="metric_learning", name="info_nce_loss", inputs=PAIRS, ours=lossbook.info_nce_loss,
         peer=cross_entropy_info_nce, peer_name="F.cross_entropy(S / T, arange)"),
    dict(part="metric_learning", name="nt_xent_loss", inputs=PAIRS, ours=lossbook.nt_xent_loss,
         peer=cross_entropy_nt_xent, peer_name="F.cross_entropy (SimCLR 2N form)"),
    dict(part="metric_learning", name="supervised_contrastive_loss", inputs=LABELLED,
         ours=lossbook.supervised_contrastive_loss, peer=pml.SupConLoss(temperature=0.1), peer_name="PML SupConLoss"),
]
