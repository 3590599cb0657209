"""Every public loss, declared once: the function, its options, how to make its inputs.

``tests/test_battery.py`` runs the whole battery of DESIGN section 5 over ``CASES``
(bad input, reductions and the empty mean, gradcheck, half precision, devices, the
module, torch.compile, vmap, torch.export, host syncs), and ``benchmarks/losses.py``
times the same inputs. A new loss needs one ``Case`` plus its oracle and property tests
in ``tests/<part>/test_<chapter>.py``. Parts I-III declare their cases in this file;
later parts in one file per chapter, ``tests/<part>/cases_<chapter>.py``, holding a list
``CASES`` of the same ``Case``s (read at the end of this module, so that chapters written
side by side never edit the same file).

An input maker is ``make(n, *, dtype, device, seed, extreme)``: ``n`` samples (rows,
boxes, anchors; 0 gives the empty batch), floating tensors in ``dtype``, and with
``extreme`` the largest values the loss must survive in half precision (logits of
+-50, residuals of 1e4, boxes at 4096).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

import lossbook


@dataclass
class Inputs:
    """The tensors of one call, which of them take gradients, and the ``"none"`` shape."""

    tensors: tuple[Tensor, ...]
    differentiable: tuple[int, ...]
    none_shape: tuple[int, ...]


Maker = Callable[..., Inputs]
CLASSES = 5


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _finish(tensors, dtype, device, differentiable, none_shape) -> Inputs:
    moved = tuple(t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype) for t in tensors)
    return Inputs(moved, differentiable, tuple(none_shape))


def residuals(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, columns=3) -> Inputs:
    """Predictions and targets ``(n, columns)``; ``extreme``: residuals up to 2e4."""
    g = _generator(seed)
    scale = 1e4 if extreme else 2.0
    input, target = scale * torch.randn(n, columns, generator=g), scale * torch.randn(n, columns, generator=g)
    if extreme and n:
        input[0, 0], target[0, 0] = scale, -scale
    return _finish((input, target), dtype, device, (0, 1), (n, columns))


def sign_margins(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, columns=3) -> Inputs:
    """Scores ``(n, columns)`` and labels in {-1, +1} (floating); ``extreme``: margins of +-50."""
    g = _generator(seed)
    scores = (50.0 if extreme else 2.0) * torch.randn(n, columns, generator=g)
    labels = 2.0 * torch.randint(0, 2, (n, columns), generator=g) - 1
    return _finish((scores, labels), dtype, device, (0,), (n, columns))


def binary_logits(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, columns=3) -> Inputs:
    """Logits ``(n, columns)`` and 0/1 targets (floating); ``extreme``: logits of +-50."""
    g = _generator(seed)
    logits = (50.0 if extreme else 2.0) * torch.randn(n, columns, generator=g)
    targets = torch.randint(0, 2, (n, columns), generator=g).double()
    return _finish((logits, targets), dtype, device, (0,), (n, columns))


def soft_binary_logits(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False) -> Inputs:
    """Logits ``(n, 3)`` and soft targets in (0, 1), both differentiable."""
    g = _generator(seed)
    logits = (50.0 if extreme else 2.0) * torch.randn(n, 3, generator=g)
    return _finish((logits, torch.rand(n, 3, generator=g) * 0.8 + 0.1), dtype, device, (0, 1), (n, 3))


def class_logits(
    n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, ignore=False, spatial=(), classes=CLASSES
) -> Inputs:
    """Logits ``(n, C, *spatial)`` and class indices ``(n, *spatial)`` (int64); ``ignore``
    marks about a quarter of them -100; ``extreme``: logits of +-50."""
    g = _generator(seed)
    logits = (50.0 if extreme else 2.0) * torch.randn(n, classes, *spatial, generator=g)
    target = torch.randint(0, classes, (n, *spatial), generator=g)
    if ignore:
        target = torch.where(torch.rand(target.shape, generator=g) < 0.25, -100, target)
        if n:
            target.view(-1)[0] = 1  # at least one target counts
    return _finish((logits, target), dtype, device, (0,), (n, *spatial))


def class_probabilities(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False) -> Inputs:
    """Logits ``(n, C)`` and target distributions ``(n, C)``, both differentiable."""
    g = _generator(seed)
    logits = (50.0 if extreme else 2.0) * torch.randn(n, CLASSES, generator=g)
    target = torch.softmax(torch.randn(n, CLASSES, generator=g), dim=1)
    return _finish((logits, target), dtype, device, (0, 1), (n,))


def log_probabilities(
    n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, log_target=False, classes=CLASSES
) -> Inputs:
    """Log-probabilities ``(n, C)`` and target probabilities (or log-probabilities)."""
    g = _generator(seed)
    input = torch.log_softmax((20.0 if extreme else 2.0) * torch.randn(n, classes, generator=g), dim=1)
    target = torch.log_softmax(torch.randn(n, classes, generator=g), dim=1)
    return _finish((input, target if log_target else target.exp()), dtype, device, (0, 1), (n, classes))


def two_logits(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, classes=CLASSES) -> Inputs:
    """Student and teacher logits ``(n, C)``."""
    g = _generator(seed)
    scale = 50.0 if extreme else 2.0
    student, teacher = scale * torch.randn(n, classes, generator=g), scale * torch.randn(n, classes, generator=g)
    return _finish((student, teacher), dtype, device, (0, 1), (n,))


def boxes(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False) -> Inputs:
    """Paired ``xyxy`` boxes ``(n, 4)`` that overlap partly; ``extreme``: coordinates up to 4096."""
    g = _generator(seed)
    size = 4096.0 if extreme else 10.0

    def random_boxes(corner=None):
        corner = torch.rand(n, 2, generator=g) * size if corner is None else corner
        return torch.cat([corner, corner + size / 8 + torch.rand(n, 2, generator=g) * size / 4], dim=1)

    input = random_boxes()
    target = random_boxes(input[:, :2] + torch.randn(n, 2, generator=g) * size / 16)
    return _finish((input, target), dtype, device, (0, 1), (n,))


def dense_detection(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, classes=CLASSES) -> Inputs:
    """Logits ``(n, C)``, labels ``(n,)`` in ``0..C`` (``C`` = background), IoU scores ``(n,)``."""
    g = _generator(seed)
    logits = (50.0 if extreme else 2.0) * torch.randn(n, classes, generator=g)
    labels = torch.where(torch.rand(n, generator=g) < 0.5, torch.randint(0, classes, (n,), generator=g), classes)
    return _finish((logits, labels, torch.rand(n, generator=g)), dtype, device, (0, 2), (n,))  # one loss per anchor


def ranking_labels(
    n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, classes=CLASSES, candidates=None
) -> Inputs:
    """Logits ``(n, C)`` and labels ``(n,)``: ``1..C`` foreground, 0 background, -1 ignored
    (one ranking problem); with ``candidates``, ``n`` problems: ``(n, candidates, C)``."""
    g = _generator(seed)
    rows = (n,) if candidates is None else (n, candidates)
    logits = (50.0 if extreme else 2.0) * torch.randn(*rows, classes, generator=g)
    labels = torch.randint(-1, classes + 1, rows, generator=g)
    return _finish((logits, labels), dtype, device, (0,), () if candidates is None else (n,))


def embeddings_labels(
    n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, dim=4, classes=3
) -> Inputs:
    """Embeddings ``(n, dim)`` and class labels ``(n,)`` (int64) with at most ``classes``
    classes, so that most anchors have a positive and a negative; one loss per anchor;
    ``extreme``: coordinates of about +-100 (squared distances overflow float16)."""
    g = _generator(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    centres = torch.randn(classes, dim, generator=g)
    embeddings = (100.0 if extreme else 1.0) * (centres[labels] + 0.7 * torch.randn(n, dim, generator=g))
    return _finish((embeddings, labels), dtype, device, (0,), (n,))


def embedding_pairs(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, dim=4) -> Inputs:
    """Two embeddings ``(n, dim)`` and a 0/1 target ``(n,)`` (floating; 1 = similar pair)."""
    g = _generator(seed)
    scale = 100.0 if extreme else 1.0
    first = scale * torch.randn(n, dim, generator=g)
    target = torch.randint(0, 2, (n,), generator=g).double()
    second = first * target[:, None] + scale * torch.randn(n, dim, generator=g) * (1.2 - target[:, None])
    return _finish((first, second, target), dtype, device, (0, 1), (n,))


def embedding_tuples(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, count=3, dim=4) -> Inputs:
    """``count`` embeddings ``(n, dim)`` (anchor, positive, negative, ...), all differentiable;
    the positive lies near the anchor, the negatives anywhere."""
    g = _generator(seed)
    scale = 100.0 if extreme else 1.0
    anchor = scale * torch.randn(n, dim, generator=g)
    positive = anchor + 0.5 * scale * torch.randn(n, dim, generator=g)
    negatives = [scale * torch.randn(n, dim, generator=g) for _ in range(count - 2)]
    return _finish((anchor, positive, *negatives), dtype, device, tuple(range(count)), (n,))


def images(
    n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, channels=3, size=(12, 12), data_range=1.0
) -> Inputs:
    """Images ``(n, channels, H, W)`` in ``[0, data_range]``: a smooth target and the input
    = target + noise, clipped; both differentiable; one value per image. ``extreme``: the
    input saturated at 0 and ``data_range`` over half of each image (clipping, constant
    patches: zero variance, the worst case of SSIM and of square roots)."""
    g = _generator(seed)
    height, width = size
    rows = torch.linspace(0, 3.0, height).view(1, 1, height, 1)
    cols = torch.linspace(0, 2.0, width).view(1, 1, 1, width)
    phase = torch.rand(n, channels, 1, 1, generator=g) * 6.28
    target = 0.5 + 0.35 * torch.sin(rows + cols + phase)
    input = target + 0.1 * torch.randn(n, channels, height, width, generator=g)
    if extreme:
        input[..., : height // 2, :] = (input[..., : height // 2, :] > 0.5).double()
    input, target = input.clamp(0, 1) * data_range, target * data_range
    return _finish((input, target), dtype, device, (0, 1), (n,))


def linear_inputs(n, *, dtype=torch.float64, device="cpu", seed=0, extreme=False, dim=6, vocabulary=11) -> Inputs:
    """Hidden states ``(n, dim)``, an output layer's weight ``(vocabulary, dim)`` and class
    indices ``(n,)``; ``extreme``: logits of about +-50."""
    g = _generator(seed)
    scale = (50.0 / dim**0.5) ** 0.5 if extreme else 1.0
    input = scale * torch.randn(n, dim, generator=g)
    weight = scale * torch.randn(vocabulary, dim, generator=g)
    return _finish((input, weight, torch.randint(0, vocabulary, (n,), generator=g)), dtype, device, (0, 1), (n,))


@dataclass
class Case:
    """One loss with one set of options, and what the battery needs to know about it."""

    fn: Callable[..., Tensor]
    make: Maker
    options: dict = field(default_factory=dict)
    label: str = ""
    mean_of_none: bool = True  # "mean" is the plain average of the "none" output
    half_rtol: float = 1e-5  # half inputs against float32 on the same rounded values
    half_finite_grad: bool = True  # False where the gradient itself overflows float16
    gradgrad: bool = True
    # False where the gradient is deliberately not the derivative of the value, so a
    # numerical check must fail: CIoU holds its alpha constant (computed under no_grad, as
    # the paper and torchvision do); its test file checks the gradient against that formula.
    gradcheck: bool = True
    bad_options: list[tuple[dict, type, str]] = field(default_factory=list)  # refused at call and construction

    @property
    def id(self) -> str:
        return self.fn.__name__ + (f"[{self.label}]" if self.label else "")

    def inputs(self, n=4, **kwargs) -> Inputs:
        return self.make(n, **kwargs)

    def options_on(self, device) -> dict:
        return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in self.options.items()}


def _with(maker: Maker, **bound) -> Maker:
    def make(n, **kwargs):
        return maker(n, **bound, **kwargs)

    make.__name__ = maker.__name__
    return make


NEGATIVE = [({"reduction": "avg"}, ValueError, "reduction must be one of")]
CLASS_WEIGHT = torch.tensor([1.0, 2.0, 0.5, 1.5, 1.0], dtype=torch.float64)

CASES: list[Case] = [
    # Part I: regression
    Case(lossbook.l1_loss, residuals),
    Case(lossbook.mse_loss, residuals),
    Case(lossbook.smooth_l1_loss, residuals, {"beta": 0.5}, "beta=0.5",
         bad_options=[({"beta": -1.0}, ValueError, "beta must be a non-negative number, got -1.0"),
                      ({"beta": float("inf")}, ValueError, "beta must be a non-negative number, got inf"),
                      ({"beta": "1"}, TypeError, "beta must be a number, got str")]),
    Case(lossbook.smooth_l1_loss, residuals, {"beta": 0.0}, "beta=0", gradgrad=False),
    Case(lossbook.huber_loss, residuals, {"delta": 1.5}, "delta=1.5",
         bad_options=[({"delta": 0.0}, ValueError, "delta must be a positive number, got 0.0"),
                      ({"delta": float("nan")}, ValueError, "delta must be a positive number, got nan"),
                      ({"delta": None}, TypeError, "delta must be a number, got NoneType")]),
    Case(lossbook.huber_loss, residuals, {"delta": 1e6}, "delta=1e6"),  # larger than every residual: MSE / 2
    Case(lossbook.charbonnier_loss, residuals, {"eps": 1e-3},
         bad_options=[({"eps": -1.0}, ValueError, "eps must be a positive number, got -1.0"),
                      ({"eps": 0}, ValueError, "eps must be a positive number, got 0"),
                      ({"eps": torch.tensor(1e-3)}, TypeError, "eps must be a number, got Tensor")]),
    Case(lossbook.charbonnier_loss, residuals, {"eps": 2.0}, "eps=2"),
    Case(lossbook.log_cosh_loss, residuals),
    Case(lossbook.quantile_loss, residuals, {"q": 0.9}, "q=0.9", gradgrad=False,
         bad_options=[({"q": 1.5}, ValueError, r"q must lie in the open interval \(0, 1\)"),
                      ({"q": 90}, ValueError, r"not a percent, 90\); got 90"),
                      ({"q": [0.1, 1.0, 0.9]}, ValueError, r"q must lie in the open interval \(0, 1\)"),
                      ({"q": torch.tensor([0.0, 0.5, 0.9])}, ValueError, r"q must lie in the open interval \(0, 1\)"),
                      ({"q": True}, TypeError, "q must be a float in"),
                      ({"q": torch.full((3, 3), 0.5)}, ValueError, r"got a tensor of shape \(3, 3\)")]),
    Case(lossbook.quantile_loss, residuals, {"q": torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)}, "q=tensor",
         gradgrad=False),
    Case(lossbook.quantile_loss,  # the shape rule: K predictions (N, K) against one target (N,) each
         lambda n, **kw: (lambda pair: Inputs((pair.tensors[0], pair.tensors[1][:, 0].clone()), (0, 1), (n, 3)))(
             residuals(n, **kw)),
         {"q": torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64)}, "q=tensor,target=(N,)", gradgrad=False),
    # Part II: classification
    Case(lossbook.cross_entropy, class_logits,
         bad_options=[({"label_smoothing": -0.1}, ValueError, "label_smoothing must be a non-negative number"),
                      ({"label_smoothing": "0.1"}, TypeError, "label_smoothing must be a number, got str"),
                      ({"weight": torch.ones(CLASSES, dtype=torch.long)}, TypeError,
                       "weight must be a floating-point tensor, got dtype torch.int64"),
                      ({"reduction": "batchmean"}, ValueError, "reduction must be one of 'none', 'mean', 'sum'")]),
    Case(lossbook.cross_entropy, _with(class_logits, ignore=True, spatial=(2,)),
         {"weight": CLASS_WEIGHT, "label_smoothing": 0.1}, "weighted,ignore,smoothing,spatial", mean_of_none=False,
         bad_options=[({"label_smoothing": 1.5}, ValueError, "label_smoothing must be in")]),
    # int32 indices (converted for PyTorch's kernel), class weights of both signs: the mean's
    # divisor sum_i w_{y_i} computed outside the kernel
    Case(lossbook.cross_entropy,
         lambda n, **kw: (lambda i: Inputs((i.tensors[0], i.tensors[1].int()), i.differentiable, i.none_shape))(
             class_logits(n, **kw)),
         {"weight": torch.tensor([1.0, -0.5, 2.0, 0.5, 1.5], dtype=torch.float64), "ignore_index": None},
         "int32,negative weight,ignore_index=None", mean_of_none=False),
    Case(lossbook.cross_entropy, _with(class_logits, ignore=True), {"label_smoothing": 0.1}, "ignore,smoothing",
         mean_of_none=False),
    Case(lossbook.cross_entropy, class_probabilities, {"label_smoothing": 0.2}, "probabilities"),
    Case(lossbook.cross_entropy, class_probabilities, {"weight": CLASS_WEIGHT}, "probabilities,weighted"),
    Case(lossbook.binary_cross_entropy_with_logits, binary_logits,
         bad_options=[({"weight": 2.0}, TypeError, "weight must be a torch.Tensor, got float"),
                      ({"pos_weight": torch.ones(3, dtype=torch.long)}, TypeError,
                       "pos_weight must be a floating-point tensor, got dtype torch.int64")]),
    Case(lossbook.binary_cross_entropy_with_logits, soft_binary_logits,
         {"pos_weight": torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)}, "pos_weight,soft"),
    Case(lossbook.binary_cross_entropy_with_logits, binary_logits,
         {"weight": torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64), "pos_weight": torch.tensor([4.0], dtype=torch.float64)},
         "weight,pos_weight"),
    Case(lossbook.logistic_loss, sign_margins),
    Case(lossbook.hinge_loss, sign_margins, {"margin": 1.0}, gradgrad=False,
         bad_options=[({"margin": -1.0}, ValueError, "margin must be a non-negative number"),
                      ({"margin": float("nan")}, ValueError, "margin must be a non-negative number, got nan"),
                      ({"squared": 1}, TypeError, "squared must be True or False, got 1")]),
    Case(lossbook.hinge_loss, sign_margins, {"squared": True, "margin": 0.5}, "squared,margin=0.5", gradgrad=False),
    Case(lossbook.multiclass_hinge_loss, class_logits, {}, "weston_watkins", gradgrad=False,
         bad_options=[({"p": 3}, ValueError, "p must be 1 or 2"), ({"mode": "ovr"}, ValueError, "mode must be one of"),
                      ({"margin": -1.0}, ValueError, "margin must be a non-negative number"),
                      ({"weight": torch.ones(CLASSES, dtype=torch.long)}, TypeError,
                       "weight must be a floating-point tensor")]),
    Case(lossbook.multiclass_hinge_loss, _with(class_logits, spatial=(2,)),
         {"weight": CLASS_WEIGHT, "p": 2, "margin": 0.5}, "weston_watkins,weighted,p=2,spatial", gradgrad=False),
    Case(lossbook.multiclass_hinge_loss, class_logits, {"mode": "crammer_singer", "p": 2}, "crammer_singer", gradgrad=False),
    Case(lossbook.multiclass_hinge_loss, _with(class_logits, spatial=(2,)),
         {"mode": "crammer_singer", "weight": CLASS_WEIGHT}, "crammer_singer,weighted,spatial", gradgrad=False),
    # Margins within +-50: sign_margins' extreme scores reach +-150, and e^150 overflows float32
    # too (the loss is inf there by design); float16 cannot hold the gradient e^50 / N.
    Case(lossbook.exponential_loss,
         lambda n, **kw: (lambda i: Inputs((i.tensors[0].clamp(-50, 50), i.tensors[1]), i.differentiable, i.none_shape))(
             sign_margins(n, **kw)),
         half_finite_grad=False),
    Case(lossbook.kl_div, log_probabilities, mean_of_none=True,
         bad_options=[({"reduction": "avg"}, ValueError, "reduction must be one of 'none', 'batchmean', 'mean', 'sum'"),
                      ({"log_target": 1}, TypeError, "log_target must be True or False, got 1")]),
    Case(lossbook.kl_div, _with(log_probabilities, log_target=True), {"log_target": True}, "log_target"),
    # exact zeros in the target (class 1): the masked form; the target is not perturbed (p < 0 is refused)
    Case(lossbook.kl_div,
         lambda n, **kw: (lambda i: Inputs((i.tensors[0], i.tensors[1] * (torch.arange(CLASSES, device=i.tensors[1].device) != 1)),
                                           (0,), i.none_shape))(log_probabilities(n, **kw)),
         {"reduction": "sum"}, "zeros"),
    Case(lossbook.distillation_loss, two_logits, {"temperature": 2.0}, mean_of_none=False,
         bad_options=[({"temperature": 0.0}, ValueError, "temperature must be a positive number"),
                      ({"temperature": "4"}, TypeError, "temperature must be a number, got str"),
                      ({"reduction": "elementwise"}, ValueError, "reduction must be one of 'none', 'batchmean'")]),
    # a class the teacher masks out (logit -inf): p = 0 there, and the loss stays finite
    Case(lossbook.distillation_loss,
         lambda n, **kw: (lambda i: Inputs((i.tensors[0], i.tensors[1].index_fill(1, torch.tensor([0], device=i.tensors[1].device), -torch.inf)),
                                           i.differentiable, i.none_shape))(two_logits(n, **kw)),
         {"temperature": 0.5}, "masked teacher", mean_of_none=False),
    # logits (N, C, 2): the class dimension summed per position, "none" of shape (N, 2)
    Case(lossbook.distillation_loss,
         lambda n, **kw: (lambda a, b: Inputs(tuple(torch.stack([x, y], dim=-1) for x, y in zip(a.tensors, b.tensors)),
                                              (0, 1), (n, 2)))(two_logits(n, **kw), two_logits(n, **{**kw, "seed": kw.get("seed", 0) + 1})),
         {"temperature": 4.0, "reduction": "mean"}, "spatial"),
    Case(lossbook.focal_loss, class_logits, {"gamma": 2.0},
         bad_options=[({"gamma": -1.0}, ValueError, "gamma must be a non-negative number"),
                      ({"alpha": -0.25}, ValueError, "alpha must be a non-negative number"),
                      ({"alpha": torch.ones(CLASSES, dtype=torch.long)}, TypeError, "alpha must be a floating-point tensor"),
                      ({"weight": [1.0] * CLASSES}, TypeError, "weight must be a torch.Tensor, got list"),
                      ({"ignore_index": -1.5}, TypeError, "ignore_index must be an int, got float")]),
    Case(lossbook.focal_loss, _with(class_logits, ignore=True), {"gamma": 1.0, "alpha": CLASS_WEIGHT / 2, "weight": CLASS_WEIGHT},
         "alpha,weight,ignore", mean_of_none=False),
    Case(lossbook.focal_loss, _with(class_logits, spatial=(3,)), {"gamma": 0.5, "alpha": 0.25}, "gamma=0.5,alpha=number,spatial"),
    Case(lossbook.sigmoid_focal_loss, binary_logits,
         bad_options=[({"alpha": 2.0}, ValueError, "alpha must be in"),
                      ({"alpha": -0.5}, ValueError, "alpha must be in"),
                      ({"gamma": -1.0}, ValueError, "gamma must be a non-negative number"),
                      ({"gamma": "2"}, TypeError, "gamma must be a number, got str")]),
    Case(lossbook.sigmoid_focal_loss, soft_binary_logits, {"alpha": None, "gamma": 0.5}, "soft,gamma=0.5"),
    Case(lossbook.sigmoid_focal_loss, binary_logits, {"alpha": -1, "gamma": 0.0}, "alpha=-1,gamma=0"),
    # Part III: detection
    Case(lossbook.iou_loss, boxes, {}, "linear", gradgrad=False,
         bad_options=[({"mode": "square"}, ValueError, "mode must be 'linear' or 'log'"),
                      ({"eps": -1e-7}, ValueError, "eps must be a non-negative number")]),
    Case(lossbook.iou_loss, boxes, {"mode": "log", "eps": 1e-5}, "log", gradgrad=False),
    Case(lossbook.giou_loss, boxes, gradgrad=False, bad_options=[({"eps": -1.0}, ValueError, "eps must be")]),
    Case(lossbook.diou_loss, boxes, {"eps": 1e-5}, gradgrad=False,
         bad_options=[({"eps": "1e-7"}, TypeError, "eps must be a number, got str")]),
    Case(lossbook.ciou_loss, boxes, gradgrad=False, gradcheck=False,  # alpha held constant: see Case.gradcheck
         bad_options=[({"eps": -1.0}, ValueError, "eps must be a non-negative number")]),
    Case(lossbook.quality_focal_loss, dense_detection, {"beta": 2.0},
         bad_options=[({"beta": -1.0}, ValueError, "beta must be a non-negative number"),
                      ({"beta": "2"}, TypeError, "beta must be a number, got str")]),
    Case(lossbook.quality_focal_loss, dense_detection, {"beta": 0.5}, "beta=0.5"),
    Case(lossbook.dr_loss, ranking_labels, {}, mean_of_none=False, gradgrad=False,
         bad_options=[({"tau": 0.0}, ValueError, "tau must be a positive number"),
                      ({"pos_lambda": -1.0}, ValueError, "pos_lambda must be a positive number"),
                      ({"neg_lambda": 0.0}, ValueError, "neg_lambda must be a positive number"),
                      ({"L": 0.0}, ValueError, "L must be a positive number"),
                      ({"margin": -0.5}, ValueError, "margin must be a non-negative number")]),
    Case(lossbook.dr_loss, ranking_labels, {"pos_lambda": 0.3, "neg_lambda": 0.05, "L": 2.0, "tau": 1.0, "margin": 0.0},
         "options", mean_of_none=False, gradgrad=False),
    Case(lossbook.dr_loss, _with(ranking_labels, candidates=6), {"neg_lambda": 0.01}, "batched,neg_lambda=0.01",
         mean_of_none=False, gradgrad=False),
]


def case_ids(cases=CASES) -> list[str]:
    return [case.id for case in cases]


def first_case_of_each_loss(cases=CASES) -> list[Case]:
    seen, first = set(), []
    for case in cases:
        if case.fn not in seen:
            seen.add(case.fn)
            first.append(case)
    return first



def chapter_cases(tests: Path = Path(__file__).resolve().parent) -> list[Case]:
    """The ``CASES`` of every ``tests/<part>/cases_<chapter>.py``, in path order."""
    found: list[Case] = []
    for path in sorted(tests.glob("*/cases_*.py")):
        spec = importlib.util.spec_from_file_location(f"registry_{path.parent.name}_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found += module.CASES
    return found


CASES += chapter_cases()
