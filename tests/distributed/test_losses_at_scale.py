"""Losses across many processes: gathered negatives, metric statistics and vocabulary-parallel
cross entropy, in real gloo process groups against the single-process result on the whole batch.

One spawn per world size runs every check of that world size (tests/distributed/workers.py);
the results are compared here. The in-process tests cover one rank and the refusals."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
import workers

import lossbook
from lossbook.distributed.losses_at_scale import (
    CommunicationLog,
    distributed_error_rate,
    distributed_fid_from_features,
    distributed_inception_score,
    distributed_info_nce_loss,
    distributed_mean_and_covariance,
    distributed_nt_xent_loss,
    distributed_supervised_contrastive_loss,
    gather_with_grad,
    gathered_loss,
    vocab_parallel_cross_entropy,
    vocab_parallel_linear_cross_entropy,
)
from lossbook.generative.fid import mean_and_covariance

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with the gloo backend is not available")

EXACT = 1e-12
# world size -> (batch sizes, vocabulary shard widths, explicit vocab_start or None)
SETUPS = {2: ([4, 4], [6, 5], [5, 0]), 3: ([3, 5, 2], [7, 4, 9], None)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", params=sorted(SETUPS), ids=lambda world: f"world{world}")
def spawned(request, tmp_path_factory):
    """Every rank's results for one world size: one spawn, every check."""
    world = request.param
    sizes, widths, starts = SETUPS[world]
    directory = tmp_path_factory.mktemp(f"world{world}")
    mp.spawn(workers.run, args=(world, free_port(), str(directory), sizes, widths, starts), nprocs=world, join=True)
    return world, sizes, widths, starts, [torch.load(directory / f"rank{r}.pt", weights_only=False) for r in range(world)]


def largest(*pairs) -> float:
    return max((a - b).abs().max().item() for a, b in pairs)


# --- gathered negatives ---------------------------------------------------------------------------------


def single_process(name, sizes):
    """The loss and parameter gradient of one process on the whole batch."""
    x1, x2, labels = workers.embedding_data(sizes)
    losses = {
        "info_nce": lambda e1, e2: lossbook.info_nce_loss(e1, e2),
        "info_nce_symmetric": lambda e1, e2: lossbook.info_nce_loss(e1, e2, symmetric=True, temperature=0.2),
        "nt_xent": lambda e1, e2: lossbook.nt_xent_loss(e1, e2, temperature=0.5),
        "supervised_contrastive": lambda e1, e2: lossbook.supervised_contrastive_loss(e1, labels),
        "circle": lambda e1, e2: lossbook.circle_loss(e1, labels, m=0.25, gamma=16.0),
        "batch_hard_triplet": lambda e1, e2: lossbook.batch_hard_triplet_loss(e1, labels),
    }
    net = workers.model()
    value = losses[name](net(x1), net(x2))
    value.backward()
    return value.detach(), torch.cat([p.grad.reshape(-1) for p in net.parameters()])


EXACT_DESIGNS = {
    "info_nce": "info_nce", "info_nce_symmetric": "info_nce_symmetric", "nt_xent": "nt_xent",
    "supervised_contrastive": "supervised_contrastive", "circle (gathered_loss)": "circle",
    "batch_hard_triplet (gathered_loss)": "batch_hard_triplet", "info_nce (gathered_loss)": "info_nce",
}


@pytest.mark.parametrize("design", sorted(EXACT_DESIGNS))
def test_gathered_losses_equal_one_process_on_the_whole_batch(spawned, design):
    world, sizes, _, _, results = spawned
    value, grad = single_process(EXACT_DESIGNS[design], sizes)
    for rank in range(world):
        ours_value, ours_grad = results[rank]["gathered"][design]
        assert largest((ours_value, value), (ours_grad, grad)) < EXACT, (design, rank)


def test_real_ddp_averages_to_the_whole_batch_gradient(spawned):
    world, sizes, _, _, results = spawned
    _, grad = single_process("info_nce", sizes)
    for rank in range(world):
        assert largest((results[rank]["gathered"]["info_nce under DDP"], grad)) < EXACT


