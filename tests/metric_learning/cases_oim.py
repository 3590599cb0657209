"""Battery cases of book/metric_learning/oim.md: the functional oim_loss.

The module ``lossbook.nn.OIMLoss`` holds its lookup table and queue (stateful): its own
tests are in ``test_oim.py``.
"""

import torch
from registry import NEGATIVE, Case, Inputs, _finish, _generator

import lossbook


def features_labels_memories(
    n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, dim=4, num_labeled=5, queue_size=3,
    label_dtype=torch.int64,
) -> Inputs:
    """Unit features ``(n, dim)``, labels ``(n,)`` in ``[-1, num_labeled)`` (-1: unlabelled,
    about a quarter), a lookup table ``(num_labeled, dim)`` and a queue ``(queue_size, dim)``
    of unit vectors; the features differentiable; one loss per sample; ``extreme``: features
    of norm 100 (logits of 3000 with the default scalar)."""
    g = _generator(seed)
    features = torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=1) * (100.0 if extreme else 1.0)
    labels = torch.randint(0, num_labeled, (n,), generator=g)
    labels = torch.where(torch.rand(n, generator=g) < 0.25, -1, labels)
    if n:
        labels[0] = 1  # at least one labelled sample
    table = torch.nn.functional.normalize(torch.randn(num_labeled, dim, generator=g), dim=1)
    queue = torch.nn.functional.normalize(torch.randn(queue_size, dim, generator=g), dim=1)
    return _finish((features, labels.to(label_dtype), table, queue), dtype, device, (0,), (n,))


def _int16_labels_no_queue(n, **kwargs):
    return features_labels_memories(n, label_dtype=torch.int16, queue_size=0, **kwargs)


_int16_labels_no_queue.__name__ = "features_labels_memories"

CASES = [
    Case(lossbook.oim_loss, features_labels_memories, mean_of_none=False,  # the mean is over the labelled samples
         bad_options=NEGATIVE + [({"scalar": 0.0}, ValueError, "scalar must be a positive number, got 0.0"),
                                 ({"scalar": "30"}, TypeError, "scalar must be a number, got str")]),
    Case(lossbook.oim_loss, _int16_labels_no_queue, {"scalar": 10.0, "reduction": "sum"}, "int16,no queue,sum",
         mean_of_none=False),
]
