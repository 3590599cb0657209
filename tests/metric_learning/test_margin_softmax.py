"""Tests of book/metric_learning/margin_softmax.md: cosface_loss, arcface_loss and their stateful modules."""

import copy
import io
import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pytorch_metric_learning import losses as pml

import lossbook
import lossbook.nn
from lossbook import arcface_loss, cosface_loss
from lossbook.metric_learning.margin_softmax import arcface_target_logit

REDUCTIONS = ["none", "mean", "sum"]


def problem(n=12, classes=5, dim=4, seed=0, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(classes, dim, generator=g, dtype=dtype)
    labels = torch.randint(0, classes, (n,), generator=g)
    embeddings = weight[labels] + 1.5 * torch.randn(n, dim, generator=g, dtype=dtype)
    return embeddings.to(device), weight.to(device), labels.to(device)


def cosines_numpy(embeddings, weight):
    e = np.asarray(embeddings, np.float64)
    w = np.asarray(weight, np.float64)
    return (e / np.linalg.norm(e, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T


def margin_softmax_numpy(embeddings, weight, labels, psi, scale):
    """Equation (2): -log softmax of scale * cos with the target's cosine replaced by psi(theta_y), per sample."""
    cos = cosines_numpy(embeddings, weight)
    labels = np.asarray(labels)
    losses = []
    for i, y in enumerate(labels):
        theta = math.acos(min(1.0, max(-1.0, cos[i, y])))
        logits = scale * cos[i].copy()
        logits[y] = scale * psi(theta, cos[i, y])
        top = logits.max()
        losses.append(top + math.log(np.exp(logits - top).sum()) - logits[y])
    return np.array(losses)


def cosface_psi(margin):
    return lambda theta, c: c - margin


def arcface_psi(margin, easy_margin=False):
    """The paper's cos(theta + m) through the angle, with insightface's two choices (th, mm / easy)."""
    def psi(theta, c):
        if easy_margin:
            return math.cos(theta + margin) if c > 0 else c
        return math.cos(theta + margin) if c > math.cos(math.pi - margin) else c - math.sin(math.pi - margin) * margin
    return psi


def reduce_numpy(loss, reduction):
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean() if len(loss) else 0.0}[reduction]


# --- oracles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n,classes,dim", [(1, 2, 2), (12, 5, 4), (40, 10, 16)])
def test_cosface_matches_numpy(n, classes, dim, device):
    embeddings, weight, labels = problem(n, classes, dim, seed=1, device=device)
    for scale in [1.0, 16.0, 64.0]:
        for margin in [0.0, 0.1, 0.35, 0.8]:
            expected = margin_softmax_numpy(embeddings.cpu(), weight.cpu(), labels.cpu(), cosface_psi(margin), scale)
            for reduction in REDUCTIONS:
                ours = cosface_loss(embeddings, weight, labels, scale=scale, margin=margin, reduction=reduction)
                np.testing.assert_allclose(ours.cpu().numpy(), reduce_numpy(expected, reduction), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n,classes,dim", [(1, 2, 2), (12, 5, 4), (40, 10, 16)])
@pytest.mark.parametrize("easy_margin", [False, True])
def test_arcface_matches_numpy(n, classes, dim, easy_margin, device):
    embeddings, weight, labels = problem(n, classes, dim, seed=2, device=device)
    for scale in [1.0, 16.0, 64.0]:
        for margin in [0.0, 0.2, 0.5, 1.0, 2.0, 3.0]:
            expected = margin_softmax_numpy(embeddings.cpu(), weight.cpu(), labels.cpu(),
                                            arcface_psi(margin, easy_margin), scale)
            for reduction in REDUCTIONS:
                ours = arcface_loss(embeddings, weight, labels, scale=scale, margin=margin, easy_margin=easy_margin,
                                    reduction=reduction)
                np.testing.assert_allclose(ours.cpu().numpy(), reduce_numpy(expected, reduction), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("margin", [0.0, 0.1, 0.35, 1.0])
def test_cosface_matches_pml(margin):
    embeddings, weight, labels = problem(30, 7, 8, seed=3)
    for scale in [16.0, 64.0]:
        theirs = pml.CosFaceLoss(7, 8, margin=margin, scale=scale)
        theirs.W.data = weight.T.clone()  # PML keeps (D, C)
        torch.testing.assert_close(cosface_loss(embeddings, weight, labels, scale=scale, margin=margin),
                                   theirs(embeddings, labels), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("margin", [0.0, 0.2, 0.5, 1.0, 2.0])
def test_arcface_matches_pml_with_the_margin_in_degrees(margin):
    embeddings, weight, labels = problem(30, 7, 8, seed=4)
    for scale in [16.0, 64.0]:
        theirs = pml.ArcFaceLoss(7, 8, margin=math.degrees(margin), scale=scale)
        theirs.W.data = weight.T.clone()
        torch.testing.assert_close(arcface_loss(embeddings, weight, labels, scale=scale, margin=margin),
                                   theirs(embeddings, labels), rtol=1e-10, atol=1e-10)


def test_pml_defaults_are_the_papers():
    assert pml.CosFaceLoss(3, 2).margin == 0.35 and pml.CosFaceLoss(3, 2).scale == 64
    arc = pml.ArcFaceLoss(3, 2)
    assert arc.scale == 64 and abs(arc.margin - math.radians(28.6)) < 1e-12 and abs(arc.margin - 0.5) < 1e-3
    assert pml.ArcFaceLoss(3, 2).W.shape == (2, 3)  # (D, C): the transpose of lossbook's weight


def test_margin_zero_is_the_normalized_softmax():
    embeddings, weight, labels = problem(20, 6, 5, seed=5)
    logits = 30.0 * F.normalize(embeddings, dim=1) @ F.normalize(weight, dim=1).T
    expected = F.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(cosface_loss(embeddings, weight, labels, scale=30.0, margin=0.0, reduction="none"), expected)
    torch.testing.assert_close(arcface_loss(embeddings, weight, labels, scale=30.0, margin=0.0, reduction="none"), expected)


def test_worked_examples():
    embeddings, weight = torch.tensor([[1.0, 0.0]], dtype=torch.float64), torch.eye(2, dtype=torch.float64)
    target = torch.tensor([0])
    torch.testing.assert_close(cosface_loss(embeddings, weight, target, scale=1.0, margin=0.0),
                               torch.tensor(math.log1p(math.exp(-1.0)), dtype=torch.float64))
    torch.testing.assert_close(arcface_loss(embeddings, weight, target, scale=1.0),
                               torch.tensor(math.log1p(math.exp(-math.cos(0.5))), dtype=torch.float64))
    # insightface's constants: th = cos(pi - m), mm = sin(pi - m) * m
    m = 0.5
    just_past = torch.tensor([math.cos(math.pi - m) - 1e-9], dtype=torch.float64)
    torch.testing.assert_close(arcface_target_logit(just_past, m), just_past - math.sin(math.pi - m) * m)


# --- gradients ---------------------------------------------------------------------------------


def test_hand_derived_gradient():
    """(6) with (4): d l / d cos_y = kappa (p_y - 1) psi'(c), d l / d cos_j = kappa p_j."""
    g = torch.Generator().manual_seed(6)
    cosines = (2 * torch.rand(16, 5, generator=g, dtype=torch.float64) - 1).requires_grad_()
    labels = torch.randint(0, 5, (16,), generator=g)
    scale, margin = 8.0, 0.7
    target = F.one_hot(labels, 5).bool()
    psi = arcface_target_logit(cosines.gather(1, labels[:, None])[:, 0], margin)
    logits = scale * torch.where(target, psi[:, None], cosines)
    (autograd,) = torch.autograd.grad(F.cross_entropy(logits, labels, reduction="sum"), cosines)
    c = cosines.detach().gather(1, labels[:, None])[:, 0]
    p = torch.softmax(logits.detach(), 1)
    slope = torch.where(c > math.cos(math.pi - margin), math.cos(margin) + math.sin(margin) * c / (1 - c**2).sqrt(), 1.0)
    torch.testing.assert_close(autograd, torch.where(target, scale * (p - 1) * slope[:, None], scale * p))


def test_gradient_is_finite_where_the_embedding_is_on_its_class_weight():
    axes = torch.eye(4, dtype=torch.float64)
    embeddings = axes.clone().requires_grad_()
    labels = torch.arange(4)
    for easy_margin in (False, True):
        (gradient,) = torch.autograd.grad(arcface_loss(embeddings, axes, labels, easy_margin=easy_margin), embeddings)
        assert torch.isfinite(gradient).all()
    c = torch.tensor([1.0, -1.0], dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(arcface_target_logit(c, 0.5).sum(), c)
    torch.testing.assert_close(slope, torch.tensor([math.cos(0.5), 1.0], dtype=torch.float64))


# --- properties ---------------------------------------------------------------------------------


@given(hnp.arrays("float64", st.integers(1, 200), elements=st.floats(-1.0, 1.0)), st.floats(0.0, 3.1))
def test_arcface_target_is_decreasing_in_the_angle_and_below_the_cosine(cosines, margin):
    """Decreasing in theta for margins below about 2.33 rad (cos m + m sin m > 1, exercise 3), below cos always."""
    c = torch.from_numpy(np.sort(cosines))
    psi = arcface_target_logit(c, margin)
    if math.cos(margin) + margin * math.sin(margin) >= 1:
        assert (psi[1:] >= psi[:-1] - 1e-12).all()  # increasing in cos, i.e. decreasing in theta
    assert (psi <= c + 1e-12).all()
    easy = arcface_target_logit(c, margin, easy_margin=True)
    assert (easy <= c + 1e-12).all() and torch.equal(easy[c <= 0], c[c <= 0])


@given(st.integers(1, 8), st.integers(2, 6), st.floats(0.5, 64.0), st.floats(0.0, 1.0), st.floats(0.1, 10.0))
def test_margin_losses_properties(n, classes, scale, margin, stretch):
    embeddings, weight, labels = problem(n, classes, 3, seed=n * classes)
    cos = cosface_loss(embeddings, weight, labels, scale=scale, margin=margin, reduction="none")
    arc = arcface_loss(embeddings, weight, labels, scale=scale, margin=margin, reduction="none")
    plain = cosface_loss(embeddings, weight, labels, scale=scale, margin=0.0, reduction="none")
    for loss in (cos, arc):
        assert torch.isfinite(loss).all() and (loss >= plain - 1e-9).all()  # a margin never makes it easier
    # invariant to the norms of embeddings and weights, equivariant to relabelling the classes
    torch.testing.assert_close(cosface_loss(stretch * embeddings, weight / stretch, labels, scale=scale, margin=margin,
                                            reduction="none"), cos)
    order = torch.arange(classes).flip(0)
    inverse = torch.argsort(order)
    torch.testing.assert_close(arcface_loss(embeddings, weight[order], inverse[labels], scale=scale, margin=margin,
                                            reduction="none"), arc)


# --- refusals ------------------------------------------------------------------------------------


def test_refusals():
    embeddings, weight, labels = problem(4, 3, 2)
    with pytest.raises(ValueError, match=r"weight must have shape \(C, D\) with D = 2"):
        cosface_loss(embeddings, weight.T, labels)
    with pytest.raises(ValueError, match="labels holds class 3, but weight has 3 classes"):
        arcface_loss(embeddings, weight, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="labels holds class -1"):
        cosface_loss(embeddings, weight, torch.tensor([0, -1, 2, 0]))
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        cosface_loss(embeddings, weight, labels.double())
    with pytest.raises(TypeError, match="weight must be a floating-point tensor"):
        arcface_loss(embeddings, weight.long(), labels)
    with pytest.raises(ValueError, match="must be below pi, got 28.6"):
        arcface_loss(embeddings, weight, labels, margin=28.6)
    for dtype in (torch.int32, torch.uint8, torch.int16):  # labels of any integer dtype
        torch.testing.assert_close(cosface_loss(embeddings, weight, labels.to(dtype)), cosface_loss(embeddings, weight, labels))


# --- the stateful modules ------------------------------------------------------------------------

MODULES = [(lossbook.nn.CosFaceLoss, cosface_loss, {"scale": 16.0, "margin": 0.2}),
           (lossbook.nn.ArcFaceLoss, arcface_loss, {"scale": 16.0, "margin": 0.4, "easy_margin": True})]
module_cases = pytest.mark.parametrize("module_class,function,options", MODULES, ids=["CosFaceLoss", "ArcFaceLoss"])


@module_cases
def test_module_is_the_function_with_its_weight(module_class, function, options, device):
    module = module_class(5, 4, **options).to(device)
    embeddings, _, labels = problem(10, 5, 4, dtype=torch.float32, device=device)
    assert isinstance(module.weight, torch.nn.Parameter) and module.weight.shape == (5, 4)
    assert module.weight.device.type == device.type
    torch.testing.assert_close(module(embeddings, labels), function(embeddings, module.weight, labels, **options))
    torch.testing.assert_close(module(embeddings=embeddings, labels=labels), module(embeddings, labels))
    module.reduction = "none"
    assert module(embeddings, labels).shape == (10,)
    module.margin = 0.0
    torch.testing.assert_close(module(embeddings, labels),
                               cosface_loss(embeddings, module.weight, labels, scale=16.0, margin=0.0, reduction="none"))
    module(embeddings, labels).sum().backward()
    assert module.weight.grad is not None and torch.isfinite(module.weight.grad).all()
    assert [name for name, _ in module.named_parameters()] == ["weight"]
    assert "num_classes=5, embedding_size=4, scale=16.0" in repr(module)


@module_cases
def test_module_state_dict_pickle_and_deepcopy(module_class, function, options):
    module = module_class(6, 3, **options)
    embeddings, _, labels = problem(8, 6, 3, dtype=torch.float32)
    expected = module(embeddings, labels)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    restored = module_class(6, 3, **options)
    assert not torch.equal(restored.weight, module.weight)
    restored.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    for clone in (restored, copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        torch.testing.assert_close(clone(embeddings, labels), expected)
        assert repr(clone) == repr(module)
    with pytest.raises(RuntimeError, match="size mismatch"):
        module_class(7, 3, **options).load_state_dict(module.state_dict())


@module_cases
def test_module_compiles_and_exports(module_class, function, options):
    torch._dynamo.reset()
    module = module_class(5, 4, **options)
    embeddings, _, labels = problem(9, 5, 4, dtype=torch.float32)
    expected = module(embeddings, labels)
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(embeddings, labels), expected)
    compiled(embeddings, labels).backward()
    assert module.weight.grad is not None
    program = torch.export.export(module, (embeddings, labels))
    torch.testing.assert_close(program.module()(embeddings, labels), expected)


@module_cases
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_module_in_half_precision(module_class, function, options, dtype, device):
    module = module_class(5, 4, **{**options, "scale": 64.0}).to(device)
    embeddings, _, labels = problem(16, 5, 4, dtype=torch.float32, device=device)
    reference = module(100 * embeddings.to(dtype).float(), labels)
    half = module.to(dtype)
    loss = half(100 * embeddings.to(dtype), labels)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    torch.testing.assert_close(loss, reference, rtol=5e-3, atol=5e-3)
    with torch.autocast(device_type=device.type, dtype=dtype):
        assert torch.isfinite(module.float()(embeddings, labels))


@module_cases
def test_module_refuses_bad_sizes_and_options_at_construction(module_class, function, options):
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        module_class(0, 4)
    with pytest.raises(ValueError, match="embedding_size must be a positive int, got 2.5"):
        module_class(3, 2.5)
    with pytest.raises(ValueError, match="scale must be a positive number, got -1.0"):
        module_class(3, 2, scale=-1.0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        module_class(3, 2, reduction="avg")
    with pytest.raises(TypeError):
        module_class(3, 2, not_an_option=1)
    module = module_class(3, 2, **options)
    with pytest.raises(ValueError, match=r"weight must have shape \(C, D\) with D = 5"):
        module(torch.randn(4, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels holds class 3, but weight has 3 classes"):
        module(torch.randn(4, 2), torch.tensor([0, 1, 2, 3]))


def test_arcface_module_refuses_degrees():
    with pytest.raises(ValueError, match="must be below pi, got 28.6"):
        lossbook.nn.ArcFaceLoss(10, 2, margin=28.6)
    with pytest.raises(TypeError, match="easy_margin must be a bool"):
        lossbook.nn.ArcFaceLoss(10, 2, easy_margin="no")
