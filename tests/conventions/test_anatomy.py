"""Tests of book/conventions/anatomy.md: the helpers every chapter uses."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lossbook.conventions.anatomy import (
    check_floating,
    check_positive,
    check_reduction,
    check_same_shape,
    class_indices,
    compute_dtype,
    margin_loss,
    reduce_loss,
    residual_loss,
    upcast,
)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_reduce_loss_matches_torch_reductions(reduction, device):
    loss = torch.rand(4, 5, dtype=torch.float64, device=device)
    expected = {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]
    torch.testing.assert_close(reduce_loss(loss, reduction), expected)


def test_weighted_mean_divides_by_the_weight(device):
    loss = torch.tensor([1.0, 2.0, 3.0, 4.0], device=device)
    weight = torch.tensor([0.0, 1.0, 1.0, 2.0], device=device)
    assert reduce_loss(loss, "mean", weight).item() == pytest.approx((2 + 3 + 8) / 4)
    assert reduce_loss(loss, "sum", weight).item() == 13.0
    assert reduce_loss(loss, "none", weight).tolist() == [0.0, 2.0, 3.0, 8.0]


@given(st.lists(st.floats(0, 1e3), min_size=1, max_size=20), st.floats(1e-3, 1e3))
def test_weighted_mean_is_scale_free(values, scale):
    loss = torch.tensor(values, dtype=torch.float64)
    weight = torch.linspace(0.1, 1.0, len(values), dtype=torch.float64)
    torch.testing.assert_close(reduce_loss(loss, "mean", scale * weight), reduce_loss(loss, "mean", weight))


def test_weighted_mean_agrees_with_torch_cross_entropy():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(10, 4, dtype=torch.float64, generator=generator)
    target = torch.randint(0, 4, (10,), generator=generator)
    class_weight = torch.rand(4, dtype=torch.float64, generator=generator)
    per_sample = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    expected = torch.nn.functional.cross_entropy(logits, target, weight=class_weight)
    torch.testing.assert_close(reduce_loss(per_sample, "mean", class_weight[target]), expected)


@pytest.mark.parametrize("weight", [None, "zeros"])
def test_mean_of_nothing_is_a_connected_zero(weight, device):
    values = torch.empty(0, device=device, requires_grad=True) if weight is None else torch.ones(3, device=device, requires_grad=True)
    w = None if weight is None else torch.zeros(3, device=device)
    result = reduce_loss(values * 2, "mean", w)
    assert result.item() == 0.0 and not torch.isnan(result)
    result.backward()
    assert values.grad is not None and not torch.isnan(values.grad).any()


def test_checks_refuse_with_clear_messages():
    with pytest.raises(ValueError, match="reduction must be one of 'none', 'mean', 'sum'; got 'batchmean'"):
        check_reduction("batchmean")
    check_reduction("batchmean", allowed=("none", "batchmean"))
    with pytest.raises(ValueError, match="got None"):
        check_reduction(None)
    with pytest.raises(TypeError, match="weight must be a floating-point tensor, got dtype torch.bool"):
        check_floating(torch.ones(2, dtype=torch.bool), "weight")
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got float"):
        check_floating(1.0, "x")
    with pytest.raises(ValueError, match=r"a and b must have the same shape, got \(2, 3\) and \(3, 2\)"):
        check_same_shape(torch.zeros(2, 3), torch.zeros(3, 2), names=("a", "b"))
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="delta must be a positive number"):
            check_positive(bad, "delta")
    with pytest.raises(ValueError, match="beta must be a non-negative number, got -0.5"):
        check_positive(-0.5, "beta", allow_zero=True)
    check_positive(0.0, "beta", allow_zero=True)
    with pytest.raises(TypeError, match="eps must be a number, got str"):
        check_positive("1", "eps")
    with pytest.raises(TypeError, match="eps must be a number, got bool"):
        check_positive(True, "eps")


def test_compute_dtype_and_upcast():
    half, bf16 = torch.ones(2, dtype=torch.float16), torch.ones(2, dtype=torch.bfloat16)
    assert compute_dtype(half) == compute_dtype(half, bf16) == torch.float32
    assert compute_dtype(half, torch.ones(1, dtype=torch.float64)) == torch.float64
    single = torch.ones(2)
    (same,) = upcast(single)
    assert same is single  # no copy when already in the compute dtype
    assert [t.dtype for t in upcast(half, bf16)] == [torch.float32, torch.float32]


def test_residual_loss_passes_the_residual():
    input, target = torch.tensor([3.0, 1.0]), torch.tensor([1.0, 2.0])
    assert residual_loss(input, target, lambda r: r, reduction="none").tolist() == [2.0, -1.0]


def hinge(margin):
    return (1 - margin).clamp(min=0)


def test_margin_loss_matches_soft_margin_loss(device):
    generator = torch.Generator().manual_seed(1)
    scores = torch.randn(6, 3, dtype=torch.float64, generator=generator).to(device)
    labels = (torch.randint(0, 2, (6, 3), generator=generator) * 2 - 1).to(device)
    for reduction in ("none", "mean", "sum"):
        expected = torch.nn.functional.soft_margin_loss(scores, labels.double(), reduction=reduction)
        got = margin_loss(scores, labels, lambda m: torch.nn.functional.softplus(-m), reduction=reduction)
        torch.testing.assert_close(got, expected)


def test_margin_loss_refuses_bad_labels():
    scores = torch.zeros(3)
    with pytest.raises(ValueError, match=r"target must hold labels -1 or \+1, got 0.0 \(for labels 0/1 use 2 \* target - 1\)"):
        margin_loss(scores, torch.tensor([1.0, 0.0, -1.0]), hinge)
    with pytest.raises(TypeError, match="target must hold labels -1 or \\+1 as a real tensor, got dtype torch.bool"):
        margin_loss(scores, torch.tensor([True, False, True]), hinge)
    with pytest.raises(ValueError, match=r"input and target must have the same shape, got \(3,\) and \(3, 1\)"):
        margin_loss(scores, torch.ones(3, 1), hinge)
    with pytest.raises(TypeError, match="input must be a floating-point tensor"):
        margin_loss(torch.zeros(3, dtype=torch.long), torch.ones(3), hinge)
    assert margin_loss(torch.empty(0), torch.empty(0), hinge).item() == 0.0


def test_margin_loss_half_precision():
    scores = torch.tensor([50.0, -50.0, 3.0], dtype=torch.float16)
    loss = margin_loss(scores, torch.tensor([1, 1, -1]), lambda m: torch.nn.functional.softplus(-m), reduction="none")
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()
    torch.testing.assert_close(loss, torch.tensor([0.0, 50.0, 3.0485873]), rtol=1e-6, atol=1e-6)


def test_class_indices(device):
    scores = torch.zeros(2, 5, 3, device=device)
    target = torch.tensor([[0, 4, -1], [2, -1, 1]], device=device)
    safe, valid = class_indices(scores, target, ignore_index=-1)
    assert safe.tolist() == [[0, 4, 0], [2, 0, 1]]
    assert valid.tolist() == [[True, True, False], [True, False, True]]
    safe, valid = class_indices(scores, target.clamp(min=0))
    assert valid.all()


def test_class_indices_refusals():
    scores = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"target holds class index 3, but input has 3 classes \(indices 0 to 2\)"):
        class_indices(scores, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="target holds class index -100"):
        class_indices(scores, torch.tensor([0, 1, 2, -100]))  # -100 ignored only when asked
    with pytest.raises(TypeError, match="target must be an integer tensor of class indices, got dtype torch.float32"):
        class_indices(scores, torch.zeros(4))
    with pytest.raises(ValueError, match=r"target must have shape \(N, \*\) = \(4,\) for input of shape \(4, 3\), got \(4, 1\)"):
        class_indices(scores, torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"input must have shape \(N, C, \*\), got \(3,\)"):
        class_indices(torch.zeros(3), torch.tensor(1))


def test_check_class_vector_and_probabilities():
    from lossbook.conventions.anatomy import check_class_vector, check_probabilities

    check_class_vector(torch.tensor([0.0, 1.0, 2.0]), "weight", classes=3)
    with pytest.raises(ValueError, match=r"alpha must have shape \(C,\) = \(2,\), one value per class, got \(3,\)"):
        check_class_vector(torch.ones(3), "alpha", classes=2)
    with pytest.raises(ValueError, match="weight must be non-negative, got -1.0"):
        check_class_vector(torch.tensor([1.0, -1.0]), "weight", classes=2)
    with pytest.raises(TypeError, match="weight must be a floating-point tensor, got dtype torch.int64"):
        check_class_vector(torch.ones(2, dtype=torch.long), "weight", classes=2)
    check_probabilities(torch.tensor([0.0, 0.25, 1.0]))
    check_probabilities(torch.empty(0))
    with pytest.raises(ValueError, match=r"scores must hold probabilities in \[0, 1\], got -0.5"):
        check_probabilities(torch.tensor([0.5, -0.5]), "scores")
    with pytest.raises(TypeError, match="target must be a floating-point tensor"):
        check_probabilities(torch.tensor([0, 1]))


# --- value checks: eager CPU only, skipped when tracing, and a switch -----------------------------


def test_values_checked_only_in_eager_mode_on_plain_cpu_tensors():
    from lossbook.conventions.anatomy import values_checked

    plain = torch.zeros(3)
    assert values_checked(plain) and values_checked(torch.nn.Parameter(plain))
    assert torch.func.vmap(lambda row: torch.tensor(values_checked(row)))(torch.zeros(2, 3)).tolist() == [False, False]
    seen = []

    def record(x):
        seen.append(values_checked(x))
        return x.sum()

    torch.func.grad(record)(plain)
    torch.compile(record, fullgraph=True, backend="eager")(plain)
    assert seen == [False, False]
    if torch.cuda.is_available():
        assert not values_checked(plain.cuda())


def test_validate_args_switch_and_context_manager():
    import lossbook
    from lossbook.conventions.anatomy import check_probabilities, set_validate_args, validate_args

    assert lossbook.set_validate_args is set_validate_args and lossbook.validate_args is validate_args
    assert "set_validate_args" not in lossbook.__all__
    bad = torch.tensor([0.5, 2.0])
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\], got 2.0"):
        check_probabilities(bad)
    with validate_args(False):
        check_probabilities(bad)
        with validate_args(True):
            with pytest.raises(ValueError):
                check_probabilities(bad)
        check_probabilities(bad)
    with pytest.raises(ValueError):
        check_probabilities(bad)
    set_validate_args(False)
    try:
        check_probabilities(bad)
    finally:
        set_validate_args(True)
    with pytest.raises(TypeError, match="True or False"):
        set_validate_args(0)


def test_check_range_fast_path_and_ignored_values():
    from lossbook.conventions.anatomy import check_range

    def message(value):
        return f"bad {value}"

    check_range(torch.tensor([0, 4, 2]), 0, 4, message)
    check_range(torch.empty(0), 0, 1, message)
    check_range(torch.tensor([-100, 0, 4]), 0, 4, message, allowed=-100)
    with pytest.raises(ValueError, match="bad -1"):
        check_range(torch.tensor([-100, -1, 4]), 0, 4, message, allowed=-100)
    with pytest.raises(ValueError, match="bad 5"):
        check_range(torch.tensor([5, 0], dtype=torch.uint8), 0, 4, message)
    check_range(torch.tensor([0.5, float("nan")]), 0, 1, message)  # NaN is not a range error


@pytest.mark.parametrize(
    "dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16, torch.uint32]
)
def test_class_indices_accept_every_integer_dtype(dtype):
    safe, valid = class_indices(torch.zeros(3, 200), torch.tensor([0, 3, 2], dtype=dtype))
    assert safe.dtype == torch.int64 and safe.tolist() == [0, 3, 2] and valid.all()
    if dtype.is_signed:  # an int8 label with an ignored position is compared as an int8, not wrapped
        _, valid = class_indices(torch.zeros(2, 200), torch.tensor([5, -100], dtype=dtype), ignore_index=-100)
        assert valid.tolist() == [True, False]


def test_class_indices_trace_without_value_checks():
    scores, target = torch.zeros(3, 4), torch.tensor([0, -100, 2])

    def count(scores, target):
        safe, valid = class_indices(scores, target, ignore_index=-100)
        return scores.gather(1, safe.unsqueeze(1)).sum() + valid.sum()

    eager = count(scores, target)
    assert torch.compile(count, fullgraph=True, backend="aot_eager")(scores, target) == eager
    assert torch.func.vmap(count)(scores[None].expand(2, 3, 4), target[None].expand(2, 3)).tolist() == [2.0, 2.0]
