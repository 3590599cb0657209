"""Every lossbook loss against a peer: forward + backward time, as ratios from one run.

    python benchmarks/losses.py [--device cuda] [--dtype float32] [--scale 1] [--part NAME] [--no-compile]
    python benchmarks/losses.py --small     # per-call overhead: 64 x 10 inputs on the CPU
    python benchmarks/losses.py --merge a.json b.json --output c.json     # runs of single parts, joined

Each loss is timed against a peer on the same tensors, eagerly and under torch.compile,
and the ratio (lossbook time / peer time) is what is reported: 1.0 is parity, 2.0 twice
as slow. Beside the time, the memory of both, counted rather than timed: the bytes
autograd saves for backward and the peak of what forward + backward allocate, beyond the
inputs (``lossbook.conventions.backward``), in units of the first input's size. The peer is the same loss where a reference library has it (torch.nn.functional,
torchvision.ops); where none has it, the peer is the nearest native loss over the same
tensors (marked "floor"), the cost of one fused memory-bound pass that a hand-written
loss cannot beat by much. ``--small`` measures what a call costs beyond its arithmetic
(argument checks, extra kernel launches): 64 samples of 10 values or classes, on one CPU
thread. Times are medians of ``torch.utils.benchmark.Timer`` blocks (warm-up, the current
thread count, accelerator synchronization). Results are printed and written to
``benchmarks/results/losses-<device>-<dtype>[-small].json``.

The inputs come from the makers of ``tests/registry.py``, the ones the test battery uses.
Half-precision inputs are computed in float32 by lossbook (as autocast would); the peer
gets the same inputs cast to float32, so both do the arithmetic of the same width.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import statistics
import sys
from datetime import datetime, timezone
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.ops
from torch.utils import benchmark

import lossbook
from lossbook.conventions.backward import peak_allocated_bytes, saved_tensor_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from registry import (  # noqa: E402  (the shared input makers)
    binary_logits,
    boxes,
    class_logits,
    dense_detection,
    log_probabilities,
    ranking_labels,
    residuals,
    sign_margins,
    two_logits,
)


def one_hot(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Background ``classes`` maps to an all-zero row (mmdetection's convention)."""
    return F.one_hot(labels, classes + 1)[:, :classes].float()


# (maker, rows at scale 1, its size options at scale 1, and for --small): about four
# million loss terms each at scale 1, a size where a GPU is busy; 64 x 10 for --small.
RESIDUALS = (residuals, 1 << 22, {"columns": 1}, {"columns": 10})
MARGINS = (sign_margins, 1 << 22, {"columns": 1}, {"columns": 10})
BINARY = (binary_logits, 1 << 22, {"columns": 1}, {"columns": 10})
CLASSES = (class_logits, 4096, {"classes": 1000}, {"classes": 10})
DISTRIBUTIONS = (log_probabilities, 4096, {"classes": 1000}, {"classes": 10})
LOGIT_PAIRS = (two_logits, 4096, {"classes": 1000}, {"classes": 10})
BOXES = (boxes, 1 << 20, {}, {})
DETECTION = (dense_detection, 50_000, {"classes": 80}, {"classes": 10})  # RetinaNet-like anchors x classes
RANKING = (ranking_labels, 50_000, {"classes": 80}, {"classes": 10})


@dataclass
class Case:
    part: str
    name: str
    inputs: tuple
    ours: Callable
    peer: Callable
    peer_name: str
    floor: bool = False  # the peer is not the same loss (no library has it)

    def make(self, scale: float, small: bool, dtype: torch.dtype, device: torch.device):
        maker, rows, sizes, small_sizes = self.inputs
        n = 64 if small else max(int(rows * scale), 1)
        return maker(n, dtype=dtype, device=device, seed=0, **(small_sizes if small else sizes)).tensors


def softmax_distillation(student, teacher, temperature=4.0):
    """The usual hand-written knowledge-distillation loss (Hinton et al.), as a peer."""
    log_q = F.log_softmax(student / temperature, dim=1)
    p = F.softmax(teacher / temperature, dim=1)
    return F.kl_div(log_q, p, reduction="batchmean") * temperature**2


