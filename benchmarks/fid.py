"""FID of 2048-d features: lossbook against pytorch-fid's scipy.linalg.sqrtm-based code.

    python benchmarks/fid.py                    # two sets of 10,000 x 2048 features, CPU
    python benchmarks/fid.py --device cuda      # lossbook on a GPU (pytorch-fid stays on the CPU)

Two measures, each on the same float64 features:

- ``end_to_end``: features to FID. pytorch-fid's path is what ``calculate_fid_given_paths``
  does after the network: ``np.mean`` and ``np.cov(rowvar=False)`` of each set, then
  ``calculate_frechet_distance`` (``scipy.linalg.sqrtm`` of the product of the
  covariances). lossbook's is ``fid_from_features``.
- ``distance``: the statistics given, the square-root step alone:
  ``calculate_frechet_distance`` against ``frechet_distance``.

SciPy is timed once (it takes seconds to minutes), lossbook as the best of ``--repeats``
runs after a warm-up. Writes ``benchmarks/results/fid-<device>.json`` with the times, the
ratios and the relative difference of the two results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import scipy
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

from lossbook import fid_from_features, frechet_distance
from lossbook.generative.fid import mean_and_covariance

RESULTS = Path(__file__).resolve().parent / "results"


def timed(function, repeats: int, synchronize=lambda: None) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        result = function()
        synchronize()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--dims", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    generator = torch.Generator().manual_seed(0)
    n, d = args.samples, args.dims
    mixing = torch.randn(d, d, generator=generator, dtype=torch.float64) / d**0.5
    # non-negative, correlated features, like the averages of ReLU outputs of a pool layer
    real = torch.relu(torch.randn(n, d, generator=generator, dtype=torch.float64) @ mixing)
    fake = torch.relu(torch.randn(n, d, generator=generator, dtype=torch.float64) @ (1.1 * mixing) + 0.05)
    device = torch.device(args.device)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    real_d, fake_d = real.to(device), fake.to(device)

    def scipy_end_to_end():
        a, b = real.numpy(), fake.numpy()
        return calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))

    statistics = [t.numpy() for t in (*mean_and_covariance(real), *mean_and_covariance(fake))]
    statistics_d = [torch.from_numpy(t).to(device) for t in statistics]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # sqrtm's disp argument (SciPy >= 1.16)
        seconds_scipy_end, value_scipy = timed(scipy_end_to_end, 1)
        seconds_scipy_distance, value_scipy_distance = timed(lambda: calculate_frechet_distance(*statistics), 1)
    fid_from_features(real_d[:100], fake_d[:100])  # warm-up
    seconds_ours_end, value_ours = timed(lambda: fid_from_features(real_d, fake_d).item(), args.repeats, synchronize)
    seconds_ours_distance, value_ours_distance = timed(
        lambda: frechet_distance(*statistics_d).item(), args.repeats, synchronize
    )
    value_scipy, value_scipy_distance = float(value_scipy), float(value_scipy_distance)
    relative = abs(value_ours - value_scipy) / abs(value_scipy)
    relative_distance = abs(value_ours_distance - value_scipy_distance) / abs(value_scipy_distance)
    result = {
        "meta": {
            "samples": n, "dims": d, "device": str(device), "dtype": "float64", "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "machine": platform.machine(), "repeats": args.repeats,
        },
        "seconds": {
            "end_to_end": {"pytorch_fid": seconds_scipy_end, "lossbook": seconds_ours_end},
            "distance": {"pytorch_fid": seconds_scipy_distance, "lossbook": seconds_ours_distance},
        },
        "speedup": {
            "end_to_end": seconds_scipy_end / seconds_ours_end,
            "distance": seconds_scipy_distance / seconds_ours_distance,
        },
        "fid": {"pytorch_fid": value_scipy, "lossbook": value_ours},
        "relative_difference": {"end_to_end": relative, "distance": relative_distance},
        "agrees_1e-8": bool(relative < 1e-8 and relative_distance < 1e-8),
    }
    output = args.output or RESULTS / f"fid-{device.type}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    for measure in ("end_to_end", "distance"):
        s = result["seconds"][measure]
        print(f"{measure:10s} pytorch-fid {s['pytorch_fid']:8.2f} s   lossbook {s['lossbook']:8.3f} s   "
              f"{result['speedup'][measure]:6.1f}x   relative difference {result['relative_difference'][measure]:.1e}")
    return result


if __name__ == "__main__":
    main()