def test_the_classic_bugs(spawned):
    world, sizes, _, _, results = spawned
    value, grad = single_process("info_nce", sizes)
    got = results[0]["gathered"]
    # Gathering without gradient: the value is right, the gradient is not (and not by a scale).
    bug_value, bug_grad = got["bug: no-grad gather"]
    assert abs(bug_value - value) < EXACT
    assert (bug_grad - grad).norm() > 1e-2 * grad.norm()
    ratio = (bug_grad @ grad) / (grad @ grad)
    assert (bug_grad - ratio * grad).norm() > 1e-3 * grad.norm()
    # Multiplying the local-anchor loss by P under DDP averaging: P times the gradient.
    bug_value, bug_grad = got["bug: local anchors times P"]
    assert torch.allclose(bug_grad, world * grad, rtol=0, atol=EXACT) and torch.allclose(bug_value, world * value)
    # The whole batch on every rank with a no-grad gather: 1/P of the gradient (and P fixes it).
    _, bug_grad = got["full batch, no-grad gather"]
    assert torch.allclose(bug_grad, grad / world, rtol=0, atol=EXACT)
    # pytorch-metric-learning's DistributedLossWrapper (efficient=False): the gradient is right, the value P times.
    fixed_value, fixed_grad = got["full batch, no-grad gather, times P"]
    assert largest((fixed_grad, grad), (fixed_value, world * value)) < EXACT


def test_gather_with_grad_concatenates_and_sums_the_gradients(spawned):
    world, sizes, _, _, results = spawned
    everything = torch.arange(sum(sizes), dtype=torch.float64)[:, None].repeat(1, 2)
    for rank in range(world):
        gathered, grad = results[rank]["gathered"]["gather"]
        assert torch.equal(gathered, everything)
        # rank r's backward sends (r + 1) to every row: each row gets 1 + 2 + ... + P
        assert torch.equal(grad, torch.full_like(grad, world * (world + 1) / 2))


def test_communication_of_gathered_info_nce(spawned):
    world, sizes, _, _, results = spawned
    records, sent = results[0]["gathered"]["log: info_nce"]
    padded = max(sizes) * workers.D_IN * 8
    assert records == [("all_gather", 1, 8, world), ("all_gather", max(sizes) * workers.D_IN, padded, world),
                       ("all_reduce", 1, 8, world), ("reduce_scatter", max(sizes) * workers.D_IN, padded, world)]
    assert sent == round((world - 1) * (8 + 2 * padded) + 2 * (world - 1) / world * 8)


# --- metrics ---------------------------------------------------------------------------------------------


def test_metrics_equal_one_process_on_the_whole_set(spawned):
    world, sizes, _, _, results = spawned
    first, second, probs, truth, hypothesis = workers.metric_data(sizes)
    mean, covariance = mean_and_covariance(first)
    fid = lossbook.fid_from_features(first, second)
    (t, tl), (h, hl) = workers.pad(truth), workers.pad(hypothesis)
    rate = lossbook.error_rate(h, t, hypothesis_lengths=hl, truth_lengths=tl, dtype=torch.float64)
    for rank in range(world):
        got = results[rank]["metrics"]
        assert largest((got["mean_and_covariance"][0], mean), (got["mean_and_covariance"][1], covariance)) < 1e-10
        assert abs(got["fid"] - fid) < 1e-9 * max(1.0, fid.item())
        for splits in (1, 4, 5):
            ours, theirs = got[f"inception_score splits={splits}"], lossbook.inception_score(probs, splits=splits)
            assert largest((ours[0], theirs[0]), (ours[1], theirs[1])) < EXACT
        assert abs(got["error_rate"] - rate) < EXACT


def test_communication_of_the_covariance(spawned):
    world, _, _, _, results = spawned
    records, _ = results[0]["metrics"]["log: mean_and_covariance"]
    assert records == [("all_reduce", 6, 48, world), ("all_reduce", 25, 200, world)]


# --- vocabulary-parallel cross entropy -------------------------------------------------------------------


