"""SSIM loss, forward + backward: lossbook against pytorch_msssim and kornia.

    python benchmarks/ssim.py                    # CPU, 16 x 3 x 256 x 256, one thread and all threads
    python benchmarks/ssim.py --device cuda      # 16 x 3 x 512 x 512

Times ``ssim_loss`` (``1 - SSIM``, an 11 x 11 Gaussian window, valid positions),
``1 - pytorch_msssim.ssim`` (the same value) and ``kornia.losses.ssim_loss`` (its own
definition: ``(1 - SSIM) / 2`` over a reflect-padded map) on the same float32 images, the
gradient taken with respect to the input, with ``torch.utils.benchmark`` (medians of
blocked runs, after warm-up). Reports the ratios peer time / lossbook time (above 1:
lossbook is faster) and writes ``benchmarks/results/ssim-<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import kornia
import pytorch_msssim
import torch
import torch.utils.benchmark as benchmark

import lossbook

LOSSES = {
    "lossbook": lambda x, y: lossbook.ssim_loss(x, y, data_range=1.0),
    "pytorch_msssim": lambda x, y: 1 - pytorch_msssim.ssim(x, y, data_range=1.0),
    "kornia": lambda x, y: kornia.losses.ssim_loss(x, y, 11, max_val=1.0),
}


def images(shape, device):
    g = torch.Generator().manual_seed(0)
    target = torch.rand(shape, generator=g)
    input = (target + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)
    return input.to(device), target.to(device)


def time_all(shape, device, threads, min_run_time):
    input, target = images(shape, device)
    input.requires_grad_()
    agree = abs(LOSSES["lossbook"](input, target).item() - LOSSES["pytorch_msssim"](input, target).item())
    row = {"shape": list(shape), "threads": threads, "lossbook_vs_pytorch_msssim_abs_diff": agree}
    for name, loss in LOSSES.items():
        def step(loss=loss):
            input.grad = None
            loss(input, target).backward()
        step()
        timer = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=threads)
        row[f"{name}_seconds"] = timer.blocked_autorange(min_run_time=min_run_time).median
    for name in ("pytorch_msssim", "kornia"):
        row[f"{name}_over_lossbook"] = row[f"{name}_seconds"] / row["lossbook_seconds"]
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, help="image side (default 256 on the CPU, 512 on a GPU)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--min-run-time", type=float, default=2.0)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    size = args.size or (256 if device.type == "cpu" else 512)
    shape = (args.batch, 3, size, size)
    threads = [1, torch.get_num_threads()] if device.type == "cpu" else [torch.get_num_threads()]
    rows = []
    for count in dict.fromkeys(threads):
        row = time_all(shape, device, count, args.min_run_time)
        rows.append(row)
        print(f"{tuple(shape)} on {device.type}, {count} thread(s): lossbook {1e3 * row['lossbook_seconds']:.1f} ms, "
              f"pytorch_msssim {1e3 * row['pytorch_msssim_seconds']:.1f} ms ({row['pytorch_msssim_over_lossbook']:.2f}x), "
              f"kornia {1e3 * row['kornia_seconds']:.1f} ms ({row['kornia_over_lossbook']:.2f}x)")
    meta = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__, "kornia": kornia.__version__, "pytorch_msssim": getattr(pytorch_msssim, "__version__", "?"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    output = args.output or Path(__file__).parent / "results" / f"ssim-{device.type}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {output}")
    return rows


if __name__ == "__main__":
    main()
