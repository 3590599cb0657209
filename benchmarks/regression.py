"""Part I against torch.nn.functional: forward + backward time, as ratios from one run.

    python benchmarks/regression.py [--device cuda] [--numel 16777216] [--dtype float32]

Each lossbook loss is timed against its native PyTorch peer (or, where PyTorch has none,
against F.mse_loss as the memory-bound floor) on the same tensors, eagerly and under
torch.compile. Results are printed and written to benchmarks/results/regression-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import lossbook

# name: (lossbook function, its options, the peer, the peer's options)
CASES = {
    "l1_loss": (lossbook.l1_loss, {}, F.l1_loss, {}),
    "mse_loss": (lossbook.mse_loss, {}, F.mse_loss, {}),
    "smooth_l1_loss": (lossbook.smooth_l1_loss, {"beta": 1.0}, F.smooth_l1_loss, {"beta": 1.0}),
    "huber_loss": (lossbook.huber_loss, {"delta": 1.0}, F.huber_loss, {"delta": 1.0}),
    "charbonnier_loss": (lossbook.charbonnier_loss, {"eps": 1e-3}, F.mse_loss, {}),
    "log_cosh_loss": (lossbook.log_cosh_loss, {}, F.mse_loss, {}),
    "quantile_loss": (lossbook.quantile_loss, {"q": 0.9}, F.l1_loss, {}),
}


def timed(fn, input, target, device, repeats):
    """Median seconds of one forward + backward."""
    def step():
        input.grad = None
        fn(input, target).backward()

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--numel", type=int, default=1 << 22)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    generator = torch.Generator().manual_seed(0)
    input = torch.randn(args.numel, generator=generator).to(device, dtype).requires_grad_()
    target = torch.randn(args.numel, generator=generator).to(device, dtype)
    rows = []
    print(f"{'loss':<18}{'peer':<16}{'eager ratio':>12}{'compiled ratio':>16}   (lossbook time / peer time)")
    for name, (ours, options, peer, peer_options) in CASES.items():
        row = {"loss": name, "peer": peer.__name__, "options": options}
        for mode in ["eager"] + ([] if args.no_compile else ["compiled"]):
            wrap = torch.compile if mode == "compiled" else (lambda f: f)
            mine = wrap(lambda a, b, f=ours: f(a, b, **options))
            # The peer gets float32 too, as autocast would give it, so both return float32.
            theirs = wrap(lambda a, b, f=peer: f(a.float(), b.float(), **peer_options))
            row[f"{mode}_seconds"] = timed(mine, input, target, device, args.repeats)
            row[f"{mode}_peer_seconds"] = timed(theirs, input, target, device, args.repeats)
            row[f"{mode}_ratio"] = row[f"{mode}_seconds"] / row[f"{mode}_peer_seconds"]
        rows.append(row)
        compiled = f"{row['compiled_ratio']:>16.2f}" if "compiled_ratio" in row else f"{'-':>16}"
        print(f"{name:<18}{peer.__name__:<16}{row['eager_ratio']:>12.2f}{compiled}")
    out = Path(__file__).parent / "results" / f"regression-{device.type}-{args.dtype}.json"
    out.parent.mkdir(exist_ok=True)
    meta = {"device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine(),
            "torch": torch.__version__, "numel": args.numel, "dtype": args.dtype}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


if __name__ == "__main__":
    main()
