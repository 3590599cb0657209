"""chamfer_distance against a naive chunked loop and the full distance matrix: time and memory.

    python benchmarks/chamfer.py [--batch 4] [--points 4096 8192 32768] [--dim 3] [--repeats 1]
                                 [--memory-limit-gb 4]

Forward + backward of the chamfer distance (squared, point means, directions added, batch
mean) of two batches of ``--batch`` clouds of N = M points in ``--dim`` dimensions, float32,
three ways: ``cdist`` (``torch.cdist`` of whole clouds, the brute force: the ``(B, N, M)``
distances in memory, kept by autograd), ``naive_chunked`` (chunks of 256 rows of x through
``torch.cdist`` with plain autograd, a running minimum for the second direction: the forward
holds one chunk, but autograd keeps every chunk for the backward) and ``lossbook``
(``lossbook.chamfer_distance``: the search in chunks without autograd, the nearest-neighbour
indices saved, the gradient in closed form). Each way runs in its own process, so that the
memory of one does not hide another's. Memory is the growth of the process's peak resident
memory during one call beyond the inputs (Linux: /proc/self/clear_refs resets the peak;
allocations of 64 kB and more are mapped one by one, so freed memory leaves the peak); time
is the median of ``--repeats`` calls after a warm-up on small clouds, with torch's default
threads. A way whose distance matrices would exceed ``--memory-limit-gb`` (estimated from
their size) is not run and is recorded with its estimate. Writes
``benchmarks/results/chamfer-cpu.json``.
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

WAYS = ("cdist", "naive_chunked", "lossbook")
NAIVE_ROWS = 256
# Bytes kept per distance, B x N x M of them: cdist keeps its output, its square and, in the
# backward, gradients of both; the naive loop keeps each chunk's cdist output (and squares it).
BYTES_PER_DISTANCE = {"cdist": 16, "naive_chunked": 8, "lossbook": 0}


def status(field: str) -> int:
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(field))


def loss_function(way: str):
    import torch

    import lossbook

    def cdist(x, y):
        d = torch.cdist(x, y).square()
        return (d.min(2).values.mean(1) + d.min(1).values.mean(1)).mean()

    def naive_chunked(x, y):
        to_y, best = [], None
        for start in range(0, x.shape[1], NAIVE_ROWS):
            d = torch.cdist(x[:, start:start + NAIVE_ROWS], y).square()
            to_y.append(d.min(2).values)
            column = d.min(1).values
            best = column if best is None else torch.minimum(best, column)
        return (torch.cat(to_y, 1).mean(1) + best.mean(1)).mean()

    return {"cdist": cdist, "naive_chunked": naive_chunked, "lossbook": lossbook.chamfer_distance}[way]


def measure(way: str, batch: int, points: int, dim: int, repeats: int) -> dict:
    """One way at one size, in this process: memory growth of one call, median time."""
    import torch

    loss_fn = loss_function(way)

    def clouds(n, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(batch, n, dim, generator=g).requires_grad_()
        y = (torch.randn(batch, n, dim, generator=g) + 0.1).requires_grad_()
        return x, y

    def step(x, y):
        loss = loss_fn(x, y)
        loss.backward()
        x.grad = y.grad = None
        return loss.item()

    # M_MMAP_THRESHOLD: map allocations of 64 kB and more one by one, so that freed memory
    # leaves the process and the peak counts what is live.
    ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 16)
    step(*clouds(256, 1))  # warm-up on small clouds: kernels, thread pools, once-only allocations
    x, y = clouds(points, 0)
    before = status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    start = time.perf_counter()
    value = step(x, y)
    first = time.perf_counter() - start
    growth = status("VmHWM:") - before
    times = [first]
    for _ in range(repeats - 1):
        start = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - start)
    return {"way": way, "batch": batch, "points": points, "dim": dim, "loss": value,
            "seconds": statistics.median(times), "memory_growth_bytes": growth, "skipped": False}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--points", type=int, nargs="+", default=[4096, 8192, 32768])
    parser.add_argument("--dim", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--memory-limit-gb", type=float, default=4.0)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--one", nargs=2, metavar=("WAY", "POINTS"), help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], args.batch, int(args.one[1]), args.dim, args.repeats)))
        return []
    rows = []
    for points in args.points:
        group = []
        for way in WAYS:
            estimate = BYTES_PER_DISTANCE[way] * args.batch * points * points
            if estimate > args.memory_limit_gb * 2**30:
                group.append({"way": way, "batch": args.batch, "points": points, "dim": args.dim, "skipped": True,
                              "estimated_memory_bytes": estimate})
                continue
            child = [sys.executable, __file__, "--one", way, str(points), "--batch", str(args.batch),
                     "--dim", str(args.dim), "--repeats", str(args.repeats)]
            group.append(json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout))
        by_way = {row["way"]: row for row in group if not row["skipped"]}
        for row in group:
            if not row["skipped"] and "naive_chunked" in by_way:
                row["time_vs_naive_chunked"] = row["seconds"] / by_way["naive_chunked"]["seconds"]
                row["memory_vs_naive_chunked"] = row["memory_growth_bytes"] / max(
                    by_way["naive_chunked"]["memory_growth_bytes"], 1)
        rows += group
    print(f"{'B':>3} {'N = M':>7} {'way':14} {'seconds':>9} {'x naive':>8} {'memory MB':>11} {'x naive':>8}")
    for row in rows:
        if row["skipped"]:
            print(f"{row['batch']:3d} {row['points']:7d} {row['way']:14} not run: its distances would need about "
                  f"{row['estimated_memory_bytes'] / 2**30:.0f} GB")
            continue
        ratios = (f"{row['time_vs_naive_chunked']:8.2f}", f"{row['memory_vs_naive_chunked']:8.4f}") \
            if "time_vs_naive_chunked" in row else ("       -", "       -")
        print(f"{row['batch']:3d} {row['points']:7d} {row['way']:14} {row['seconds']:9.2f} {ratios[0]} "
              f"{row['memory_growth_bytes'] / 2**20:11.1f} {ratios[1]}")
    import torch

    output = args.output or Path(__file__).parent / "results" / "chamfer-cpu.json"
    meta = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "batch": args.batch, "dim": args.dim, "dtype": "float32",
            "naive_rows": NAIVE_ROWS,
            "command": "python benchmarks/chamfer.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    output.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
