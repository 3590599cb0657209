"""Tests of book/generative/damsm.md: damsm_word_loss, damsm_sentence_loss, r_precision and
the attention helpers."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import lossbook.nn
from lossbook import damsm_sentence_loss, damsm_word_loss, info_nce_loss, r_precision
from lossbook.generative.damsm import damsm_word_scores, word_region_attention

REDUCTIONS = ["none", "mean", "sum"]
# AttnGAN's released words_loss, rewritten in its own layout: the benchmark's peer.
_spec = importlib.util.spec_from_file_location(
    "test_damsm_benchmark_cases", Path(__file__).resolve().parents[2] / "benchmarks" / "cases_damsm.py"
)
_benchmark = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_benchmark)


def features(n=4, regions=6, words=3, dim=5, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, regions, dim, dtype=torch.float64, generator=g)
    e = torch.randn(n, words, dim, dtype=torch.float64, generator=g)
    return v.to(device), e.to(device)


# --- NumPy transcriptions of the paper ---------------------------------------------------------


def softmax_numpy(x, axis):
    z = x - x.max(axis=axis, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=axis, keepdims=True)


def score_numpy(v, e, gamma1, gamma2, official_code=False):
    """R(Q, D) for one image v (R, D) and one caption e (T, D): equations (7)-(10) of AttnGAN."""
    s = e @ v.T                                                   # (T, R)
    s_bar = softmax_numpy(s, axis=0)
    alpha = softmax_numpy(gamma1 * s_bar, axis=1)
    c = alpha @ v
    cos = (c * e).sum(1) / (np.linalg.norm(c, axis=1) * np.linalg.norm(e, axis=1))
    total = np.log(np.exp(gamma2 * cos).sum())
    return total if official_code else total / gamma2


def matching_numpy(scores):
    """Per pair -log P(D_m|Q_m) - log P(Q_m|D_m) of a score matrix (rows: images)."""
    rows = scores - np.log(np.exp(scores).sum(1, keepdims=True))
    cols = scores - np.log(np.exp(scores).sum(0, keepdims=True))
    return -(np.diag(rows) + np.diag(cols))


def word_loss_numpy(v, e, lengths=None, gamma1=4.0, gamma2=5.0, gamma3=10.0, official_code=False):
    v, e = np.asarray(v, np.float64), np.asarray(e, np.float64)
    n, t = e.shape[:2]
    lengths = [t] * n if lengths is None else list(lengths)
    scores = np.array([[score_numpy(v[a], e[b, : lengths[b]], gamma1, gamma2, official_code) for b in range(n)]
                       for a in range(n)])
    return matching_numpy(gamma3 * scores)


def reduce_numpy(loss, reduction):
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean() if loss.size else 0.0}[reduction]


@pytest.mark.parametrize("official_code", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_word_loss_matches_numpy(official_code, with_lengths, reduction, device):
    v, e = features(n=5, regions=7, words=4, dim=6, seed=1, device=device)
    lengths = torch.tensor([2, 4, 1, 3, 4], device=device) if with_lengths else None
    for gammas in [(4.0, 5.0, 10.0), (1.0, 0.5, 2.0), (10.0, 20.0, 7.0)]:
        expected = reduce_numpy(word_loss_numpy(v.cpu(), e.cpu(), None if lengths is None else lengths.cpu(), *gammas,
                                                official_code=official_code), reduction)
        ours = damsm_word_loss(v, e, lengths, gamma1=gammas[0], gamma2=gammas[1], gamma3=gammas[2],
                               official_code=official_code, reduction=reduction)
        np.testing.assert_allclose(ours.cpu().numpy(), expected, rtol=1e-11, atol=1e-13)


def test_official_code_variant_matches_attngan_layout():
    g = torch.Generator().manual_seed(2)
    images = torch.randn(6, 8, 3, 3, dtype=torch.float64, generator=g)                  # N x D x 3 x 3
    words = torch.randn(6, 8, 5, dtype=torch.float64, generator=g)                      # N x D x T
    lengths = torch.tensor([5, 3, 2, 5, 4, 1])
    expected = _benchmark.attngan_words_loss(images, words, lengths.tolist())
    ours = damsm_word_loss(images.flatten(2).transpose(1, 2), words.transpose(1, 2), lengths, official_code=True)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)


def test_sentence_loss_matches_numpy_and_attngan(device):
    g = torch.Generator().manual_seed(3)
    x, y = (torch.randn(7, 5, dtype=torch.float64, generator=g).to(device) for _ in range(2))
    xn, yn = x.cpu().numpy(), y.cpu().numpy()
    cos = (xn @ yn.T) / np.outer(np.linalg.norm(xn, axis=1), np.linalg.norm(yn, axis=1))
    for gamma3 in [10.0, 1.0, 30.0]:
        per_pair = matching_numpy(gamma3 * cos)
        for reduction in REDUCTIONS:
            ours = damsm_sentence_loss(x, y, gamma3=gamma3, reduction=reduction)
            np.testing.assert_allclose(ours.cpu().numpy(), reduce_numpy(per_pair, reduction), rtol=1e-12, atol=1e-14)
    # AttnGAN's sent_loss: two nn.CrossEntropyLoss() means of the gamma3-scaled cosines
    scores = torch.from_numpy(10 * cos)
    labels = torch.arange(7)
    code = F.cross_entropy(scores, labels) + F.cross_entropy(scores.T, labels)
    torch.testing.assert_close(damsm_sentence_loss(x, y).cpu(), code)
    torch.testing.assert_close(damsm_sentence_loss(x, y), _benchmark.attngan_sent_loss(x, y))
    torch.testing.assert_close(damsm_sentence_loss(x, y, gamma3=4.0),
                               2 * info_nce_loss(x, y, temperature=0.25, symmetric=True))


# --- the attention and the scores ----------------------------------------------------------------


def test_attention_is_equation_one():
    v, e = features(n=3, regions=5, words=4, dim=3, seed=4)
    context, attention = word_region_attention(v, e, gamma1=2.5)
    assert context.shape == (3, 3, 4, 3) and attention.shape == (3, 3, 4, 5)
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 3, 4, dtype=torch.float64))
    for a in range(3):
        for b in range(3):
            s = e[b] @ v[a].T
            alpha = torch.softmax(2.5 * torch.softmax(s, dim=0), dim=1)
            torch.testing.assert_close(attention[a, b], alpha)
            torch.testing.assert_close(context[a, b], alpha @ v[a])


def test_code_variant_is_gamma2_times_the_paper():
    v, e = features(seed=5)
    for gamma2 in [0.5, 5.0, 13.0]:
        paper = damsm_word_scores(v, e, gamma2=gamma2)
        torch.testing.assert_close(damsm_word_scores(v, e, gamma2=gamma2, official_code=True), gamma2 * paper)
        torch.testing.assert_close(damsm_word_loss(v, e, gamma2=gamma2, gamma3=3.0, official_code=True),
                                   damsm_word_loss(v, e, gamma2=gamma2, gamma3=3.0 * gamma2))   # (6)


def test_score_is_a_soft_maximum_of_the_word_cosines():
    """max_i cos_i <= R(Q, D) <= max_i cos_i + log(T) / gamma2 (exercise 1)."""
    v, e = features(n=4, words=5, seed=6)
    context, _ = word_region_attention(v, e)
    cos = F.cosine_similarity(context, e[None], dim=-1)
    best = cos.max(dim=-1).values
    for gamma2 in [0.3, 5.0, 50.0]:
        scores = damsm_word_scores(v, e, gamma2=gamma2)
        assert (scores >= best - 1e-12).all() and (scores <= best + math.log(5) / gamma2 + 1e-12).all()


def test_padding_is_ignored():
    v, e = features(n=4, words=4, seed=7)
    lengths = torch.tensor([1, 4, 2, 3])
    garbage = e.clone()
    for b, n in enumerate(lengths.tolist()):
        garbage[b, n:] = 1e3 * torch.randn_like(garbage[b, n:])
    for official_code in [False, True]:
        torch.testing.assert_close(damsm_word_loss(v, garbage, lengths, official_code=official_code),
                                   damsm_word_loss(v, e, lengths, official_code=official_code))
    full = torch.full((4,), 4)
    torch.testing.assert_close(damsm_word_loss(v, e, full), damsm_word_loss(v, e))
    for dtype in [torch.uint8, torch.int8, torch.int16, torch.int32]:
        torch.testing.assert_close(damsm_word_loss(v, e, lengths.to(dtype)), damsm_word_loss(v, e, lengths))


def test_hand_derived_gradient_of_the_scores():
    """(4): d L / d S = (softmax_rows - I) + (softmax_cols - I), through gamma3 R."""
    v, e = features(n=5, seed=8)
    scores = damsm_word_scores(v, e).detach().requires_grad_()
    from lossbook.generative.damsm import _matching_loss

    (grad,) = torch.autograd.grad(_matching_loss(10 * scores).sum(), scores)
    big = 10 * scores.detach()
    eye = torch.eye(5, dtype=torch.float64)
    torch.testing.assert_close(grad, 10 * ((torch.softmax(big, 1) - eye) + (torch.softmax(big, 0) - eye)))


def test_gradcheck_with_lengths():
    v, e = features(n=3, regions=4, words=3, dim=3, seed=9)
    lengths = torch.tensor([1, 3, 2])
    v.requires_grad_()
    e.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: damsm_word_loss(a, b, lengths), (v, e))
    assert torch.autograd.gradgradcheck(lambda a, b: damsm_word_loss(a, b, lengths, official_code=True), (v, e))


# --- properties -------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.integers(1, 4), st.integers(0, 1000),
       st.floats(0.5, 10.0), st.floats(0.5, 10.0), st.floats(0.5, 20.0))
def test_properties(n, regions, words, seed, gamma1, gamma2, gamma3):
    v, e = features(n=n, regions=regions, words=words, dim=3, seed=seed)
    options = dict(gamma1=gamma1, gamma2=gamma2, gamma3=gamma3)
    loss = damsm_word_loss(v, e, reduction="none", **options)
    assert loss.shape == (n,) and (loss >= -1e-12).all() and torch.isfinite(loss).all()
    # a permutation of the pairs permutes the per-pair losses
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(damsm_word_loss(v[perm], e[perm], reduction="none", **options), loss[perm])
    # the sentence loss is symmetric in its two arguments
    x, y = v.mean(1), e.mean(1)
    torch.testing.assert_close(damsm_sentence_loss(x, y, gamma3=gamma3, reduction="none"),
                               damsm_sentence_loss(y, x, gamma3=gamma3, reduction="none"))
    if n == 1:  # one pair: nothing to confuse it with
        assert loss.abs().max() < 1e-12


def test_a_batch_of_equal_scores_costs_two_log_m():
    v = torch.ones(6, 3, 2, dtype=torch.float64)
    e = torch.ones(6, 2, 2, dtype=torch.float64)
    torch.testing.assert_close(damsm_word_loss(v, e), torch.tensor(2 * math.log(6), dtype=torch.float64))
    torch.testing.assert_close(damsm_sentence_loss(v[:, 0], e[:, 0]), torch.tensor(2 * math.log(6), dtype=torch.float64))


# --- bad input ----------------------------------------------------------------------------------


def test_bad_input():
    v, e = features(n=3)
    with pytest.raises(ValueError, match=r"region_features \(N, R, D\) and word_features \(N, T, D\) must share N and D"):
        damsm_word_loss(v, e[:2])
    with pytest.raises(ValueError, match="must share N and D"):
        damsm_word_loss(v, e[..., :3])
    with pytest.raises(ValueError, match=r"region_features must have shape \(N, R, D\), got \(3, 30\)"):
        damsm_word_loss(v.flatten(1), e)
    with pytest.raises(ValueError, match=r"word_lengths must have shape \(N,\) = \(3,\), got \(3, 1\)"):
        damsm_word_loss(v, e, torch.ones(3, 1, dtype=torch.long))
    with pytest.raises(TypeError, match="word_lengths must be an integer tensor"):
        damsm_word_loss(v, e, torch.ones(3))
    with pytest.raises(TypeError, match="word_lengths must be an integer tensor"):
        damsm_word_loss(v, e, [1, 2, 3])
    with pytest.raises(ValueError, match=r"word_lengths must be in \[1, T\] = \[1, 3\], got 0"):
        damsm_word_loss(v, e, torch.tensor([1, 0, 2]))
    with pytest.raises(ValueError, match=r"word_lengths must be in \[1, T\] = \[1, 3\], got 4"):
        damsm_word_loss(v, e, torch.tensor([1, 4, 2]))
    with pytest.raises(ValueError, match="gamma1 must be a positive number, got -1"):
        word_region_attention(v, e, gamma1=-1)
    with pytest.raises(TypeError, match="official_code must be True or False"):
        lossbook.nn.DAMSMWordLoss(official_code="paper")
    with pytest.raises(ValueError, match=r"image_features and sentence_features must have the same shape \(N, D\)"):
        damsm_sentence_loss(v[:, 0], e[:2, 0])


# --- precision and the modules -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_and_autocast(dtype, device):
    v, e = features(n=6, seed=10, device=device)
    v, e = (100 * v).to(dtype), (100 * e).to(dtype)          # dot products beyond float16's 65504
    loss = damsm_word_loss(v, e)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    torch.testing.assert_close(loss, damsm_word_loss(v.float(), e.float()))
    with torch.autocast(device_type=device.type, dtype=dtype):
        assert torch.isfinite(damsm_word_loss(v.float(), e.float()))


def test_module_takes_lengths_per_call():
    v, e = features(n=4, seed=11)
    lengths = torch.tensor([3, 1, 2, 3])
    criterion = lossbook.nn.DAMSMWordLoss(gamma3=5.0)
    torch.testing.assert_close(criterion(v, e, lengths), damsm_word_loss(v, e, lengths, gamma3=5.0))
    torch.testing.assert_close(criterion(v, e), damsm_word_loss(v, e, gamma3=5.0))
    criterion.official_code = True
    torch.testing.assert_close(criterion(v, e, lengths), damsm_word_loss(v, e, lengths, gamma3=5.0, official_code=True))
    program = torch.export.export(lossbook.nn.DAMSMWordLoss(), (v, e, lengths))
    torch.testing.assert_close(program.module()(v, e, lengths), damsm_word_loss(v, e, lengths))


# --- R-precision ---------------------------------------------------------------------------------


def r_precision_numpy(x, y, candidates, k, draws_keys=None):
    """A loop over images: own text plus the drawn others, ranked by cosine similarity."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    cos = (x @ y.T) / np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1))
    hits = 0
    for i in range(len(x)):
        if draws_keys is None:
            others = [j for j in range(len(x)) if j != i]
        else:
            keys = draws_keys[i].copy()
            keys[i] = 2.0
            others = list(np.argsort(keys, kind="stable")[: candidates - 1])
        ahead = sum(cos[i, j] > cos[i, i] for j in others)
        hits += ahead < k
    return hits / len(x)