def _check_vocab(results, widths, starts):
    h, w, b, y = workers.vocab_data(widths)
    for reduction, smoothing, with_bias in workers.VOCAB_CASES:
        upstream = torch.randn(h.shape[0], generator=torch.Generator().manual_seed(4), dtype=torch.float64)
        upstream = upstream if reduction == "none" else upstream[0]
        hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
        bb = b.clone().requires_grad_() if with_bias else None
        logits = hh @ ww.T + (bb if with_bias else 0)
        logits.retain_grad()
        expected = F.cross_entropy(logits, y, reduction=reduction, label_smoothing=smoothing)
        expected.backward(upstream)
        for rank, got in enumerate(results):
            start = sum(widths[:rank]) if starts is None else starts[rank]
            columns = slice(start, start + widths[rank])
            loss, grad_logits, linear, grads = got[(reduction, smoothing, with_bias)]
            assert largest((loss, expected), (grad_logits, logits.grad[:, columns]), (linear, expected),
                           (grads[0], hh.grad), (grads[1], ww.grad[columns])) < EXACT
            if with_bias:
                assert largest((grads[2], bb.grad[columns])) < EXACT
    for got in results:
        loss, grad = got["all ignored"]
        assert loss == 0 and torch.equal(grad, torch.zeros_like(grad))


def test_vocab_parallel_equals_cross_entropy_of_the_whole_vocabulary(spawned):
    world, _, widths, starts, results = spawned
    _check_vocab([r["vocab"] for r in results], widths, None)
    if starts is not None:
        _check_vocab([r["vocab, given starts"] for r in results], widths, starts)


def test_a_bad_vocabulary_layout_is_refused_on_every_rank(spawned):
    world, _, _, _, results = spawned
    for got in results:
        overlapping, partial = got["vocab"]["refused layouts"]
        assert "must tile [0, V) without gap or overlap" in overlapping
        assert "vocab_start must be given on every rank or on none" in partial


def test_communication_of_vocab_parallel(spawned):
    world, _, _, _, results = spawned
    records, sent = results[0]["vocab"]["log: vocab_parallel"]
    n = 13
    assert records == [("all_gather", 2, 16, world), ("all_reduce", n, 8 * n, world), ("all_reduce", 2 * n, 16 * n, world)]


# --- one process ------------------------------------------------------------------------------------------


