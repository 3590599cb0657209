"""Battery cases of book/reinforcement/temporal_difference.md (read by tests/registry.py).

``truncated`` is per-transition data of the batch's shape, which a Case's fixed options
cannot hold for every batch size the battery uses; its compile, vmap and half-precision
behaviour is tested in test_temporal_difference.py.
"""

import torch
from registry import Case, Inputs

import lossbook


def td_transitions(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, columns=None, done_dtype=None):
    """Values, bootstrap values, rewards ``(n,)`` (or ``(n, columns)``) and 0/1 ends of episodes
    (floating, or ``done_dtype``: bool, int32, ...); only ``value`` takes a gradient (the
    target is detached by design); ``extreme``: values and rewards of about +-1e4."""
    g = torch.Generator().manual_seed(seed)
    shape = (n,) if columns is None else (n, columns)
    scale = 1e4 if extreme else 2.0
    value, next_value, reward = (scale * torch.randn(shape, generator=g) for _ in range(3))
    done = (torch.rand(shape, generator=g) < 0.3).double()
    if done_dtype is not None:
        done = done.to(done_dtype)
    moved = tuple(t.to(device=device, dtype=dtype) for t in (value, next_value, reward)) + (done.to(device),)
    if done_dtype is None:
        moved = moved[:3] + (moved[3].to(dtype),)
    return Inputs(moved, (0,), shape)


def _with(**bound):
    def make(n, **kwargs):
        return td_transitions(n, **bound, **kwargs)

    make.__name__ = "td_transitions"
    return make


CASES = [
    Case(lossbook.td_loss, td_transitions, {"gamma": 0.9},
         bad_options=[({"gamma": -0.1}, ValueError, "gamma must be a non-negative number, got -0.1"),
                      ({"gamma": 1.5}, ValueError, r"gamma must be in \[0, 1\], got 1.5"),
                      ({"gamma": float("nan")}, ValueError, "gamma must be a non-negative number, got nan"),
                      ({"gamma": "0.9"}, TypeError, "gamma must be a number, got str"),
                      ({"kind": "l1"}, ValueError, "kind must be 'mse' or 'huber', got 'l1'"),
                      ({"kind": None}, ValueError, "kind must be 'mse' or 'huber', got None")]),
    Case(lossbook.td_loss, _with(columns=3), {"gamma": 0.99, "kind": "huber"}, "huber,(n,3)"),
    Case(lossbook.td_loss, _with(done_dtype=torch.bool), {"gamma": 1.0, "reduction": "sum"}, "bool done,gamma=1"),
    Case(lossbook.td_loss, _with(columns=2, done_dtype=torch.int32), {"gamma": 0.0, "kind": "huber"},
         "int32 done,gamma=0"),
]
