"""linear_cross_entropy against the materialized loss and PyTorch's chunked path: time and memory.

    python benchmarks/linear_cross_entropy.py [--n 4096] [--d 128] [--vocabularies 8000 16000 32000]
                                              [--dtype float32] [--repeats 3]

Forward + backward of the cross entropy of a linear layer's output, three ways:
``eager`` (``F.cross_entropy(h @ W.T, y)``, the logits in memory), ``torch_chunked``
(``F.linear_cross_entropy(..., options=torch.nn.LinearCrossEntropyOptions())``, torch >= 2.13)
and ``lossbook`` (``lossbook.linear_cross_entropy``). Each way runs in its own process, so
that the memory of one does not hide another's. Memory is the growth of the process's
peak resident memory during one call (Linux: /proc/self/clear_refs resets the peak;
allocations of 64 kB and more are mapped one by one, so freed memory leaves the peak);
time is the median of ``--repeats`` calls after a warm-up, with torch's default threads.
Writes ``benchmarks/results/linear_cross_entropy-cpu-<dtype>.json``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

WAYS = ("eager", "torch_chunked", "lossbook")


def status(field: str) -> int:
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(field))


def measure(way: str, n: int, d: int, v: int, dtype_name: str, repeats: int) -> dict:
    """One way at one size, in this process: memory growth of one call, median time."""
    import torch
    import torch.nn.functional as F

    import lossbook

    dtype = getattr(torch, dtype_name)
    torch.manual_seed(0)
    h = torch.randn(n, d, dtype=dtype, requires_grad=True)
    w = (torch.randn(v, d, dtype=dtype) / d**0.5).requires_grad_()
    y = torch.randint(0, v, (n,))
    options = torch.nn.LinearCrossEntropyOptions()
    loss_fn = {
        "eager": lambda: F.cross_entropy((h @ w.T).float(), y),
        "torch_chunked": lambda: F.linear_cross_entropy(h, w, y, options=options),
        "lossbook": lambda: lossbook.linear_cross_entropy(h, w, y),
    }[way]

    def step():
        loss = loss_fn()
        loss.backward()
        h.grad = w.grad = None
        return loss.item()

    # M_MMAP_THRESHOLD: map allocations of 64 kB and more one by one, so that freed memory
    # leaves the process and the peak counts what is live (set before the warm-up, so that
    # the warm-up leaves no freed heap for the measured call to reuse unseen).
    ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 16)
    value = step()  # warm-up: once-only allocations, kernels
    before = status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    step()
    growth = status("VmHWM:") - before
    ctypes.CDLL("libc.so.6").mallopt(-3, 32 << 20)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"way": way, "n": n, "d": d, "v": v, "loss": value, "seconds": statistics.median(times),
            "memory_growth_bytes": growth}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--vocabularies", type=int, nargs="+", default=[8000, 16000, 32000])
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--one", nargs=2, metavar=("WAY", "V"), help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], args.n, args.d, int(args.one[1]), args.dtype, args.repeats)))
        return []
    rows = []
    for v in args.vocabularies:
        for way in WAYS:
            child = [sys.executable, __file__, "--one", way, str(v), "--n", str(args.n), "--d", str(args.d),
                     "--dtype", args.dtype, "--repeats", str(args.repeats)]
            rows.append(json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout))
        by_way = {row["way"]: row for row in rows[-3:]}
        for row in rows[-3:]:
            row["time_vs_eager"] = row["seconds"] / by_way["eager"]["seconds"]
            row["memory_vs_torch_chunked"] = row["memory_growth_bytes"] / max(by_way["torch_chunked"]["memory_growth_bytes"], 1)
    print(f"{'V':>7} {'way':14} {'seconds':>8} {'x eager':>8} {'memory MB':>10} {'x torch chunked':>16}")
    for row in rows:
        print(f"{row['v']:7d} {row['way']:14} {row['seconds']:8.3f} {row['time_vs_eager']:8.2f} "
              f"{row['memory_growth_bytes'] / 2**20:10.1f} {row['memory_vs_torch_chunked']:16.2f}")
    import torch

    output = args.output or Path(__file__).parent / "results" / f"linear_cross_entropy-cpu-{args.dtype}.json"
    meta = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "n": args.n, "d": args.d, "dtype": args.dtype,
            "command": "python benchmarks/linear_cross_entropy.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    output.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
