"""Battery cases of book/metric_learning/triplet.md (read by tests/registry.py)."""

import torch
from registry import Case, Inputs, embedding_tuples, embeddings_labels

import lossbook

# The mining losses' "mean" is not the mean of their "none" output: batch hard averages
# over the valid anchors only, batch all and semi-hard over triplets / positive pairs,
# while "none" gives one number per anchor.


def _labels_as(dtype):
    """embeddings_labels with labels of another integer dtype."""

    def make(n, **kwargs):
        inputs = embeddings_labels(n, **kwargs)
        embeddings, labels = inputs.tensors
        return Inputs((embeddings, labels.to(dtype)), inputs.differentiable, inputs.none_shape)

    make.__name__ = f"embeddings_labels_{str(dtype).removeprefix('torch.')}"
    return make


def _tuples(n, **kwargs):
    return embedding_tuples(n, count=3, **kwargs)


_tuples.__name__ = "embedding_tuples"
MARGIN_REFUSALS = [({"margin": -1.0}, ValueError, "margin must be a non-negative number, got -1.0"),
                   ({"margin": float("nan")}, ValueError, "margin must be a non-negative number, got nan"),
                   ({"margin": "1"}, TypeError, "margin must be a number, got str")]

CASES = [
    Case(lossbook.triplet_loss, _tuples, {"margin": 1.0},
         bad_options=[({"margin": 0.0}, ValueError, "margin must be a positive number, got 0.0"),
                      ({"p": -1}, ValueError, "p must be a positive number, got -1"),
                      ({"eps": -1e-6}, ValueError, "eps must be a non-negative number"),
                      ({"swap": 1}, TypeError, "swap must be True or False, got 1")]),
    Case(lossbook.triplet_loss, _tuples, {"margin": 2.0, "p": 1, "swap": True}, "p=1,swap,margin=2"),
    Case(lossbook.triplet_loss, _tuples, {"margin": 0.5, "p": 3.0, "eps": 0.0}, "p=3,eps=0"),
    Case(lossbook.batch_hard_triplet_loss, embeddings_labels, {"margin": 1.0}, mean_of_none=False,
         bad_options=[*MARGIN_REFUSALS, ({"soft": "yes"}, TypeError, "soft must be True or False, got 'yes'")]),
    Case(lossbook.batch_hard_triplet_loss, _labels_as(torch.int32), {"margin": 0.0, "soft": True}, "soft,int32 labels",
         mean_of_none=False),
    Case(lossbook.batch_all_triplet_loss, embeddings_labels, {"margin": 1.0}, mean_of_none=False,
         bad_options=[*MARGIN_REFUSALS,
                      ({"mean_over": "nonzero"}, ValueError, "mean_over must be 'all' or 'positive', got 'nonzero'")]),
    Case(lossbook.batch_all_triplet_loss, _labels_as(torch.uint8), {"margin": 0.5, "mean_over": "positive"},
         "positive,uint8 labels", mean_of_none=False),
    Case(lossbook.semi_hard_triplet_loss, embeddings_labels, {"margin": 1.0}, mean_of_none=False,
         bad_options=MARGIN_REFUSALS),
    Case(lossbook.semi_hard_triplet_loss, _labels_as(torch.int16), {"margin": 0.2}, "int16 labels",
         mean_of_none=False),
]
