"""Every lossbook loss against a peer: forward + backward time, as ratios from one run.

    python benchmarks/losses.py [--device cuda] [--dtype float32] [--scale 1] [--part NAME] [--no-compile]

Each loss is timed against a peer on the same tensors, eagerly and under torch.compile,
and the ratio (lossbook time / peer time) is what is reported: 1.0 is parity, 2.0 twice
as slow. The peer is the same loss where a reference library has it (torch.nn.functional,
torchvision.ops); where none has it, the peer is the nearest native loss over the same
tensors (marked "floor"), the cost of one fused memory-bound pass that a hand-written
loss cannot beat by much. Results are printed and written to
``benchmarks/results/losses-<device>-<dtype>.json``.

Half-precision inputs are computed in float32 by lossbook (as autocast would); the peer
gets the same inputs cast to float32, so both do the arithmetic of the same width.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.ops

import lossbook

Inputs = Callable[[float, torch.Generator], tuple[torch.Tensor, ...]]


# Inputs at scale 1: about four million loss terms each, a size where the GPU is busy.
def residuals(scale: float, generator: torch.Generator):
    n = int((1 << 22) * scale)
    return torch.randn(n, generator=generator), torch.randn(n, generator=generator)


def class_logits(scale: float, generator: torch.Generator):
    n, classes = int(4096 * scale), 1000
    return torch.randn(n, classes, generator=generator), torch.randint(classes, (n,), generator=generator)


def two_distributions(scale: float, generator: torch.Generator):
    n, classes = int(4096 * scale), 1000
    return torch.randn(n, classes, generator=generator), torch.randn(n, classes, generator=generator)


def binary_logits(scale: float, generator: torch.Generator):
    n = int((1 << 22) * scale)
    return torch.randn(n, generator=generator), torch.randint(2, (n,), generator=generator).float()


def sign_margins(scale: float, generator: torch.Generator):
    scores, labels = binary_logits(scale, generator)
    return scores, 2 * labels - 1


def dense_detection(scale: float, generator: torch.Generator):
    """RetinaNet-like: anchors x 80 classes, about 1% of anchors positive."""
    anchors, classes = int(50_000 * scale), 80
    logits = torch.randn(anchors, classes, generator=generator) - 4
    positive = torch.rand(anchors, generator=generator) < 0.01
    labels = torch.where(positive, torch.randint(classes, (anchors,), generator=generator), classes)
    return logits, labels, torch.rand(anchors, generator=generator)


def boxes(scale: float, generator: torch.Generator):
    n = int((1 << 20) * scale)

    def random_boxes():
        corner = torch.rand(n, 2, generator=generator) * 512
        size = torch.rand(n, 2, generator=generator) * 128 + 16  # no box collapses in bfloat16
        return torch.cat([corner, corner + size], dim=1)

    return random_boxes(), random_boxes()


def one_hot(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Background ``classes`` maps to an all-zero row (mmdetection's convention)."""
    return F.one_hot(labels, classes + 1)[:, :classes].float()


@dataclass
class Case:
    part: str
    name: str
    inputs: Inputs
    ours: Callable
    peer: Callable
    peer_name: str
    floor: bool = False  # the peer is not the same loss (no library has it)


def softmax_distillation(student, teacher, temperature=4.0):
    """The usual hand-written knowledge-distillation loss (Hinton et al.), as a peer."""
    log_q = F.log_softmax(student / temperature, dim=1)
    p = F.softmax(teacher / temperature, dim=1)
    return F.kl_div(log_q, p, reduction="batchmean") * temperature**2


