"""Batched log-domain Sinkhorn against POT's ``ot.sinkhorn2(..., method="sinkhorn_log")`` on the CPU.

    python benchmarks/sinkhorn.py [--problems 32] [--points 200] [--eps 0.05] [--tol 1e-6]

``--problems`` independent transport problems between two clouds of ``--points`` points in
the plane (squared Euclidean cost, uniform weights). lossbook solves them in one batched call
(``sinkhorn_from_cost``); POT (NumPy backend, float64, its default) solves them one at a
time. Both stop at the same tolerance on the column marginal error (POT checks it every 10
iterations, lossbook every iteration). Reported: the seconds for all problems (best of
``--repeats``), the iterations each needed, and the largest difference of the costs.
Writes ``benchmarks/results/sinkhorn-cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import ot
import torch

from lossbook.generative.wasserstein import sinkhorn_from_cost

RESULTS = Path(__file__).resolve().parent / "results"


def best_time(function, repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--max-iter", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", type=Path, default=RESULTS / "sinkhorn-cpu.json")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    shape = (args.problems, args.points, 2)
    x = torch.randn(shape, dtype=torch.float64, generator=generator)
    y = 0.7 * torch.randn(shape, dtype=torch.float64, generator=generator) + 0.5
    cost = torch.cdist(x, y) ** 2
    cost = cost / cost.mean()  # costs of order 1, so eps means the same in every problem
    a = torch.full(shape[:2], 1.0 / args.points, dtype=torch.float64)
    options = dict(eps=args.eps, max_iter=args.max_iter, tol=args.tol)

    rows = {}
    for dtype in (torch.float64, torch.float32):
        result = sinkhorn_from_cost(a.to(dtype), a.to(dtype), cost.to(dtype), **options)
        seconds = best_time(lambda: sinkhorn_from_cost(a.to(dtype), a.to(dtype), cost.to(dtype), **options), args.repeats)
        rows[f"lossbook_{str(dtype).removeprefix('torch.')}"] = {
            "seconds": seconds, "iterations": result.iterations.tolist(), "costs": result.cost.double().tolist(),
            "converged": int((result.error < args.tol).sum()),
        }

    a_np, costs_np = a[0].numpy(), cost.numpy()

    def pot_all():
        out = []
        for problem in costs_np:
            _, log = ot.sinkhorn(a_np, a_np, problem, args.eps, method="sinkhorn_log", numItermax=args.max_iter,
                                 stopThr=args.tol, log=True)
            out.append(log)
        return out

    logs = pot_all()
    pot_costs = [float(ot.sinkhorn2(a_np, a_np, problem, args.eps, method="sinkhorn_log", numItermax=args.max_iter,
                                    stopThr=args.tol)) for problem in costs_np]
    rows["pot_float64"] = {
        "seconds": best_time(lambda: [ot.sinkhorn2(a_np, a_np, p, args.eps, method="sinkhorn_log",
                                                   numItermax=args.max_iter, stopThr=args.tol) for p in costs_np],
                             args.repeats),
        "iterations": [int(log["niter"]) + 1 for log in logs], "costs": pot_costs,
    }
    reference = np.array(pot_costs)
    for name, row in rows.items():
        row["max_abs_difference_from_pot"] = float(np.abs(np.array(row["costs"]) - reference).max())
        row["mean_iterations"] = float(np.mean(row["iterations"]))
        row["time_ratio_to_pot"] = row["seconds"] / rows["pot_float64"]["seconds"]
    meta = {"problems": args.problems, "points": args.points, "eps": args.eps, "tol": args.tol,
            "torch": torch.__version__, "pot": ot.__version__, "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine()}
    print(f"{args.problems} problems of {args.points} x {args.points} points, eps = {args.eps}, tol = {args.tol}")
    print(f"{'solver':<18}{'seconds':>10}{'x POT':>8}{'mean iterations':>17}{'max |cost - POT|':>18}")
    for name, row in rows.items():
        print(f"{name:<18}{row['seconds']:>10.3f}{row['time_ratio_to_pot']:>8.2f}{row['mean_iterations']:>17.1f}"
              f"{row['max_abs_difference_from_pot']:>18.1e}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.output}")
    return rows


if __name__ == "__main__":
    main()