def test_one_rank_gives_the_plain_losses():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(7, 3, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 3])
    for reduction in ("none", "mean", "sum"):
        assert torch.allclose(distributed_info_nce_loss(q, k, reduction=reduction),
                              lossbook.info_nce_loss(q, k, reduction=reduction), rtol=0, atol=EXACT)
        assert torch.allclose(distributed_nt_xent_loss(q, k, reduction=reduction),
                              lossbook.nt_xent_loss(q, k, reduction=reduction), rtol=0, atol=EXACT)
        assert torch.allclose(distributed_supervised_contrastive_loss(q, labels, reduction=reduction),
                              lossbook.supervised_contrastive_loss(q, labels, reduction=reduction), rtol=0, atol=EXACT)
    x = torch.randn(4, 2, requires_grad=True)
    assert gather_with_grad(x) is x
    assert gathered_loss(lossbook.circle_loss, q, labels) == lossbook.circle_loss(q, labels)
    f1, f2 = torch.randn(20, 3, generator=g), torch.randn(15, 3, generator=g)
    assert torch.allclose(distributed_fid_from_features(f1, f2), lossbook.fid_from_features(f1, f2))
    mean, cov = distributed_mean_and_covariance(f1)
    assert all(torch.allclose(a, b) for a, b in zip((mean, cov), mean_and_covariance(f1)))
    p = torch.softmax(torch.randn(11, 4, generator=g), 1)
    assert all(torch.allclose(a, b) for a, b in zip(distributed_inception_score(p, splits=3),
                                                     lossbook.inception_score(p, splits=3)))
    truth, hyp = torch.randint(1, 4, (3, 5), generator=g), torch.randint(1, 4, (3, 6), generator=g)
    assert distributed_error_rate(hyp, truth) == lossbook.error_rate(hyp, truth)
    with CommunicationLog() as log:
        vocab_parallel_cross_entropy(torch.randn(3, 5), torch.tensor([0, 1, 2]))
    assert log.records == []


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_one_rank_vocab_parallel_is_cross_entropy(reduction):
    g = torch.Generator().manual_seed(1)
    h = torch.randn(2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(9, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 9, (2, 5), generator=g)
    y[0, 1] = -100
    expected = F.cross_entropy((h @ w.T).reshape(10, 9), y.reshape(10), reduction=reduction, label_smoothing=0.1)
    expected = expected.reshape(2, 5) if reduction == "none" else expected
    ours = vocab_parallel_linear_cross_entropy(h, w, y, reduction=reduction, label_smoothing=0.1, chunk_size=3)
    assert torch.allclose(ours, expected, rtol=0, atol=EXACT)
    assert torch.allclose(vocab_parallel_cross_entropy(h @ w.T, y, reduction=reduction, label_smoothing=0.1),
                          expected, rtol=0, atol=EXACT)


def test_gradcheck():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 5, -100, 2, 3])
    assert torch.autograd.gradcheck(lambda z: vocab_parallel_cross_entropy(z, y, label_smoothing=0.2), (z,))
    h = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda h, w, b: vocab_parallel_linear_cross_entropy(h, w, y, linear_bias=b, label_smoothing=0.1,
                                                            reduction="none", chunk_size=2), (h, w, b))
    q, k = (torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(lambda q, k: distributed_info_nce_loss(q, k, symmetric=True), (q, k))


def test_half_precision_is_computed_in_float32():
    z = torch.randn(6, 10) * 20
    y = torch.randint(0, 10, (6,))
    ours = vocab_parallel_cross_entropy(z.bfloat16(), y)
    assert ours.dtype == torch.float32
    assert torch.allclose(ours, F.cross_entropy(z.bfloat16().float(), y), atol=1e-5)


def test_refusals():
    z, y = torch.randn(4, 7), torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match="vocab_start must be 0 or None without a process group"):
        vocab_parallel_cross_entropy(z, y, vocab_start=3)
    with pytest.raises(TypeError, match="vocab_start must be an int or None"):
        vocab_parallel_cross_entropy(z, y, vocab_start=1.5)
    with pytest.raises(ValueError, match=r"target must have shape logits.shape\[:-1\]"):
        vocab_parallel_cross_entropy(z, y[:, None])
    with pytest.raises(ValueError, match="target holds class index 7, but the vocabulary has 7 classes"):
        vocab_parallel_cross_entropy(z, torch.tensor([0, 1, 2, 7]))
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        vocab_parallel_cross_entropy(z, y, label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction must be one of"):
        vocab_parallel_cross_entropy(z, y, reduction="avg")
    with pytest.raises(TypeError, match="integer tensor of class indices"):
        vocab_parallel_cross_entropy(z, y.float())
    h, w = torch.randn(4, 3), torch.randn(7, 3)
    with pytest.raises(ValueError, match=r"input must have shape \(\*, D\) with D = 3"):
        vocab_parallel_linear_cross_entropy(torch.randn(4, 5), w, y)
    with pytest.raises(ValueError, match=r"linear_bias must have shape \(V_r,\) = \(7,\)"):
        vocab_parallel_linear_cross_entropy(h, w, y, linear_bias=torch.randn(6))
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        vocab_parallel_linear_cross_entropy(h, w, y, chunk_size=0)
    with pytest.raises(ValueError, match="query and key must have the same shape"):
        distributed_info_nce_loss(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        distributed_nt_xent_loss(h, h, temperature=0)
    with pytest.raises(ValueError, match=r"labels must have shape \(B,\) = \(4,\)"):
        distributed_supervised_contrastive_loss(h, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="at least 2 samples over all ranks"):
        distributed_mean_and_covariance(torch.randn(1, 3))
    with pytest.raises(ValueError, match=r"splits must be in \[1, N\] = \[1, 4\]"):
        distributed_inception_score(torch.full((4, 2), 0.5), splits=5)
    with pytest.raises(ValueError, match="at least one dimension"):
        gather_with_grad(torch.tensor(1.0))