@pytest.mark.parametrize("k", [1, 3])
def test_r_precision_matches_a_loop(k, device):
    g = torch.Generator().manual_seed(12)
    x = torch.randn(40, 6, dtype=torch.float64, generator=g)
    y = x + 1.2 * torch.randn(40, 6, dtype=torch.float64, generator=g)
    assert math.isclose(r_precision(x.to(device), y.to(device), candidates=None, k=k).item(),
                        r_precision_numpy(x, y, None, k))
    keys = torch.rand(40, 40, generator=torch.Generator().manual_seed(3), dtype=torch.float64).numpy()
    ours = r_precision(x.to(device), y.to(device), candidates=10, k=k, generator=torch.Generator().manual_seed(3))
    assert math.isclose(ours.item(), r_precision_numpy(x, y, 10, k, keys))
    assert ours.dtype == torch.float64 and not ours.requires_grad


def test_r_precision_chance_and_perfection():
    g = torch.Generator().manual_seed(13)
    x = torch.randn(1000, 8, generator=g)
    assert r_precision(x, x, generator=g).item() == 1.0
    values = torch.stack([r_precision(x, torch.randn(1000, 8, generator=g), candidates=20, generator=g)
                          for _ in range(5)])
    assert abs(values.mean().item() - 0.05) < 0.015
    assert r_precision(x, x, candidates=1).item() == 1.0      # a pool of one: always a hit
    assert r_precision(x.half(), x.half()).dtype == torch.float32


def test_r_precision_refusals():
    x = torch.randn(5, 3)
    with pytest.raises(ValueError, match=r"candidates must be an int in \[1, N\] = \[1, 5\] or None, got 100"):
        r_precision(x, x)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, candidates\] = \[1, 4\], got 5"):
        r_precision(x, x, candidates=4, k=5)
    with pytest.raises(ValueError, match="needs at least one image and text pair"):
        r_precision(x[:0], x[:0], candidates=None)
    with pytest.raises(ValueError, match=r"image_features and text_features must have the same shape"):
        r_precision(x, x[:4], candidates=None)
    with pytest.raises(TypeError, match="text_features must be a floating-point tensor"):
        r_precision(x, x.long(), candidates=None)
