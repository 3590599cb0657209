"""Tests of book/generative/inception_score.md: inception_score (a metric, no gradient)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.image.inception import InceptionScore

import lossbook
from lossbook import inception_score


def reference_inception_score(preds, splits=10):
    """Salimans et al.'s get_inception_score after the network (improved-gan), transcribed."""
    scores = []
    for i in range(splits):
        part = preds[(i * preds.shape[0] // splits):((i + 1) * preds.shape[0] // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        kl = np.mean(np.sum(kl, 1))
        scores.append(np.exp(kl))
    return np.mean(scores), np.std(scores)


def random_probs(n, c, sharpness=2.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(sharpness * torch.randn(n, c, generator=g, dtype=torch.float64), dim=1).to(dtype)


@pytest.mark.parametrize("n, c, splits, sharpness", [
    (10, 3, 1, 1.0), (100, 10, 10, 3.0), (101, 10, 10, 3.0), (997, 100, 7, 2.0), (50, 1000, 50, 0.5),
    (64, 2, 3, 10.0), (1, 5, 1, 1.0),
])
def test_reference_oracle(n, c, splits, sharpness, device):
    probs = random_probs(n, c, sharpness, seed=n + c)
    mean, std = inception_score(probs.to(device), splits=splits)
    assert mean.dtype == std.dtype == torch.float64 and mean.shape == std.shape == ()
    assert mean.device.type == device.type
    ref_mean, ref_std = reference_inception_score(probs.numpy(), splits)
    assert mean.item() == pytest.approx(ref_mean, rel=1e-12)
    assert std.item() == pytest.approx(ref_std, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_inputs(dtype):
    probs = random_probs(200, 10, 2.0, seed=1, dtype=dtype)
    mean, std = inception_score(probs, splits=4)
    ref_mean, ref_std = reference_inception_score(probs.double().numpy(), 4)  # the same rounded values
    assert mean.item() == pytest.approx(ref_mean, rel=1e-10) and std.item() == pytest.approx(ref_std, rel=1e-8)


@pytest.mark.parametrize("n, splits", [(100, 10), (300, 3), (64, 4)])
def test_torchmetrics_oracle(n, splits):
    """torchmetrics shuffles with the global generator, splits with chunk and divides the std by K - 1."""
    g = torch.Generator().manual_seed(n)
    logits = 3 * torch.randn(n, 10, generator=g, dtype=torch.float64)
    metric = InceptionScore(feature=torch.nn.Identity(), splits=splits)
    metric.update(logits)
    torch.manual_seed(7)
    theirs = metric.compute()
    torch.manual_seed(7)
    permutation = torch.randperm(n)
    mean, std = inception_score(torch.softmax(logits, 1)[permutation], splits=splits)
    assert mean.item() == pytest.approx(theirs[0].item(), rel=1e-12)
    assert std.item() * math.sqrt(splits / (splits - 1)) == pytest.approx(theirs[1].item(), rel=1e-10)


def test_generator_shuffles_reproducibly_without_touching_the_global_generator():
    probs = random_probs(90, 6, 3.0)
    sorted_probs = probs[probs.argmax(1).argsort()]
    state = torch.get_rng_state()
    first = inception_score(sorted_probs, splits=9, generator=torch.Generator().manual_seed(3))
    second = inception_score(sorted_probs, splits=9, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    permutation = torch.randperm(90, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first[0], inception_score(sorted_probs[permutation], splits=9)[0])
    assert first[0] > 1.4 * inception_score(sorted_probs, splits=9)[0]  # sorted by class: splits of one class


# --- properties --------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), c=st.integers(1, 12), sharpness=st.floats(0.0, 20.0), seed=st.integers(0, 10_000),
       data=st.data())
def test_bounds_and_invariances(n, c, sharpness, seed, data):
    splits = data.draw(st.integers(1, n))
    probs = random_probs(n, c, sharpness, seed)
    mean, std = inception_score(probs, splits=splits)
    assert 1 - 1e-12 <= mean.item() <= c + 1e-9 and std.item() >= 0
    columns = torch.randperm(c, generator=torch.Generator().manual_seed(seed))
    assert inception_score(probs[:, columns], splits=splits)[0].item() == pytest.approx(mean.item(), rel=1e-12)
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    assert inception_score(probs[rows], splits=1)[0].item() == pytest.approx(inception_score(probs, splits=1)[0].item(), rel=1e-12)


def test_mutual_information_form():
    probs = random_probs(300, 7, 2.0, seed=4)
    marginal = probs.mean(0)
    mutual_information = torch.special.entr(marginal).sum() - torch.special.entr(probs).sum(1).mean()
    assert inception_score(probs, splits=1)[0].log().item() == pytest.approx(mutual_information.item(), rel=1e-12)


def test_extremes_and_zeros():
    one_hot = torch.eye(5).repeat(6, 1)  # exact zeros: the reference code gives NaN, we use 0 log 0 = 0
    mean, std = inception_score(one_hot, splits=6)
    assert mean.item() == pytest.approx(5.0, rel=1e-14) and std.item() == 0
    assert inception_score(torch.full((8, 4), 0.25), splits=2)[0].item() == pytest.approx(1.0, abs=1e-14)
    collapsed = torch.zeros(10, 3)
    collapsed[:, 1] = 1
    assert inception_score(collapsed, splits=5)[0].item() == pytest.approx(1.0, abs=1e-14)


def test_result_is_detached():
    probs = random_probs(20, 4).requires_grad_()
    mean, std = inception_score(probs, splits=2)
    assert not mean.requires_grad and not std.requires_grad


# --- refusals -----------------------------------------------------------------------------

def test_refusals():
    probs = random_probs(10, 3)
    with pytest.raises(TypeError, match="probs must be a torch.Tensor"):
        inception_score(probs.numpy())
    with pytest.raises(TypeError, match="probs"):
        inception_score(torch.ones(4, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"shape \(N, C\)"):
        inception_score(probs[0])
    with pytest.raises(ValueError, match="empty"):
        inception_score(probs[:0], splits=1)
    with pytest.raises(ValueError, match=r"splits must be in \[1, N\] = \[1, 10\].*got 11"):
        inception_score(probs, splits=11)
    with pytest.raises(ValueError, match="splits must be in"):
        inception_score(probs, splits=0)
    with pytest.raises(TypeError, match="splits must be an int"):
        inception_score(probs, splits=2.0)
    with pytest.raises(TypeError, match="splits must be an int"):
        inception_score(probs, splits=True)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        inception_score(probs, splits=2, generator=0)
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\], got -"):
        inception_score(torch.log(probs), splits=2)
    with pytest.raises(ValueError, match="sum to 1 .*got a row summing to 0.5"):
        inception_score(probs / 2, splits=2)
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(torch.full((4, 3), 0.34), splits=2)


def test_sum_tolerance_and_the_validate_args_switch():
    probs = random_probs(20, 1000, 1.0, seed=2)
    inception_score(probs.half(), splits=2)  # float16 rows sum to 1 within 1e-2
    inception_score(probs.float(), splits=2)
    with lossbook.validate_args(False):
        value = inception_score(probs / 2, splits=2)[0]  # not checked: computed as given
    assert torch.isfinite(value)


def test_public_name():
    assert "inception_score" in lossbook.__all__
    assert "reference code" in lossbook.inception_score.oracle
