"""Fixtures shared by every test: the devices to run on and hypothesis settings."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "lossbook",
    deadline=None,
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "60")),
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile("lossbook")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Every test that takes ``device`` runs on the CPU and, when present, on CUDA."""
    return torch.device(request.param)