CASES = [
    Case("regression", "l1_loss", RESIDUALS, lossbook.l1_loss, F.l1_loss, "F.l1_loss"),
    Case("regression", "mse_loss", RESIDUALS, lossbook.mse_loss, F.mse_loss, "F.mse_loss"),
    Case("regression", "smooth_l1_loss", RESIDUALS, lossbook.smooth_l1_loss, F.smooth_l1_loss, "F.smooth_l1_loss"),
    Case("regression", "huber_loss", RESIDUALS, lossbook.huber_loss, F.huber_loss, "F.huber_loss"),
    Case("regression", "charbonnier_loss", RESIDUALS, lossbook.charbonnier_loss, F.mse_loss, "F.mse_loss", floor=True),
    Case("regression", "log_cosh_loss", RESIDUALS, lossbook.log_cosh_loss, F.mse_loss, "F.mse_loss", floor=True),
    Case("regression", "quantile_loss", RESIDUALS, lambda x, y: lossbook.quantile_loss(x, y, q=0.9),
         F.l1_loss, "F.l1_loss", floor=True),
    Case("classification", "cross_entropy", CLASSES, lambda x, y: lossbook.cross_entropy(x, y, label_smoothing=0.1),
         lambda x, y: F.cross_entropy(x, y, label_smoothing=0.1), "F.cross_entropy"),
    Case("classification", "binary_cross_entropy_with_logits", BINARY, lossbook.binary_cross_entropy_with_logits,
         F.binary_cross_entropy_with_logits, "F.binary_cross_entropy_with_logits"),
    Case("classification", "logistic_loss", MARGINS, lossbook.logistic_loss, F.soft_margin_loss, "F.soft_margin_loss"),
    Case("classification", "hinge_loss", MARGINS, lossbook.hinge_loss, F.soft_margin_loss, "F.soft_margin_loss",
         floor=True),
    Case("classification", "exponential_loss", MARGINS, lossbook.exponential_loss, F.soft_margin_loss,
         "F.soft_margin_loss", floor=True),
    Case("classification", "multiclass_hinge_loss", CLASSES, lossbook.multiclass_hinge_loss, F.multi_margin_loss,
         "F.multi_margin_loss"),
    Case("classification", "kl_div", DISTRIBUTIONS, lossbook.kl_div,
         lambda x, y: F.kl_div(x, y, reduction="batchmean"), "F.kl_div"),
    Case("classification", "distillation_loss", LOGIT_PAIRS,
         lambda x, y: lossbook.distillation_loss(x, y, temperature=4.0), softmax_distillation, "F.kl_div (T^2 KD)"),
    Case("classification", "focal_loss", CLASSES, lossbook.focal_loss, F.cross_entropy, "F.cross_entropy",
         floor=True),
    Case("classification", "sigmoid_focal_loss", BINARY, lossbook.sigmoid_focal_loss,
         lambda x, y: torchvision.ops.sigmoid_focal_loss(x, y, reduction="mean"), "torchvision sigmoid_focal_loss"),
    Case("detection", "iou_loss", BOXES, lossbook.iou_loss,
         lambda a, b: torchvision.ops.generalized_box_iou_loss(a, b, reduction="mean"), "torchvision giou_loss",
         floor=True),
    Case("detection", "giou_loss", BOXES, lossbook.giou_loss,
         lambda a, b: torchvision.ops.generalized_box_iou_loss(a, b, reduction="mean"), "torchvision giou_loss"),
    Case("detection", "diou_loss", BOXES, lossbook.diou_loss,
         lambda a, b: torchvision.ops.distance_box_iou_loss(a, b, reduction="mean"), "torchvision diou_loss"),
    Case("detection", "ciou_loss", BOXES, lossbook.ciou_loss,
         lambda a, b: torchvision.ops.complete_box_iou_loss(a, b, reduction="mean"), "torchvision ciou_loss"),
    Case("detection", "quality_focal_loss", DETECTION, lossbook.quality_focal_loss,
         lambda x, labels, scores: torchvision.ops.sigmoid_focal_loss(x, one_hot(labels, x.shape[1]), alpha=-1,
                                                                      reduction="mean"),
         "torchvision sigmoid_focal_loss", floor=True),
    Case("detection", "dr_loss", RANKING, lossbook.dr_loss,
         lambda x, labels: torchvision.ops.sigmoid_focal_loss(x, one_hot(labels.clamp(min=0), x.shape[1]),
                                                             reduction="mean"),
         "torchvision sigmoid_focal_loss", floor=True),
]


