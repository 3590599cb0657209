"""Fixtures shared by every test: the devices to run on, hypothesis settings, the built book."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

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


ROOT = Path(__file__).resolve().parent.parent
MATHJAX = ROOT / ".vendor" / "static" / "mathjax" / "tex-chtml.js"


@pytest.fixture(scope="session")
def html(tmp_path_factory) -> Path:
    """The book built once per pytest run (warnings are errors), shared by test_book and test_browser."""
    if not MATHJAX.exists():
        pytest.fail("MathJax is not vendored: run the tests through `make test`")
    output = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(ROOT), "--path-output", str(output),
               "--builder", "html", "--warningiserror", "--nitpick", "--keep-going"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    warnings = [line for line in result.stdout.splitlines() + result.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert result.returncode == 0 and not warnings, "\n".join(warnings) or result.stdout[-3000:]
    yield output / "_build" / "html"
    shutil.rmtree(output, ignore_errors=True)
