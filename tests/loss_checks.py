"""The checks every pointwise loss ``fn(input, target, **options)`` must pass.

Each test file calls these with its own functions and options, so the battery of
DESIGN section 5 is written once: refusals of bad input, reductions, the empty mean,
half precision, gradcheck, devices and the module wrapper. ``pair`` makes the two
tensors a loss takes: ``random_pair`` (prediction, target) for regression,
``random_margin_pair`` (scores, labels in {-1, +1}) for margin losses.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lossbook.nn

Loss = Callable[..., torch.Tensor]


def finite_arrays(max_side: int = 6, max_dims: int = 3, bound: float = 1e3):
    """Pairs of float64 arrays of one random shape, as hypothesis strategies."""
    return hnp.array_shapes(min_dims=1, max_dims=max_dims, max_side=max_side).flatmap(
        lambda shape: st.tuples(
            *[
                hnp.arrays(
                    "float64", shape, elements=st.floats(-bound, bound, allow_nan=False)
                )
                for _ in range(2)
            ]
        )
    )


def random_pair(shape, dtype=torch.float64, device="cpu", scale=1.0, seed=0, extreme=False):
    """A prediction and a target of one shape; ``extreme`` puts the residual ``2 * scale`` first."""
    generator = torch.Generator().manual_seed(seed)
    first = scale * torch.randn(shape, dtype=dtype, generator=generator)
    second = scale * torch.randn(shape, dtype=dtype, generator=generator)
    if extreme:
        first.view(-1)[0], second.view(-1)[0] = scale, -scale
    return first.to(device), second.to(device)


def random_margin_pair(shape, dtype=torch.float64, device="cpu", scale=1.0, seed=0, extreme=False):
    """Scores (logits) and labels in {-1, +1}; ``extreme`` puts the margins -scale and +scale first."""
    generator = torch.Generator().manual_seed(seed)
    scores = scale * torch.randn(shape, dtype=dtype, generator=generator)
    labels = (2 * torch.randint(0, 2, shape, generator=generator) - 1).to(dtype)
    if extreme and scores.numel() >= 2:
        scores.view(-1)[:2] = torch.tensor([-scale, scale], dtype=dtype)
        labels.view(-1)[:2] = 1
    return scores.to(device), labels.to(device)


def check_bad_input(fn: Loss, integer_target_ok: bool = False, **options) -> None:
    """Shapes are never broadcast, integers and unknown reductions are refused.

    ``integer_target_ok`` is for losses whose target holds labels, not values.
    """
    ones = torch.ones(4)
    with pytest.raises(ValueError, match=r"input and target must have the same shape, got \(4, 1\) and \(4,\)"):
        fn(torch.zeros(4, 1), ones, **options)
    with pytest.raises(TypeError, match="input must be a floating-point tensor, got dtype torch.int64"):
        fn(torch.zeros(4, dtype=torch.long), ones, **options)
    if not integer_target_ok:
        with pytest.raises(TypeError, match="target must be a floating-point tensor, got dtype torch.int32"):
            fn(torch.zeros(4), torch.zeros(4, dtype=torch.int32), **options)
    with pytest.raises(TypeError, match="input must be a torch.Tensor, got list"):
        fn([0.0, 1.0], torch.ones(2), **options)
    with pytest.raises(ValueError, match="reduction must be one of 'none', 'mean', 'sum'; got 'avg'"):
        fn(torch.zeros(4), ones, **options, reduction="avg")


def check_reductions(fn: Loss, device, pair=random_pair, **options) -> None:
    """``mean`` and ``sum`` reduce the ``none`` output; an empty mean is a connected 0."""
    input, target = pair((3, 5), device=device)
    per_element = fn(input, target, **options, reduction="none")
    assert per_element.shape == input.shape
    assert per_element.device == input.device
    torch.testing.assert_close(fn(input, target, **options, reduction="sum"), per_element.sum())
    torch.testing.assert_close(fn(input, target, **options), per_element.mean())

    empty, empty_target = pair((0, 3), device=device)
    empty.requires_grad_()
    zero = fn(empty, empty_target, **options)
    assert zero.item() == 0.0
    zero.backward()
    assert empty.grad is not None and empty.grad.shape == empty.shape


def check_gradcheck(fn: Loss, pair=random_pair, **options) -> None:
    """Analytic and numerical gradients agree in float64, for the input and, where the
    target holds values rather than labels (``random_pair``), for the target too."""
    input, target = pair((3, 4), scale=2.0, seed=3)
    target.requires_grad_(pair is random_pair)
    for reduction in ("none", "mean", "sum"):
        assert torch.autograd.gradcheck(
            lambda a, b: fn(a, b, **options, reduction=reduction), (input.requires_grad_(), target)
        )


def check_half_precision(
    fn: Loss, device, scale: float = 1e4, rtol: float = 1e-5, pair=random_pair, **options
) -> None:
    """float16 and bfloat16 inputs with values up to ``scale`` give the float32 result.

    The loss of half inputs must be finite and equal (to float32 rounding) to the loss of
    the same (rounded) values in float32, and its gradient must be finite.
    """
    input, target = pair((64,), dtype=torch.float32, scale=scale, seed=5, extreme=True)
    for dtype in (torch.float16, torch.bfloat16):
        low = input.to(dtype).to(device).requires_grad_()
        low_target = target.to(dtype).to(device)
        loss = fn(low, low_target, **options)
        assert loss.dtype == torch.float32
        assert torch.isfinite(loss), f"{dtype}: {loss}"
        reference = fn(low.detach().float(), low_target.float(), **options)
        torch.testing.assert_close(loss, reference, rtol=rtol, atol=0)
        unrounded = fn(input.to(device), target.to(device), **options)
        torch.testing.assert_close(loss, unrounded, rtol=2e-2, atol=0)
        loss.backward()
        assert low.grad.dtype == dtype and torch.isfinite(low.grad).all()
        single = low.detach().float().requires_grad_()
        fn(single, low_target.float(), **options).backward()
        torch.testing.assert_close(low.grad, single.grad.to(dtype))  # float32's, rounded
        with torch.autocast(device_type=torch.device(device).type, dtype=dtype):
            assert torch.isfinite(fn(low.detach(), low_target, **options))


def check_module(fn: Loss, device, pair=random_pair, **options) -> None:
    """``lossbook.nn.<Name>(**options)`` is the function with those options."""
    module_class = getattr(lossbook.nn, fn.nn_module_name)
    module = module_class(**options).to(device)
    input, target = pair((4, 3), device=device)
    # The module moved its tensor options (class weights) with .to(device); the call needs them there too.
    on_device = {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in options.items()}
    torch.testing.assert_close(module(input, target), fn(input, target, **on_device))
    assert module_class.__module__ == "lossbook.nn"
    assert fn.__name__ in module_class.__doc__
    with pytest.raises(TypeError, match="unknown option"):
        module_class(not_an_option=1)