def chapter_cases(folder: Path = Path(__file__).resolve().parent) -> list[Case]:
    """Cases of the later parts, one file per chapter: ``benchmarks/cases_<chapter>.py``
    holds ``CASES``, a list of dicts with the fields of :class:`Case` (so that it needs
    nothing from this script, and chapters written side by side never edit one file)."""
    found = []
    for path in sorted(folder.glob("cases_*.py")):
        spec = importlib.util.spec_from_file_location(f"benchmark_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found += [Case(**fields) for fields in module.CASES]
    return found


CASES += chapter_cases()


def timed(steps: list[Callable[[], None]], repeats: int) -> list[float]:
    """Median seconds of one call of each step, by ``torch.utils.benchmark.Timer``.

    Three calls of each first (a compiled step compiles there, outside the timing); then
    ``blocked_autorange`` chooses, for each step, how many calls make one block (enough
    that the timer's own overhead is negligible, or the block lasts ``repeats`` x 2 ms: one
    call of a large loss, hundreds of a small one). The timer synchronizes an accelerator
    around each block and runs with the current thread count (its default is one thread).
    Then the steps' blocks alternate until each has at least ``repeats``, so that a change
    of the machine's load hits both sides of a ratio alike; the median block, per call, is
    returned for each step.
    """
    for step in steps:
        for _ in range(3):
            step()
    timers = [benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=torch.get_num_threads())
              for step in steps]
    measurements = [timer.blocked_autorange(min_run_time=0.002 * repeats) for timer in timers]
    times = [list(measurement.times) for measurement in measurements]
    while min(map(len, times)) < repeats:
        for timer, measurement, samples in zip(timers, measurements, times):
            samples += timer.timeit(measurement.number_per_run).times
    return [statistics.median(samples) for samples in times]


def measure(
    case: Case, device: torch.device, dtype: torch.dtype, scale: float, repeats: int, modes: list[str], small: bool = False
) -> dict:
    # Targets that are probabilities, boxes or scores take the input's dtype; labels stay integer.
    first, *rest = case.make(scale, small, dtype, device)
    first = first.requires_grad_()
    as_float32 = lambda tensors: [t.float() if t.is_floating_point() else t for t in tensors]  # noqa: E731

    row = {"part": case.part, "loss": case.name, "peer": case.peer_name, "floor": case.floor}
    if not case.floor:  # like is compared with like: the same loss, to the input dtype's precision
        with torch.no_grad():
            ours, peer = case.ours(first, *rest), case.peer(*as_float32([first, *rest]))
        tolerance = 1e-5 if dtype == torch.float32 else 1e-2
        row["agrees"] = bool(torch.allclose(ours.float(), peer.float(), rtol=tolerance, atol=tolerance))
    # Memory, counted (not timed): bytes saved for backward and the peak of what forward +
    # backward allocate, beyond the inputs, for both (lossbook.conventions.backward).
    for prefix, fn, tensors in (("", case.ours, [first, *rest]), ("peer_", case.peer, as_float32([first, *rest]))):
        row[f"{prefix}saved_bytes"] = saved_tensor_bytes(fn, *tensors)
        row[f"{prefix}peak_bytes"] = peak_allocated_bytes(lambda *t: fn(*t).sum(), *tensors)
        first.grad = None
    row["input_bytes"] = first.nbytes
    for mode in modes:
        wrap = torch.compile if mode == "compiled" else (lambda f: f)
        ours, peer = wrap(case.ours), wrap(case.peer)

        def step(fn, cast):
            def run():
                first.grad = None
                fn(*cast([first, *rest])).backward()
            return run

        if mode == "compiled":
            torch._dynamo.reset()  # each case compiles afresh, not against the last case's cache
        seconds, peer_seconds = timed([step(ours, list), step(peer, as_float32)], repeats)
        row[f"{mode}_seconds"], row[f"{mode}_peer_seconds"] = seconds, peer_seconds
        row[f"{mode}_ratio"] = seconds / peer_seconds
    return row


