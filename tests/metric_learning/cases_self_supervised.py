"""Battery cases of book/metric_learning/self_supervised.md: InfoNCE, NT-Xent, supervised contrastive."""

from registry import NEGATIVE, Case, Inputs, embedding_tuples, embeddings_labels

import lossbook


def query_key(n, **kwargs) -> Inputs:
    """Queries and keys ``(n, 4)``, key i near query i; one loss per pair."""
    return embedding_tuples(n, count=2, **kwargs)


def two_views(n, **kwargs) -> Inputs:
    """Two views ``(n, 4)`` of n samples; one loss per view, ``(2n,)``."""
    pair = embedding_tuples(n, count=2, **kwargs)
    return Inputs(pair.tensors, pair.differentiable, (2 * n,))


TEMPERATURE = [({"temperature": 0.0}, ValueError, "temperature must be a positive number, got 0.0"),
               ({"temperature": -0.1}, ValueError, "temperature must be a positive number, got -0.1"),
               ({"temperature": "0.1"}, TypeError, "temperature must be a number, got str")]

CASES = [
    Case(lossbook.info_nce_loss, query_key,
         bad_options=NEGATIVE + TEMPERATURE + [({"symmetric": 1}, TypeError, "symmetric must be a bool, got int")]),
    Case(lossbook.info_nce_loss, query_key, {"temperature": 0.05, "symmetric": True}, "symmetric,T=0.05"),
    Case(lossbook.nt_xent_loss, two_views, bad_options=NEGATIVE + TEMPERATURE),
    Case(lossbook.nt_xent_loss, two_views, {"temperature": 0.5}, "T=0.5"),
    Case(lossbook.supervised_contrastive_loss, embeddings_labels, mean_of_none=False, bad_options=NEGATIVE + TEMPERATURE),
    Case(lossbook.supervised_contrastive_loss, lambda n, **kw: embeddings_labels(n, classes=6, **kw),
         {"temperature": 0.05}, "T=0.05,singletons", mean_of_none=False),
]
