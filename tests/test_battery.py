"""The battery of DESIGN section 5, run over every loss declared in ``tests/registry.py``.

What every loss owes its users, checked the same way for all of them: refusals of bad
input, reductions and the empty mean, gradients (gradcheck and gradgradcheck), half
precision, the module in ``lossbook.nn``, and the tracing tools: ``torch.compile``
(``fullgraph=True``, the cheap ``aot_eager`` backend: inductor belongs to the
benchmarks), ``torch.func.vmap`` and ``grad``, ``torch.export`` of the module, and no
host synchronization on CUDA. Oracles and properties stay in the chapters' test files.
"""

from __future__ import annotations

import copy
import inspect
import io
import pickle

import pytest
import torch
from registry import CASES, Case, case_ids, first_case_of_each_loss

import lossbook
import lossbook.nn
from lossbook.conventions.anatomy import validate_args

REDUCTIONS = ("none", "mean", "sum")
EACH_LOSS = first_case_of_each_loss()
cases = pytest.mark.parametrize("case", CASES, ids=case_ids())
each_loss = pytest.mark.parametrize("case", EACH_LOSS, ids=case_ids(EACH_LOSS))
# A stateful loss's module (CenterLoss owns its centers) has its own constructor and forward:
# its chapter's test file tests it; the module tests here cover the generated modules.
GENERATED = [case for case in CASES if not case.fn.nn_module_stateful]
EACH_GENERATED = first_case_of_each_loss(GENERATED)
generated_cases = pytest.mark.parametrize("case", GENERATED, ids=case_ids(GENERATED))
each_generated = pytest.mark.parametrize("case", EACH_GENERATED, ids=case_ids(EACH_GENERATED))


def call(case: Case, tensors, device="cpu", **options):
    return case.fn(*tensors, **{**case.options_on(device), **options})


def module_of(case: Case, device="cpu"):
    return getattr(lossbook.nn, case.fn.nn_module_name)(**case.options_on(device)).to(device)


# --- bad input ---------------------------------------------------------------------------------


@each_loss
def test_refuses_bad_input(case):
    tensors = case.inputs().tensors
    with pytest.raises(ValueError, match="reduction must be one of"):
        call(case, tensors, reduction="avg")
    with pytest.raises(TypeError, match="must be a floating-point tensor, got dtype torch.int64"):
        call(case, (tensors[0].long(), *tensors[1:]))
    with pytest.raises(TypeError, match="must be a torch.Tensor, got list"):
        call(case, (tensors[0].tolist(), *tensors[1:]))
    if len(tensors) > 1:  # a loss of one tensor (a generator's scores, an image's TV) has no pair to mismatch
        with pytest.raises(ValueError, match="shape"):  # never broadcast
            call(case, (tensors[0], tensors[1].unsqueeze(-1), *tensors[2:]))


@cases
def test_refuses_bad_options_at_call_and_construction(case):
    tensors = case.inputs().tensors
    for options, error, message in case.bad_options:
        with pytest.raises(error, match=message):
            call(case, tensors, **options)
        if not case.fn.nn_module_stateful:
            with pytest.raises(error, match=message):
                getattr(lossbook.nn, case.fn.nn_module_name)(**{**case.options, **options})


# --- reductions, gradients, precision -------------------------------------------------------------


@cases
def test_reductions_and_the_empty_mean(case, device):
    inputs = case.inputs(6, device=device)
    per_element = call(case, inputs.tensors, device, reduction="none")
    assert per_element.shape == inputs.none_shape and per_element.device.type == device.type
    torch.testing.assert_close(call(case, inputs.tensors, device, reduction="sum"), per_element.sum())
    if case.mean_of_none:
        torch.testing.assert_close(call(case, inputs.tensors, device, reduction="mean"), per_element.mean())

    empty = case.inputs(0, device=device)
    first = empty.tensors[0].requires_grad_()
    zero = call(case, empty.tensors, device, reduction="mean")
    assert zero.item() == 0.0 and zero.requires_grad
    zero.backward()
    assert first.grad is not None and first.grad.shape == first.shape


@cases
def test_gradcheck(case):
    if not case.gradcheck:
        pytest.skip("the gradient is deliberately not the derivative of the value (Case.gradcheck)")
    inputs = case.inputs(3, seed=3)
    tensors = list(inputs.tensors)
    for index in inputs.differentiable:
        tensors[index].requires_grad_()
    for reduction in REDUCTIONS:
        def loss(*differentiable, reduction=reduction):
            for index, tensor in zip(inputs.differentiable, differentiable):
                tensors[index] = tensor
            return call(case, tensors, reduction=reduction)

        chosen = tuple(tensors[i] for i in inputs.differentiable)
        assert torch.autograd.gradcheck(loss, chosen)
        if case.gradgrad and reduction == "mean":
            assert torch.autograd.gradgradcheck(loss, chosen)


