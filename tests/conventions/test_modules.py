"""Tests of book/conventions/modules.md: LossModule and the generated classes of lossbook.nn."""

import copy
import inspect
import pickle

import pytest
import torch
from torch import nn

import lossbook
import lossbook.nn
from lossbook.conventions.anatomy import check_positive, residual_loss
from lossbook.conventions.modules import LossModule, metric, nn_module

# The classes tools/export.py writes; a stateful loss's module (its chapter writes it) may name
# its function too, but has its own constructor.
GENERATED = [
    getattr(lossbook.nn, name)
    for name in lossbook.nn.__all__
    if getattr(lossbook.nn, name).function and not getattr(lossbook.nn, name).function.nn_module_stateful
]


def scaled_l1(input, target, *, scale=1.0, weight=None, reduction="mean"):
    loss = scale * (input - target).abs()
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


scaled_l1 = nn_module("ScaledL1Loss", oracle="NumPy", check=lambda scale: check_positive(scale, "scale"))(scaled_l1)


class ScaledL1Loss(LossModule):
    function = staticmethod(scaled_l1)
    options = ("scale", "weight", "reduction")
    tensor_options = ("weight",)

    def __init__(self, *, scale: float = 1.0, weight=None, reduction: str = "mean") -> None:
        super().__init__(scale=scale, weight=weight, reduction=reduction)

    def forward(self, input, target):
        return scaled_l1(input, target, scale=self.scale, weight=self.weight, reduction=self.reduction)


def test_options_are_attributes_buffers_and_checked(device):
    module = ScaledL1Loss(scale=2.0, weight=torch.ones(3)).to(device)
    assert module.weight.device.type == device.type and "weight" in dict(module.named_buffers())
    assert ScaledL1Loss().weight is None
    none_then_tensor = ScaledL1Loss()
    none_then_tensor.weight = torch.ones(2)  # a buffer registered as None takes a tensor later
    assert "weight" in dict(none_then_tensor.named_buffers())
    with pytest.raises(ValueError, match="scale must be a positive number"):
        ScaledL1Loss(scale=-1.0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        ScaledL1Loss(reduction="avg")
    assert repr(ScaledL1Loss(scale=3.0)) == "ScaledL1Loss(scale=3.0, weight=None, reduction='mean')"
    assert "shape=(10,)" in repr(ScaledL1Loss(weight=torch.ones(10)))


def test_module_options_become_submodules():
    class WithExtractor(LossModule):
        options = ("reduction",)

        def __init__(self, extractor: nn.Module, *, reduction: str = "mean") -> None:
            super().__init__(reduction=reduction)
            self.extractor = extractor

        def forward(self, input, target):
            return residual_loss(self.extractor(input), self.extractor(target), torch.square, reduction=self.reduction)

    loss = WithExtractor(nn.Linear(3, 2))
    assert [name for name, _ in loss.named_parameters()] == ["extractor.weight", "extractor.bias"]
    assert loss.to(torch.float64).extractor.weight.dtype == torch.float64
    assert set(loss.state_dict()) == {"extractor.weight", "extractor.bias"}


def test_metric_marks_without_a_module():
    @metric(oracle="NumPy")
    def accuracy(input, target):
        return (input.argmax(1) == target).float().mean()

    assert accuracy.oracle == "NumPy" and not hasattr(accuracy, "nn_module_name")


@pytest.mark.parametrize("module_class", GENERATED, ids=lambda c: c.__name__)
def test_generated_class_mirrors_its_function(module_class):
    function = module_class.function
    parameters = inspect.signature(function).parameters.values()
    options = [p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
    tensors = [p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    init = inspect.signature(module_class)
    assert [(p.name, p.default, p.kind) for p in init.parameters.values()] == [
        (p.name, p.default, p.kind) for p in options
    ]
    assert list(inspect.signature(module_class.forward).parameters)[1:] == tensors
    assert module_class.options == tuple(p.name for p in options)
    assert module_class.__module__ == "lossbook.nn" and function.nn_module_name == module_class.__name__
    assert "class " + module_class.__name__ in inspect.getsource(module_class)  # real source, not type()
    assert f"lossbook.{function.__name__}" in module_class.__doc__


@pytest.mark.parametrize("module_class", GENERATED, ids=lambda c: c.__name__)
def test_generated_class_defaults_pickle_and_copy(module_class):
    required = {p.name for p in inspect.signature(module_class).parameters.values() if p.default is inspect.Parameter.empty}
    module = module_class(**{name: 2.0 for name in required})
    for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        assert repr(clone) == repr(module)
    for name in module_class.options:
        assert hasattr(module, name)


def test_flat_namespace_holds_losses_and_the_switch_only():
    for name in lossbook.__all__:
        assert hasattr(getattr(lossbook, name), "oracle"), name
    assert not any(name.startswith("check_") for name in dir(lossbook))
    assert lossbook.__version__ == __import__("lossbook._version", fromlist=["x"]).__version__
