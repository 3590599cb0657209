"""Benchmark cases of book/metric_learning/triplet.md (read by benchmarks/losses.py).

The mining losses' peer is pytorch-metric-learning's TripletMarginLoss with the matching
miner and reducer on unnormalized Euclidean distances: the same loss, so the values must
agree. Margin 4: with 128-d embeddings of the registry's maker (classes about 11 apart
within, 19 across) a margin of 1 leaves every triplet easy and both losses 0.
"""

import torch.nn.functional as F
from pytorch_metric_learning import distances, losses, miners, reducers
from registry import embedding_tuples, embeddings_labels

import lossbook

MARGIN = 4.0
LP = distances.LpDistance(normalize_embeddings=False)
_mean = losses.TripletMarginLoss(margin=MARGIN, distance=LP, reducer=reducers.MeanReducer())
_hard_miner = miners.BatchHardMiner(distance=LP)


def pml_batch_hard(embeddings, labels):
    """PML: TripletMarginLoss + BatchHardMiner + MeanReducer (the mean over valid anchors)."""
    return _mean(embeddings, labels, _hard_miner(embeddings, labels))


def pml_batch_all(embeddings, labels):
    """PML: TripletMarginLoss without a miner (all triplets) + MeanReducer."""
    return _mean(embeddings, labels)


_semihard_miner = miners.TripletMarginMiner(margin=MARGIN, type_of_triplets="semihard", distance=LP)


def pml_semi_hard(embeddings, labels):
    """PML: TripletMarginLoss + TripletMarginMiner("semihard"): every triplet of the semi-hard
    ring averaged, not FaceNet's one negative per positive pair (so a floor, not the same loss)."""
    return losses.TripletMarginLoss(margin=MARGIN, distance=LP)(embeddings, labels, _semihard_miner(embeddings, labels))


def _triplets(n, **kwargs):
    return embedding_tuples(n, count=3, **kwargs)


# batch 1024 of 128-d embeddings in 32 classes at scale 1; 64 of 10-d in 8 classes for --small.
TRIPLETS = (_triplets, 1024, {"dim": 128}, {"dim": 10})
LABELLED = (embeddings_labels, 1024, {"dim": 128, "classes": 32}, {"dim": 10, "classes": 8})

CASES = [
    dict(part="metric_learning", name="triplet_loss", inputs=TRIPLETS, ours=lossbook.triplet_loss,
         peer=F.triplet_margin_loss, peer_name="F.triplet_margin_loss", floor=False),
    dict(part="metric_learning", name="batch_hard_triplet_loss", inputs=LABELLED,
         ours=lambda e, y: lossbook.batch_hard_triplet_loss(e, y, margin=MARGIN), peer=pml_batch_hard,
         peer_name="PML TripletMarginLoss + BatchHardMiner, MeanReducer", floor=False),
    dict(part="metric_learning", name="batch_all_triplet_loss", inputs=LABELLED,
         ours=lambda e, y: lossbook.batch_all_triplet_loss(e, y, margin=MARGIN), peer=pml_batch_all,
         peer_name="PML TripletMarginLoss (all triplets), MeanReducer", floor=False),
    dict(part="metric_learning", name="semi_hard_triplet_loss", inputs=LABELLED,
         ours=lambda e, y: lossbook.semi_hard_triplet_loss(e, y, margin=MARGIN), peer=pml_semi_hard,
         peer_name="PML TripletMarginLoss + TripletMarginMiner(semihard)", floor=True),
]
