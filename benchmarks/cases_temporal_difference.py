"""Benchmark cases of book/reinforcement/temporal_difference.md (read by benchmarks/losses.py)."""

import importlib.util
from pathlib import Path

import torch.nn.functional as F

import lossbook

_path = Path(__file__).resolve().parent.parent / "tests" / "reinforcement" / "cases_temporal_difference.py"
_spec = importlib.util.spec_from_file_location("benchmark_cases_temporal_difference_maker", _path)
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)


def mse_on_target(value, next_value, reward, done, gamma=0.99):
    """The usual hand-written TD loss: the target computed (detached) by hand, then F.mse_loss."""
    return F.mse_loss(value, (reward + gamma * (1 - done) * next_value).detach())


def smooth_l1_on_target(value, next_value, reward, done, gamma=0.99):
    """DQN's form: F.smooth_l1_loss (beta 1) against the hand-computed target."""
    return F.smooth_l1_loss(value, (reward + gamma * (1 - done) * next_value).detach())


# About four million transitions at scale 1 (a large replay batch times many heads); 64 x 10 for --small.
TRANSITIONS = (_cases.td_transitions, 1 << 22, {"columns": 1}, {"columns": 10})

CASES = [
    dict(part="reinforcement", name="td_loss", inputs=TRANSITIONS, ours=lossbook.td_loss, peer=mse_on_target,
         peer_name="F.mse_loss on the target", floor=False),
    dict(part="reinforcement", name="td_loss", inputs=TRANSITIONS,
         ours=lambda v, nv, r, d: lossbook.td_loss(v, nv, r, d, kind="huber"), peer=smooth_l1_on_target,
         peer_name="F.smooth_l1_loss on the target", floor=False),
]
