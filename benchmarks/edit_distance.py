"""Batched edit distance against rapidfuzz (C++, one call per pair) and torchmetrics (pure Python).

    python benchmarks/edit_distance.py                  # 20,000 pairs of 40 tokens, CPU
    python benchmarks/edit_distance.py --device cuda    # the same on a GPU

torchmetrics' ``edit_distance`` (a pure-Python dynamic program over strings: each token id
becomes one character) is timed on a subset of the pairs and scaled to pairs per second. Each timing is the best of ``--repeats`` runs after
a warm-up, with torch's default number of CPU threads (the machine's cores) unless
``--threads`` says otherwise; rapidfuzz and the Python DP run on one core. Writes
``benchmarks/results/edit_distance-<device>.json`` with the times, the pairs per second
and the ratios, and checks that the three agree on every timed pair.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from rapidfuzz.distance import Levenshtein
from torchmetrics.functional.text import edit_distance as torchmetrics_edit_distance

from lossbook import edit_distance

RESULTS = Path(__file__).resolve().parent / "results"


def as_text(tokens: list[list[int]]) -> list[str]:
    """Token ids as strings, one character per token, for torchmetrics' string API."""
    return ["".join(chr(0x100 + token) for token in sequence) for sequence in tokens]


def torchmetrics_distances(hypotheses: list[str], truths: list[str]) -> list[int]:
    return torchmetrics_edit_distance(hypotheses, truths, reduction="none").tolist()


def best_time(function, repeats: int, synchronize=lambda: None) -> float:
    function()  # warm-up
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--length", type=int, default=40)
    parser.add_argument("--vocabulary", type=int, default=30)
    parser.add_argument("--torchmetrics-pairs", type=int, default=500, help="pairs timed with torchmetrics")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's, the cores)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    shape = (args.pairs, args.length)
    hypothesis = torch.randint(0, args.vocabulary, shape, generator=generator)
    truth = torch.randint(0, args.vocabulary, shape, generator=generator)
    hypotheses, truths = hypothesis.tolist(), truth.tolist()
    device = torch.device(args.device)
    h, t = hypothesis.to(device), truth.to(device)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    ours = edit_distance(h, t, normalize=False).cpu()
    reference = torch.tensor([Levenshtein.distance(a, b) for a, b in zip(hypotheses, truths)], dtype=ours.dtype)
    subset = min(args.torchmetrics_pairs, args.pairs)
    hypothesis_text, truth_text = as_text(hypotheses[:subset]), as_text(truths[:subset])
    peer = torchmetrics_distances(hypothesis_text, truth_text)
    agrees = torch.equal(ours, reference) and peer == reference[:subset].long().tolist()

    seconds = {"lossbook": best_time(lambda: edit_distance(h, t, normalize=False), args.repeats, synchronize)}
    if device.type == "cpu" and torch.get_num_threads() > 1:  # also on one core, like the two peers
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        seconds["lossbook_one_thread"] = best_time(lambda: edit_distance(h, t, normalize=False), args.repeats)
        torch.set_num_threads(threads)
    seconds |= {
        "rapidfuzz": best_time(lambda: [Levenshtein.distance(a, b) for a, b in zip(hypotheses, truths)], args.repeats),
        "torchmetrics": best_time(
            lambda: torchmetrics_distances(hypothesis_text, truth_text), max(1, args.repeats // 2)
        ) * args.pairs / subset,
    }
    pairs_per_second = {name: args.pairs / value for name, value in seconds.items()}
    result = {
        "meta": {
            "pairs": args.pairs, "length": args.length, "vocabulary": args.vocabulary, "device": str(device),
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "machine": platform.machine(), "torchmetrics_pairs_timed": subset, "repeats": args.repeats,
        },
        "seconds": seconds,
        "pairs_per_second": pairs_per_second,
        "speedup_over_torchmetrics": seconds["torchmetrics"] / seconds["lossbook"],
        "time_ratio_to_rapidfuzz": seconds["lossbook"] / seconds["rapidfuzz"],
        "time_ratio_to_rapidfuzz_one_thread": seconds.get("lossbook_one_thread", seconds["lossbook"]) / seconds["rapidfuzz"],
        "agrees": agrees,
    }
    output = args.output or RESULTS / f"edit_distance-{device.type}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    for name, value in seconds.items():
        print(f"{name:20s} {value * 1e3:9.1f} ms  {pairs_per_second[name]:12,.0f} pairs/s")
    print(f"lossbook: {result['speedup_over_torchmetrics']:.0f}x torchmetrics' pairs per second, "
          f"{result['time_ratio_to_rapidfuzz']:.2f}x rapidfuzz's time; agree: {agrees}")
    return result


if __name__ == "__main__":
    main()
