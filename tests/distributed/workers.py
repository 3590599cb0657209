"""Workers of tests/distributed/test_losses_at_scale.py, at module level so that
``torch.multiprocessing.spawn`` can pickle them. Each worker joins a gloo process group,
runs every check of its world size in sequence, and saves what it computed with
``torch.save``; the parent compares with the single-process results on the whole batch.

The data are made by the functions below from fixed seeds, the same in every process."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

import lossbook
from lossbook.distributed import losses_at_scale as at_scale

D_IN, D = 6, 4
DTYPE = torch.float64
VOCAB_CASES = [  # (reduction, label_smoothing, bias)
    ("mean", 0.0, True), ("sum", 0.1, False), ("none", 0.2, True), ("mean", 0.3, False),
]


def shard(tensor, sizes, rank):
    start = sum(sizes[:rank])
    return tensor[start:start + sizes[rank]]


def model():
    torch.manual_seed(0)
    return torch.nn.Linear(D_IN, D, dtype=DTYPE)


def embedding_data(sizes):
    g = torch.Generator().manual_seed(1)
    n = sum(sizes)
    return (torch.randn(n, D_IN, generator=g, dtype=DTYPE), torch.randn(n, D_IN, generator=g, dtype=DTYPE),
            torch.randint(0, 3, (n,), generator=g))


def metric_data(sizes):
    g = torch.Generator().manual_seed(2)
    first = 100 + torch.randn(sum(sizes), 5, generator=g, dtype=DTYPE)        # a large mean: no digit may be lost
    second = 100.5 + 2 * torch.randn(sum(sizes) + 3, 5, generator=g, dtype=DTYPE)
    probs = torch.softmax(3 * torch.randn(sum(sizes) + 5, 7, generator=g, dtype=DTYPE), 1)
    lengths = torch.randint(0, 9, (sum(sizes) + 2,), generator=g)
    truth = [torch.randint(1, 5, (int(n),), generator=g) for n in lengths]
    hypothesis = [torch.randint(1, 5, (int(torch.randint(0, 9, (1,), generator=g)),), generator=g) for _ in truth]
    return first, second, probs, truth, hypothesis


def pad(sequences):
    """Sequences padded with 0 to the longest of *this* list, and their lengths."""
    longest = max([len(s) for s in sequences] + [1])
    padded = torch.zeros(len(sequences), longest, dtype=torch.int64)
    for row, s in enumerate(sequences):
        padded[row, :len(s)] = s
    return padded, torch.tensor([len(s) for s in sequences], dtype=torch.int64)


def vocab_data(widths, n=13):
    g = torch.Generator().manual_seed(3)
    vocabulary = sum(widths)
    h = torch.randn(n, 5, generator=g, dtype=DTYPE)
    w = torch.randn(vocabulary, 5, generator=g, dtype=DTYPE)
    b = torch.randn(vocabulary, generator=g, dtype=DTYPE)
    y = torch.randint(0, vocabulary, (n,), generator=g)
    y[::4] = -100
    return h, w, b, y


def uneven(count, world):
    """``count`` rows over ``world`` ranks, unevenly (also for metrics: one rank may hold fewer)."""
    base = [count // world] * world
    base[0] += count % world
    if world > 1:
        base[0], base[-1] = base[0] + 1, base[-1] - 1
    return base


# --- gathered negatives ---------------------------------------------------------------------------


def _no_grad_gather(tensor, sizes, rank):
    """The classic snippet: dist.all_gather into a list (no autograd), the own slot put back."""
    largest = max(sizes)
    padded = torch.cat([tensor, tensor.new_zeros(largest - tensor.shape[0], *tensor.shape[1:])])
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.detach())
    parts = [part[:size] for part, size in zip(parts, sizes)]
    parts[rank] = tensor
    return torch.cat(parts)


def _ddp_average(value, net):
    """What DDP applies: the gradients all_reduced and divided by the world size; and the mean value."""
    world = dist.get_world_size()
    grads = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    dist.all_reduce(grads)
    mean = value.detach().clone()
    dist.all_reduce(mean)
    return mean / world, grads / world


def gathered_checks(rank, world, sizes):
    x1, x2, labels = (shard(t, sizes, rank) for t in embedding_data(sizes))
    offset, n = sum(sizes[:rank]), sum(sizes)

    def info_nce_no_grad(e1, e2, y):  # local anchors, keys gathered without gradient
        keys = _no_grad_gather(e2, sizes, rank)
        targets = offset + torch.arange(e1.shape[0])
        logits = lossbook.metric_learning.embeddings.cosine_similarity_matrix(e1, keys) / 0.1
        return F.cross_entropy(logits, targets, reduction="sum") * world / n

    def full_no_grad(e1, e2, y):  # every anchor, gathered without gradient (own slot put back)
        return lossbook.info_nce_loss(_no_grad_gather(e1, sizes, rank), _no_grad_gather(e2, sizes, rank))

    designs = {
        "info_nce": lambda e1, e2, y: at_scale.distributed_info_nce_loss(e1, e2),
        "info_nce_symmetric": lambda e1, e2, y: at_scale.distributed_info_nce_loss(e1, e2, symmetric=True, temperature=0.2),
        "nt_xent": lambda e1, e2, y: at_scale.distributed_nt_xent_loss(e1, e2, temperature=0.5),
        "supervised_contrastive": lambda e1, e2, y: at_scale.distributed_supervised_contrastive_loss(e1, y),
        "circle (gathered_loss)": lambda e1, e2, y: at_scale.gathered_loss(lossbook.circle_loss, e1, y, m=0.25, gamma=16.0),
        "batch_hard_triplet (gathered_loss)": lambda e1, e2, y: at_scale.gathered_loss(lossbook.batch_hard_triplet_loss, e1, y),
        "info_nce (gathered_loss)": lambda e1, e2, y: at_scale.gathered_loss(lossbook.info_nce_loss, e1, e2),
        "bug: no-grad gather": info_nce_no_grad,
        "bug: local anchors times P": lambda e1, e2, y: at_scale.distributed_info_nce_loss(e1, e2) * world,
        "full batch, no-grad gather": full_no_grad,
        "full batch, no-grad gather, times P": lambda e1, e2, y: full_no_grad(e1, e2, y) * world,
    }
    results = {}
    for name, design in designs.items():
        net = model()
        value = design(net(x1), net(x2), labels)
        value.backward()
        results[name] = _ddp_average(value, net)
    # Real DistributedDataParallel on the same model: it averages the gradients itself.
    net = torch.nn.parallel.DistributedDataParallel(model())
    at_scale.distributed_info_nce_loss(net(x1), net(x2)).backward()
    results["info_nce under DDP"] = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    # The gathered tensor itself and the sum of gradients it sends back.
    rows = shard(torch.arange(n, dtype=DTYPE)[:, None].repeat(1, 2), sizes, rank).requires_grad_()
    gathered = at_scale.gather_with_grad(rows)
    (gathered * (rank + 1)).sum().backward()
    results["gather"] = (gathered.detach(), rows.grad)
    # What travels: the sizes, the keys, their gradient back, one count.
    with at_scale.CommunicationLog() as log:
        at_scale.distributed_info_nce_loss(x1.clone().requires_grad_(), x2.clone().requires_grad_()).backward()
    results["log: info_nce"] = (log.records, log.bytes_sent())
    return results


# --- metrics ----------------------------------------------------------------------------------------


def metric_checks(rank, world, sizes):
    first, second, probs, truth, hypothesis = metric_data(sizes)
    sizes2, sizes3 = uneven(second.shape[0], world)[::-1], uneven(probs.shape[0], world)
    results = {
        "mean_and_covariance": at_scale.distributed_mean_and_covariance(shard(first, sizes, rank)),
        "fid": at_scale.distributed_fid_from_features(shard(first, sizes, rank), shard(second, sizes2, rank)),
    }
    for splits in (1, 4, 5):
        results[f"inception_score splits={splits}"] = at_scale.distributed_inception_score(shard(probs, sizes3, rank), splits=splits)
    sentences = uneven(len(truth), world)
    start = sum(sentences[:rank])
    mine = slice(start, start + sentences[rank])
    (t, tl), (h, hl) = pad(truth[mine]), pad(hypothesis[mine])
    results["error_rate"] = at_scale.distributed_error_rate(h, t, hypothesis_lengths=hl, truth_lengths=tl, dtype=torch.float64)
    with at_scale.CommunicationLog() as log:
        at_scale.distributed_mean_and_covariance(shard(first, sizes, rank))
    results["log: mean_and_covariance"] = (log.records, log.bytes_sent())
    return results


# --- vocabulary-parallel cross entropy ---------------------------------------------------------------


def vocab_checks(rank, world, widths, starts=None):
    h, w, b, y = vocab_data(widths)
    start = sum(widths[:rank]) if starts is None else starts[rank]
    columns = slice(start, start + widths[rank])
    results = {}
    for reduction, smoothing, with_bias in VOCAB_CASES:
        upstream = torch.randn(h.shape[0], generator=torch.Generator().manual_seed(4), dtype=DTYPE)
        upstream = upstream if reduction == "none" else upstream[0]
        logits = (h @ w.T + (b if with_bias else 0))[:, columns].clone().requires_grad_()
        loss = at_scale.vocab_parallel_cross_entropy(logits, y, reduction=reduction, label_smoothing=smoothing,
                                            vocab_start=None if starts is None else start)
        (grad_logits,) = torch.autograd.grad(loss, logits, upstream)
        hh = h.clone().requires_grad_()
        ws = w[columns].clone().requires_grad_()
        bs = b[columns].clone().requires_grad_() if with_bias else None
        linear = at_scale.vocab_parallel_linear_cross_entropy(
            hh, ws, y, linear_bias=bs, reduction=reduction, label_smoothing=smoothing, chunk_size=4,
            vocab_start=None if starts is None else start)
        grads = torch.autograd.grad(linear, [t for t in (hh, ws, bs) if t is not None], upstream)
        results[(reduction, smoothing, with_bias)] = (loss.detach(), grad_logits, linear.detach(), grads)
    ignored = torch.full_like(y, -100)
    logits = (h @ w.T)[:, columns].clone().requires_grad_()
    empty = at_scale.vocab_parallel_cross_entropy(logits, ignored, vocab_start=None if starts is None else start)
    empty.backward()
    results["all ignored"] = (empty.detach(), logits.grad)
    with at_scale.CommunicationLog() as log:
        at_scale.vocab_parallel_cross_entropy((h @ w.T)[:, columns], y, vocab_start=None if starts is None else start)
    results["log: vocab_parallel"] = (log.records, log.bytes_sent())
    refused = []  # a bad layout is refused on every rank at once (no rank left waiting in a collective)
    for bad in (1, None if rank == 0 else start):  # overlapping blocks; vocab_start given on some ranks only
        try:
            at_scale.vocab_parallel_cross_entropy((h @ w.T)[:, columns], y, vocab_start=bad)
        except ValueError as error:
            refused.append(str(error))
    results["refused layouts"] = refused
    return results


def run(rank: int, world: int, port: int, directory: str, sizes: list[int], widths: list[int],
        starts: list[int] | None) -> None:
    """One process: join the gloo group, run every check, save the results."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        results = {"gathered": gathered_checks(rank, world, sizes), "metrics": metric_checks(rank, world, sizes),
                   "vocab": vocab_checks(rank, world, widths)}
        if starts is not None:
            results["vocab, given starts"] = vocab_checks(rank, world, widths, starts)
        torch.save(results, Path(directory) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