def merge(paths: list[Path], output: Path | None) -> list[dict]:
    """One results file from several runs (say, the parts run one by one, some without
    ``torch.compile``): the rows in the order of ``CASES``, each run's meta kept under "runs"."""
    if output is None:
        raise SystemExit("--merge needs --output")
    runs = [json.loads(path.read_text()) for path in paths]
    order = {(case.name, case.peer_name): index for index, case in enumerate(CASES)}
    rows = sorted((row for run in runs for row in run["rows"]), key=lambda row: order.get((row["loss"], row["peer"]), len(order)))
    meta = dict(runs[0]["meta"], runs=[dict(run["meta"], file=path.name, losses=len(run["rows"])) for path, run in zip(paths, runs)])
    output.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {output}: {len(rows)} rows from {len(runs)} runs")
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every input size")
    parser.add_argument("--part", choices=sorted({case.part for case in CASES}), help="only this part")
    parser.add_argument("--repeats", type=int, default=20,
                        help="at least this many timed blocks per loss and way")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--small", action="store_true", help="64 x 10 inputs on one CPU thread: per-call overhead")
    parser.add_argument("--output", type=Path, help="where to write the JSON (default benchmarks/results/)")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                        help="join the rows of earlier runs (e.g. one per --part) into --output, in the cases' order")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.output)

    if args.small:
        args.device = "cpu"
        torch.set_num_threads(1)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    modes = ["eager"] + ([] if args.no_compile else ["compiled"])
    print(f"{'loss':<34}{'peer':<42}{'eager':>7}{'compiled':>10}{'saved':>9}{'peak':>13}"
          "   (time ratios; memory: input sizes, lossbook/peer)")
    rows = []
    for case in CASES:
        if args.part and case.part != args.part:
            continue
        row = measure(case, device, dtype, args.scale, args.repeats, modes, args.small)
        rows.append(row)
        compiled = f"{row['compiled_ratio']:>10.2f}" if "compiled_ratio" in row else f"{'-':>10}"
        peer = case.peer_name + (" (floor)" if case.floor else "")
        disagrees = "" if row.get("agrees", True) else "   VALUES DIFFER"
        memory = "".join(
            f" {row[key] / row['input_bytes']:>5.1f}/{row['peer_' + key] / row['input_bytes']:<6.1f}"
            for key in ("saved_bytes", "peak_bytes")
        )
        print(f"{case.name:<34}{peer:<42}{row['eager_ratio']:>7.2f}{compiled}  {memory}{disagrees}")
    eager = [row["eager_ratio"] for row in rows if not row["floor"]]
    if eager:
        print(f"geometric mean of the eager ratios against the same loss: {math.exp(sum(map(math.log, eager)) / len(eager)):.2f}")

    suffix = "-small" if args.small else ""
    output = args.output or Path(__file__).parent / "results" / f"losses-{device.type}-{args.dtype}{suffix}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__, "torchvision": torchvision.__version__, "dtype": args.dtype,
        "scale": args.scale, "repeats": args.repeats, "small": args.small, "threads": torch.get_num_threads(),
        "timer": "torch.utils.benchmark.Timer.blocked_autorange, median block",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    output.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {output}")
    return rows


if __name__ == "__main__":
    main()
