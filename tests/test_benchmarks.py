"""benchmarks/losses.py runs, covers every loss, and times like against like.

The timings themselves are not asserted (they depend on the machine): they live in
benchmarks/results/, measured as ratios against a peer in one run. (That no loss
synchronizes with a CUDA device is checked for every loss in tests/test_battery.py.)
"""

import importlib.util
import json
import math
import sys
from pathlib import Path

import lossbook

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "losses.py"
spec = importlib.util.spec_from_file_location("benchmark_losses", SCRIPT)
benchmark = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = benchmark  # dataclasses look their module up there
spec.loader.exec_module(benchmark)


def test_every_loss_has_a_benchmark():
    losses = {name for name in lossbook.__all__ if hasattr(getattr(lossbook, name), "nn_module_name")}
    assert {case.name for case in benchmark.CASES} == losses


def test_benchmark_runs_and_compares_the_same_loss(tmp_path):
    output = tmp_path / "results.json"
    rows = benchmark.main(["--device", "cpu", "--scale", "0.002", "--repeats", "1", "--no-compile",
                           "--output", str(output)])
    assert [row["loss"] for row in rows] == [case.name for case in benchmark.CASES]
    assert all(math.isfinite(row["eager_ratio"]) and row["eager_ratio"] > 0 for row in rows)
    # Where the peer is the same loss, both give the same value on the benchmark's inputs.
    assert all(row["agrees"] for row in rows if not row["floor"]), [row["loss"] for row in rows if not row.get("agrees", True)]
    assert json.loads(output.read_text())["rows"] == json.loads(json.dumps(rows))


def test_half_precision_inputs_agree_too(tmp_path):
    rows = benchmark.main(["--device", "cpu", "--dtype", "bfloat16", "--scale", "0.002", "--repeats", "1",
                           "--no-compile", "--output", str(tmp_path / "results.json")])
    assert all(row["agrees"] for row in rows if not row["floor"]), [row["loss"] for row in rows if not row.get("agrees", True)]


def test_small_inputs_measure_the_per_call_overhead(tmp_path):
    rows = benchmark.main(["--small", "--repeats", "1", "--no-compile", "--output", str(tmp_path / "small.json")])
    assert json.loads((tmp_path / "small.json").read_text())["meta"]["small"] is True
    assert all(row["agrees"] for row in rows if not row["floor"]), [row["loss"] for row in rows if not row.get("agrees", True)]