@cases
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision(case, dtype, device):
    """Extreme half-precision inputs give a finite float32 loss equal to float32's on the same values."""
    inputs = case.inputs(16, dtype=torch.float32, extreme=True, seed=5)
    low = [t.to(device, dtype) if t.is_floating_point() else t.to(device) for t in inputs.tensors]
    low[0].requires_grad_()
    loss = call(case, low, device)
    assert loss.dtype == torch.float32 and torch.isfinite(loss), loss
    single = [t.detach().float() if t.is_floating_point() else t for t in low]
    single[0].requires_grad_()
    reference = call(case, single, device)
    torch.testing.assert_close(loss, reference, rtol=case.half_rtol, atol=1e-6)
    loss.backward()
    reference.backward()
    assert low[0].grad.dtype == dtype
    if case.half_finite_grad:
        assert torch.isfinite(low[0].grad).all()
        torch.testing.assert_close(low[0].grad, single[0].grad.to(dtype))
    with torch.autocast(device_type=device.type, dtype=dtype):
        assert torch.isfinite(call(case, [t.detach() for t in low], device))


# --- the module ----------------------------------------------------------------------------------


@generated_cases
def test_module_is_the_function(case, device):
    module = module_of(case, device)
    inputs = case.inputs(4, device=device)
    torch.testing.assert_close(module(*inputs.tensors), call(case, inputs.tensors, device))
    names = list(inspect.signature(module.forward).parameters)
    torch.testing.assert_close(module(**dict(zip(names, inputs.tensors))), call(case, inputs.tensors, device))
    assert type(module).__module__ == "lossbook.nn" and case.fn.__name__ in type(module).__doc__
    for name, value in case.options.items():
        assert name in repr(module)
        if isinstance(value, torch.Tensor):
            assert name in dict(module.named_buffers()) and getattr(module, name).device.type == device.type


@each_generated
def test_module_options_are_attributes_read_at_call_time(case):
    module = module_of(case)
    inputs = case.inputs(4)
    module.reduction = "none"
    assert module(*inputs.tensors).shape == inputs.none_shape
    module.reduction = "sum"
    torch.testing.assert_close(module(*inputs.tensors), call(case, inputs.tensors, reduction="sum"))
    with pytest.raises(TypeError):
        getattr(lossbook.nn, case.fn.nn_module_name)(not_an_option=1)


@generated_cases
def test_module_survives_pickle_deepcopy_and_state_dict(case):
    module = module_of(case)
    inputs = case.inputs(4)
    expected = module(*inputs.tensors)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    restored = type(module)(**case.options)
    restored.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module)), restored):
        torch.testing.assert_close(clone(*inputs.tensors), expected)
        assert repr(clone) == repr(module)


# --- tracing ------------------------------------------------------------------------------------


@cases
def test_compile_fullgraph_equals_eager(case):
    torch._dynamo.reset()
    inputs = case.inputs(4)
    for reduction in ("mean", "none"):
        eager_inputs = [t.clone().requires_grad_(i in inputs.differentiable) for i, t in enumerate(inputs.tensors)]
        traced_inputs = [t.clone().requires_grad_(i in inputs.differentiable) for i, t in enumerate(inputs.tensors)]

        def loss(*tensors, reduction=reduction):
            return call(case, tensors, reduction=reduction)

        compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
        expected, result = loss(*eager_inputs), compiled(*traced_inputs)
        torch.testing.assert_close(result, expected)
        expected.sum().backward()
        result.sum().backward()
        for i in inputs.differentiable:
            torch.testing.assert_close(traced_inputs[i].grad, eager_inputs[i].grad)


@cases
def test_vmap_and_per_sample_gradients(case):
    """vmap over a batch of independent problems equals a loop; vmap(grad) gives per-sample gradients."""
    problems = [case.inputs(3, seed=seed).tensors for seed in range(4)]
    stacked = [torch.stack(column) for column in zip(*problems)]

    def loss(*tensors):
        return call(case, tensors)

    torch.testing.assert_close(torch.func.vmap(loss)(*stacked), torch.stack([loss(*p) for p in problems]))
    per_sample = torch.func.vmap(torch.func.grad(loss))(*stacked)
    for index, problem in enumerate(problems):
        first = problem[0].clone().requires_grad_()
        (expected,) = torch.autograd.grad(loss(first, *problem[1:]), first)
        torch.testing.assert_close(per_sample[index], expected)


@generated_cases
def test_module_exports(case):
    module = module_of(case)
    inputs = case.inputs(4)
    program = torch.export.export(module, tuple(inputs.tensors))
    torch.testing.assert_close(program.module()(*inputs.tensors), module(*inputs.tensors))


@each_loss
def test_value_checks_can_be_switched_off(case):
    """Inside validate_args(False) the loss runs without value checks and gives the same result."""
    inputs = case.inputs(4)
    expected = call(case, inputs.tensors)
    with validate_args(False):
        torch.testing.assert_close(call(case, inputs.tensors), expected)


@cases
@pytest.mark.skipif(not torch.cuda.is_available(), reason="host synchronization exists on CUDA only")
def test_no_host_synchronization_on_cuda(case):
    inputs = case.inputs(64, device="cuda", dtype=torch.float32)
    first = inputs.tensors[0].requires_grad_()
    options = case.options_on("cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        case.fn(*inputs.tensors, **options).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert first.grad is not None


# Losses that take a network as an argument: the battery cannot drive them, and their
# chapters' test files check the same properties (tests/generative/test_wasserstein.py).
UNDRIVEN = {"gradient_penalty"}


def test_every_loss_is_declared():
    declared = {case.fn for case in CASES}
    losses = {
        getattr(lossbook, name)
        for name in lossbook.__all__
        if hasattr(getattr(lossbook, name), "nn_module_name") and name not in UNDRIVEN
    }
    assert losses <= declared, sorted(f.__name__ for f in losses - declared)