CASES = [
    Case("regression", "l1_loss", residuals, lossbook.l1_loss, F.l1_loss, "F.l1_loss"),
    Case("regression", "mse_loss", residuals, lossbook.mse_loss, F.mse_loss, "F.mse_loss"),
    Case("regression", "smooth_l1_loss", residuals, lossbook.smooth_l1_loss, F.smooth_l1_loss, "F.smooth_l1_loss"),
    Case("regression", "huber_loss", residuals, lossbook.huber_loss, F.huber_loss, "F.huber_loss"),
    Case("regression", "charbonnier_loss", residuals, lossbook.charbonnier_loss, F.mse_loss, "F.mse_loss", floor=True),
    Case("regression", "log_cosh_loss", residuals, lossbook.log_cosh_loss, F.mse_loss, "F.mse_loss", floor=True),
    Case("regression", "quantile_loss", residuals, lambda x, y: lossbook.quantile_loss(x, y, q=0.9),
         F.l1_loss, "F.l1_loss", floor=True),
    Case("classification", "cross_entropy", class_logits, lambda x, y: lossbook.cross_entropy(x, y, label_smoothing=0.1),
         lambda x, y: F.cross_entropy(x, y, label_smoothing=0.1), "F.cross_entropy"),
    Case("classification", "binary_cross_entropy_with_logits", binary_logits, lossbook.binary_cross_entropy_with_logits,
         F.binary_cross_entropy_with_logits, "F.binary_cross_entropy_with_logits"),
    Case("classification", "logistic_loss", sign_margins, lossbook.logistic_loss, F.soft_margin_loss, "F.soft_margin_loss"),
    Case("classification", "hinge_loss", sign_margins, lossbook.hinge_loss, F.soft_margin_loss, "F.soft_margin_loss",
         floor=True),
    Case("classification", "exponential_loss", sign_margins, lossbook.exponential_loss, F.soft_margin_loss,
         "F.soft_margin_loss", floor=True),
    Case("classification", "multiclass_hinge_loss", class_logits, lossbook.multiclass_hinge_loss, F.multi_margin_loss,
         "F.multi_margin_loss"),
    Case("classification", "kl_div", two_distributions,
         lambda x, y: lossbook.kl_div(F.log_softmax(x, 1), F.softmax(y, 1)),
         lambda x, y: F.kl_div(F.log_softmax(x, 1), F.softmax(y, 1), reduction="batchmean"), "F.kl_div"),
    Case("classification", "distillation_loss", two_distributions,
         lambda x, y: lossbook.distillation_loss(x, y, temperature=4.0), softmax_distillation, "F.kl_div (T^2 KD)"),
    Case("classification", "focal_loss", class_logits, lossbook.focal_loss, F.cross_entropy, "F.cross_entropy",
         floor=True),
    Case("classification", "sigmoid_focal_loss", binary_logits, lossbook.sigmoid_focal_loss,
         lambda x, y: torchvision.ops.sigmoid_focal_loss(x, y, reduction="mean"), "torchvision sigmoid_focal_loss"),
    Case("detection", "iou_loss", boxes, lossbook.iou_loss,
         lambda a, b: torchvision.ops.generalized_box_iou_loss(a, b, reduction="mean"), "torchvision giou_loss",
         floor=True),
    Case("detection", "giou_loss", boxes, lossbook.giou_loss,
         lambda a, b: torchvision.ops.generalized_box_iou_loss(a, b, reduction="mean"), "torchvision giou_loss"),
    Case("detection", "diou_loss", boxes, lossbook.diou_loss,
         lambda a, b: torchvision.ops.distance_box_iou_loss(a, b, reduction="mean"), "torchvision diou_loss"),
    Case("detection", "ciou_loss", boxes, lossbook.ciou_loss,
         lambda a, b: torchvision.ops.complete_box_iou_loss(a, b, reduction="mean"), "torchvision ciou_loss"),
    Case("detection", "quality_focal_loss", dense_detection, lossbook.quality_focal_loss,
         lambda x, labels, scores: torchvision.ops.sigmoid_focal_loss(x, one_hot(labels, x.shape[1]), alpha=-1,
                                                                      reduction="mean"),
         "torchvision sigmoid_focal_loss", floor=True),
    Case("detection", "dr_loss", dense_detection,
         lambda x, labels, scores: lossbook.dr_loss(x, (labels + 1) % (x.shape[1] + 1)),
         lambda x, labels, scores: torchvision.ops.sigmoid_focal_loss(x, one_hot(labels, x.shape[1]), reduction="mean"),
         "torchvision sigmoid_focal_loss", floor=True),
]


def timed(step: Callable[[], None], device: torch.device, repeats: int) -> float:
    """Median seconds of one call of ``step``, after three warm-up calls."""
    for _ in range(3):
        step()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return sorted(samples)[len(samples) // 2]


def measure(case: Case, device: torch.device, dtype: torch.dtype, scale: float, repeats: int, modes: list[str]) -> dict:
    generator = torch.Generator().manual_seed(0)
    first, *rest = case.inputs(scale, generator)
    first = first.to(device, dtype).requires_grad_()
    # Targets that are probabilities, boxes or scores take the input's dtype; labels stay integer.
    rest = [t.to(device, dtype) if t.is_floating_point() else t.to(device) for t in rest]
    as_float32 = lambda tensors: [t.float() if t.is_floating_point() else t for t in tensors]  # noqa: E731

    row = {"part": case.part, "loss": case.name, "peer": case.peer_name, "floor": case.floor}
    if not case.floor:  # like is compared with like: the same loss, to the input dtype's precision
        with torch.no_grad():
            ours, peer = case.ours(first, *rest), case.peer(*as_float32([first, *rest]))
        tolerance = 1e-5 if dtype == torch.float32 else 1e-2
        row["agrees"] = bool(torch.allclose(ours.float(), peer.float(), rtol=tolerance, atol=tolerance))
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
        seconds = timed(step(ours, list), device, repeats)
        peer_seconds = timed(step(peer, as_float32), device, repeats)
        row[f"{mode}_seconds"], row[f"{mode}_peer_seconds"] = seconds, peer_seconds
        row[f"{mode}_ratio"] = seconds / peer_seconds
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every input size")
    parser.add_argument("--part", choices=sorted({case.part for case in CASES}), help="only this part")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--output", type=Path, help="where to write the JSON (default benchmarks/results/)")
    args = parser.parse_args(argv)

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    modes = ["eager"] + ([] if args.no_compile else ["compiled"])
    print(f"{'loss':<34}{'peer':<42}{'eager':>7}{'compiled':>10}   (lossbook time / peer time)")
    rows = []
    for case in CASES:
        if args.part and case.part != args.part:
            continue
        row = measure(case, device, dtype, args.scale, args.repeats, modes)
        rows.append(row)
        compiled = f"{row['compiled_ratio']:>10.2f}" if "compiled_ratio" in row else f"{'-':>10}"
        peer = case.peer_name + (" (floor)" if case.floor else "")
        disagrees = "" if row.get("agrees", True) else "   VALUES DIFFER"
        print(f"{case.name:<34}{peer:<42}{row['eager_ratio']:>7.2f}{compiled}{disagrees}")
    eager = [row["eager_ratio"] for row in rows if not row["floor"]]
    if eager:
        print(f"geometric mean of the eager ratios against the same loss: {math.exp(sum(map(math.log, eager)) / len(eager)):.2f}")

    output = args.output or Path(__file__).parent / "results" / f"losses-{device.type}-{args.dtype}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__, "torchvision": torchvision.__version__, "dtype": args.dtype,
        "scale": args.scale, "repeats": args.repeats,
    }
    output.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {output}")
    return rows


if __name__ == "__main__":
    main()
