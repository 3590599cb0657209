"""Tests of book/image/perceptual.md: perceptual_loss, style_loss, their modules and helpers.

The battery (tests/test_battery.py) drives both functions with a small network passed as
the keyword ``feature_extractor`` (tests/image/cases_perceptual.py): bad input, reductions
and the empty mean, gradcheck and gradgradcheck, half precision and autocast,
torch.compile(fullgraph=True), vmap and vmap(grad), the validate_args switch, host syncs.
Its module checks cover generated modules only, so this file holds what is specific to
these losses: a float64 NumPy transcription of Johnson et al. (2016) on random-init
networks (a NumPy convolution, nothing shared with torch), the plain-torch transcription
on VGG-16 for both extraction paths (the nn.Sequential run that stops early, the forward
hooks), hand-derived gradients, hypothesis properties, the refusals and their messages,
and the modules lossbook.nn.PerceptualLoss / StyleLoss: frozen extractor, eval mode kept
under .train(), options read at call time, construction refusals, .to(device),
state_dict / pickle / deepcopy round trips, torch.compile and torch.export of the
module, half precision. Nothing downloads: every network has random weights.
"""

import copy
import io
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import lossbook
import lossbook.nn
from lossbook import perceptual_loss, style_loss
from lossbook.image.perceptual import IMAGENET_MEAN, IMAGENET_STD, extract_features, gram_matrix, vgg16_features

REDUCTIONS = ["none", "mean", "sum"]
LOSSES = [perceptual_loss, style_loss]


# --- a NumPy transcription ---------------------------------------------------------------------


def conv2d_numpy(x, weight, bias, stride=1):
    """Valid cross-correlation, (N, C, H, W) * (O, C, k, k), in float64 NumPy."""
    n, c, h, w = x.shape
    o, _, k, _ = weight.shape
    out_h, out_w = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros((n, o, out_h, out_w))
    for i in range(k):
        for j in range(k):
            patch = x[:, :, i : i + stride * out_h : stride, j : j + stride * out_w : stride]
            out += np.einsum("nchw,oc->nohw", patch, weight[:, :, i, j])
    return out + bias[None, :, None, None]


def small_network(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 4, 3), relu1=nn.ReLU(), conv2=nn.Conv2d(4, 6, 3, stride=2), relu2=nn.ReLU(),
    )).double().requires_grad_(False)


def numpy_features(net, x):
    """Every named output of small_network, in NumPy."""
    w1, b1 = net.conv1.weight.detach().numpy(), net.conv1.bias.detach().numpy()
    w2, b2 = net.conv2.weight.detach().numpy(), net.conv2.bias.detach().numpy()
    conv1 = conv2d_numpy(x, w1, b1)
    relu1 = np.maximum(conv1, 0)
    conv2 = conv2d_numpy(relu1, w2, b2, stride=2)
    return {"conv1": conv1, "relu1": relu1, "conv2": conv2, "relu2": np.maximum(conv2, 0)}


def numpy_loss(x_hat, x, net, layers, weights, style):
    """Johnson et al. (2016): eq. (2) per image, or eqs. (3)-(4) per image."""
    f_all, g_all = numpy_features(net, x_hat), numpy_features(net, x)
    total = np.zeros(len(x_hat))
    for layer, w in zip(layers, weights):
        f, g = f_all[layer], g_all[layer]
        n, c, h, wd = f.shape
        if style:
            psi, phi = f.reshape(n, c, h * wd), g.reshape(n, c, h * wd)
            gram_f = np.einsum("ncp,ndp->ncd", psi, psi) / (c * h * wd)
            gram_g = np.einsum("ncp,ndp->ncd", phi, phi) / (c * h * wd)
            total += w * ((gram_f - gram_g) ** 2).sum(axis=(1, 2))
        else:
            total += w * ((f - g) ** 2).sum(axis=(1, 2, 3)) / (c * h * wd)
    return total


def reduce_numpy(per, reduction):
    return {"none": per, "sum": per.sum(), "mean": per.mean() if len(per) else 0.0}[reduction]


def pair(n=3, size=11, seed=0, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g, dtype=torch.float64)
    x_hat = (x + 0.2 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x_hat.to(device, dtype), x.to(device, dtype)


@pytest.mark.parametrize("style", [False, True], ids=["perceptual", "style"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "layers,weights",
    [(["relu2"], [1.0]), (["conv1", "relu2"], [1.0, 1.0]), (["relu1", "conv2", "relu2"], [0.5, 2.0, 0.0])],
)
def test_numpy_oracle(style, reduction, layers, weights):
    net = small_network()
    x_hat, x = pair()
    expected = reduce_numpy(numpy_loss(x_hat.numpy(), x.numpy(), net, layers, weights, style), reduction)
    loss = style_loss if style else perceptual_loss
    got = loss(x_hat, x, net, layers=layers, weights=weights, reduction=reduction)
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-12, atol=1e-15)
    if weights == [1.0] * len(layers):
        np.testing.assert_allclose(loss(x_hat, x, net, layers=layers, reduction=reduction).numpy(), expected,
                                   rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("style", [False, True], ids=["perceptual", "style"])
def test_numpy_oracle_on_the_output_and_an_empty_batch(style):
    net = small_network(3)
    x_hat, x = pair(seed=4)
    loss = style_loss if style else perceptual_loss
    expected = numpy_loss(x_hat.numpy(), x.numpy(), net, ["relu2"], [1.0], style)
    np.testing.assert_allclose(loss(x_hat, x, net, reduction="none").numpy(), expected, rtol=1e-12)
    empty = torch.zeros(0, 3, 11, 11, dtype=torch.float64, requires_grad=True)
    zero = loss(empty, empty.detach(), net)
    assert zero.item() == 0.0 and zero.requires_grad
    assert loss(empty, empty.detach(), net, reduction="none").shape == (0,)


# --- VGG-16 by name, both extraction paths ------------------------------------------------------


class Wrapped(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x)


def every_output(net, x):
    outputs, h = {}, x
    for name, child in net.named_children():
        h = child(h)
        outputs[name] = h.clone()
    return outputs


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return vgg16_features(None, normalize=True, last="relu2_2").double()


@pytest.mark.parametrize("style", [False, True], ids=["perceptual", "style"])
def test_vgg_layers_by_name_equal_a_transcription_on_both_paths(vgg, style):
    x_hat, x = pair(2, 16, seed=1)
    layers, weights = ["relu1_2", "conv2_2", "relu2_2"], [1.0, 0.25, 4.0]
    f_all, g_all = every_output(vgg, x_hat), every_output(vgg, x)
    expected = torch.zeros(2, dtype=torch.float64)
    for name, w in zip(layers, weights):
        f, g = f_all[name], g_all[name]
        if style:
            f, g = gram_matrix(f), gram_matrix(g)
            expected += w * (f - g).square().sum((1, 2))
        else:
            expected += w * (f - g).square().mean((1, 2, 3))
    loss = style_loss if style else perceptual_loss
    for reduction in REDUCTIONS:
        reduce = {"none": lambda t: t, "mean": torch.mean, "sum": torch.sum}[reduction]
        sequential = loss(x_hat, x, vgg, layers=layers, weights=weights, reduction=reduction)
        hooked = loss(x_hat, x, Wrapped(vgg), layers=[f"body.{n}" for n in layers], weights=weights, reduction=reduction)
        torch.testing.assert_close(sequential, reduce(expected), rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(hooked, reduce(expected), rtol=1e-12, atol=1e-15)


def test_conv_output_before_an_inplace_relu_is_not_overwritten(vgg):
    x = pair(1, 16)[1]
    expected = every_output(vgg, x)["conv1_2"]
    assert expected.min() < 0
    for net, name in [(vgg, "conv1_2"), (Wrapped(vgg), "body.conv1_2")]:
        torch.testing.assert_close(extract_features(net, x, [name])[0], expected)


def test_the_sequential_path_stops_after_the_last_layer():
    class Forbidden(nn.Module):
        def forward(self, x):
            raise AssertionError("ran past the last layer asked for")

    net = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 2, 3), relu=nn.ReLU(), never=Forbidden()))
    x_hat, x = pair(2, 8, dtype=torch.float32)
    assert perceptual_loss(x_hat, x, net, layers=["relu", "conv"]).item() > 0


def test_dict_and_list_outputs_are_one_layer_each():
    net = small_network()
    x_hat, x = pair()

    class Dict(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            out = every_output(self.net, x)
            return {"a": out["relu1"], "b": out["relu2"]}

    class ListOut(Dict):
        def forward(self, x):
            return list(super().forward(x).values())

    expected = perceptual_loss(x_hat, x, net, layers=["relu1", "relu2"], weights=[1.0, 3.0])
    torch.testing.assert_close(perceptual_loss(x_hat, x, Dict(), weights=[1.0, 3.0]), expected)
    torch.testing.assert_close(perceptual_loss(x_hat, x, ListOut(), weights=[1.0, 3.0]), expected)


def test_create_feature_extractor_works_as_the_extractor():
    from torchvision.models.feature_extraction import create_feature_extractor

    net = small_network()
    graph = create_feature_extractor(net, return_nodes=["relu1", "relu2"])
    x_hat, x = pair(2, 16, seed=2)
    for loss in LOSSES:
        torch.testing.assert_close(loss(x_hat, x, graph), loss(x_hat, x, net, layers=["relu1", "relu2"]))
    torch._dynamo.reset()
    compiled = torch.compile(lambda a, b: perceptual_loss(a, b, graph), fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x_hat, x), perceptual_loss(x_hat, x, graph))


# --- gradients and properties ----------------------------------------------------------------------


def test_hand_derived_gradients():
    """(3): d l / d F = 2 (F - G) / (C H W); (6): d ||G(F) - A||^2 / d psi = 4 / (C H W) (G - A) psi."""
    g = torch.Generator().manual_seed(5)
    f = torch.randn(2, 4, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 4, 5, 6, generator=g, dtype=torch.float64)
    identity = nn.Identity()
    (grad,) = torch.autograd.grad(perceptual_loss(f, target, identity, reduction="sum"), f)
    torch.testing.assert_close(grad, 2 * (f - target).detach() / 120)
    (grad,) = torch.autograd.grad(style_loss(f, target, identity, reduction="sum"), f)
    difference = gram_matrix(f.detach()) - gram_matrix(target)
    torch.testing.assert_close(grad.flatten(2), 4 / 120 * difference @ f.detach().flatten(2))


def test_gatys_normalization_is_a_quarter():
    net = small_network()
    x_hat, x = pair()
    f, a = numpy_features(net, x_hat.numpy())["relu2"], numpy_features(net, x.numpy())["relu2"]
    n, c, h, w = f.shape
    gram_f = np.einsum("ncp,ndp->ncd", f.reshape(n, c, -1), f.reshape(n, c, -1))
    gram_a = np.einsum("ncp,ndp->ncd", a.reshape(n, c, -1), a.reshape(n, c, -1))
    gatys = ((gram_f - gram_a) ** 2).sum(axis=(1, 2)) / (4 * c**2 * (h * w) ** 2)
    np.testing.assert_allclose(style_loss(x_hat, x, net, reduction="none").numpy(), 4 * gatys, rtol=1e-12)


@settings(max_examples=10)
@given(seed=st.integers(0, 2**16), scale=st.floats(0.1, 10.0))
def test_properties(seed, scale):
    net = small_network(seed % 7)
    x_hat, x = pair(2, 9, seed=seed)
    for loss in LOSSES:
        value = loss(x_hat, x, net, reduction="none")
        assert (value >= 0).all()
        assert loss(x, x, net).item() == 0.0
        torch.testing.assert_close(loss(x, x_hat, net, reduction="none"), value)  # symmetric
        torch.testing.assert_close(loss(x_hat, x, net, weights=[scale], reduction="none"), scale * value)
    torch.testing.assert_close(perceptual_loss(x_hat, x, nn.Identity()), F.mse_loss(x_hat, x))


@settings(max_examples=10)
@given(seed=st.integers(0, 2**16))
def test_style_is_blind_to_positions_under_a_pointwise_network(seed):
    g = torch.Generator().manual_seed(seed)
    pointwise = nn.Sequential(nn.Conv2d(3, 5, 1), nn.ReLU()).double()
    x = torch.rand(2, 3, 6, 6, generator=g, dtype=torch.float64)
    shuffled = x.flatten(2)[:, :, torch.randperm(36, generator=g)].view_as(x)
    assert style_loss(shuffled, x, pointwise).item() < 1e-12
    assert perceptual_loss(shuffled, x, pointwise).item() > 0


# --- refusals --------------------------------------------------------------------------------------


def test_refusals():
    net = small_network()
    x_hat, x = pair()
    for loss in LOSSES:
        with pytest.raises(TypeError, match="feature_extractor must be an nn.Module, got function"):
            loss(x_hat, x, lambda t: t)
        with pytest.raises(ValueError, match="feature_extractor has no submodule named 'relu9'"):
            loss(x_hat, x, Wrapped(net), layers=["body.relu1", "relu9"])
        with pytest.raises(ValueError, match="feature_extractor has no submodule named 'relu9'"):
            loss(x_hat, x, net, layers=["relu9"])
        with pytest.raises(ValueError, match=r"weights must hold one number per layer: got 2 weights for 1 layers"):
            loss(x_hat, x, net, weights=[1.0, 2.0])
        with pytest.raises(ValueError, match="input and target must have the same shape"):
            loss(x_hat, x[:, :, :-1], net)
        with pytest.raises(ValueError, match="batch dimension"):
            loss(x_hat[0, 0, 0], x[0, 0, 0], nn.Identity())
        with pytest.raises(TypeError, match="feature_extractor must return a tensor, or a dict or list"):
            loss(x_hat, x, _ReturnsNumber())

    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Conv2d(3, 2, 3).double(), nn.ReLU()

        def forward(self, x):
            return self.used(x)

    with pytest.raises(ValueError, match=r"layers \['unused'\] were not called"):
        perceptual_loss(x_hat, x, Unused(), layers=["used", "unused"])


class _ReturnsNumber(nn.Module):
    def forward(self, x):
        return 1.0


# --- the modules -------------------------------------------------------------------------------


@pytest.mark.parametrize("module_class,function", [(lossbook.nn.PerceptualLoss, perceptual_loss),
                                                   (lossbook.nn.StyleLoss, style_loss)])
def test_module_freezes_its_extractor_and_keeps_it_in_eval_mode(module_class, function, device):
    extractor = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 3), norm=nn.BatchNorm2d(4), relu=nn.ReLU(),
                                          drop=nn.Dropout(0.5)))
    extractor.train()
    criterion = module_class(extractor, layers=["relu", "drop"], weights=[1.0, 2.0]).to(device)
    assert criterion.feature_extractor is extractor
    assert not any(p.requires_grad for p in criterion.parameters())
    holder = nn.ModuleDict({"model": nn.Conv2d(3, 3, 1), "loss": criterion}).to(device)
    holder.train()
    assert criterion.training and not extractor.training and not extractor.norm.training
    statistics = extractor.norm.running_mean.clone()
    x_hat, x = pair(4, 10, dtype=torch.float32, device=device)
    x_hat.requires_grad_()
    value = criterion(holder["model"](x_hat), x)
    value.backward()
    assert torch.equal(extractor.norm.running_mean, statistics) and extractor.conv.weight.grad is None
    assert holder["model"].weight.grad is not None
    torch.testing.assert_close(criterion(x_hat, x), function(x_hat, x, extractor, layers=["relu", "drop"], weights=[1.0, 2.0]))
    assert next(criterion.parameters()).device.type == device.type
    holder.eval()
    assert not criterion.training


@pytest.mark.parametrize("module_class", [lossbook.nn.PerceptualLoss, lossbook.nn.StyleLoss])
def test_module_options_are_attributes_read_at_call_time(module_class):
    net = small_network()
    criterion = module_class(net, layers=["relu1"])
    assert repr(criterion).startswith(f"{module_class.__name__}(\n  layers=['relu1'], weights=None, reduction='mean'")
    x_hat, x = pair()
    criterion.reduction = "none"
    assert criterion(x_hat, x).shape == (3,)
    criterion.layers, criterion.weights = ["relu1", "relu2"], [1.0, 0.5]
    function = module_class.function
    torch.testing.assert_close(criterion(input=x_hat, target=x),
                               function(x_hat, x, net, layers=["relu1", "relu2"], weights=[1.0, 0.5], reduction="none"))


@pytest.mark.parametrize("module_class", [lossbook.nn.PerceptualLoss, lossbook.nn.StyleLoss])
def test_module_refuses_bad_options_at_construction(module_class):
    net = small_network()
    for options, error, message in [
        ({"reduction": "avg"}, ValueError, "reduction must be one of"),
        ({"layers": "relu1"}, TypeError, "layers must be None or a list of submodule names"),
        ({"layers": ["relu1"], "weights": [1.0, 2.0]}, ValueError, "weights must hold one number per layer"),
        ({"weights": [-1.0]}, ValueError, "weights must be a non-negative number"),
    ]:
        with pytest.raises(error, match=message):
            module_class(net, **options)
    with pytest.raises(TypeError, match="feature_extractor must be an nn.Module, got str"):
        module_class("vgg16")
    with pytest.raises(TypeError):
        module_class(net, not_an_option=1)


@pytest.mark.parametrize("module_class", [lossbook.nn.PerceptualLoss, lossbook.nn.StyleLoss])
def test_module_survives_state_dict_pickle_and_deepcopy(module_class):
    criterion = module_class(small_network(0), layers=["relu1", "relu2"], weights=[1.0, 2.0])
    x_hat, x = pair()
    expected = criterion(x_hat, x)
    buffer = io.BytesIO()
    torch.save(criterion.state_dict(), buffer)
    assert set(criterion.state_dict()) == {f"feature_extractor.{k}" for k in small_network().state_dict()}
    restored = module_class(small_network(1), layers=["relu1", "relu2"], weights=[1.0, 2.0])
    assert not torch.allclose(restored(x_hat, x), expected)
    restored.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    for clone in (restored, copy.deepcopy(criterion), pickle.loads(pickle.dumps(criterion))):
        torch.testing.assert_close(clone(x_hat, x), expected)
        assert repr(clone) == repr(criterion)
        assert not clone.feature_extractor.training and not any(p.requires_grad for p in clone.parameters())


@pytest.mark.parametrize("module_class", [lossbook.nn.PerceptualLoss, lossbook.nn.StyleLoss])
@pytest.mark.parametrize("layers", [None, ["relu1", "relu2"]], ids=["output", "layers"])
def test_module_compiles_and_exports(module_class, layers):
    torch._dynamo.reset()
    criterion = module_class(small_network().float(), layers=layers)
    x_hat, x = pair(2, 11, dtype=torch.float32)
    expected = criterion(x_hat, x)
    compiled = torch.compile(criterion, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x_hat, x), expected)
    program = torch.export.export(criterion, (x_hat, x))
    torch.testing.assert_close(program.module()(x_hat, x), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_module_in_half_precision(dtype, device):
    """A half-precision extractor gives half features; the loss is computed in float32 and finite."""
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 8, 3), relu=nn.ReLU()))
    criterion = lossbook.nn.PerceptualLoss(copy.deepcopy(net), layers=["relu"]).to(device, dtype)
    reference = lossbook.nn.PerceptualLoss(net, layers=["relu"]).to(device)
    x_hat, x = pair(4, 16, dtype=torch.float32, device=device)
    x_hat = 300 * x_hat  # features of several hundreds: squared differences overflow float16
    low = criterion(x_hat.to(dtype), x.to(dtype))
    assert low.dtype == torch.float32 and torch.isfinite(low)
    torch.testing.assert_close(low, reference(x_hat, x), rtol=2e-2, atol=0)
    style = lossbook.nn.StyleLoss(copy.deepcopy(net), layers=["relu"]).to(device, dtype)
    assert torch.isfinite(style(x_hat.to(dtype), x.to(dtype)))


# --- vgg16_features -----------------------------------------------------------------------------


def test_vgg16_features_names_normalization_and_weights(monkeypatch):
    import torchvision

    torch.manual_seed(0)
    features = vgg16_features(last="pool5")
    names = [name for name, _ in features.named_children()]
    assert names[:6] == ["normalize", "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names[-4:] == ["relu5_2", "conv5_3", "relu5_3", "pool5"] and len(names) == 32
    assert [name for name, _ in vgg16_features(normalize=False, last="relu2_2").named_children()][-1] == "relu2_2"
    image = torch.rand(1, 3, 4, 4)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(features.normalize(image), (image - mean) / std)
    with pytest.raises(ValueError, match="VGG-16 has no layer named 'relu6_1'"):
        vgg16_features(last="relu6_1")
    # the same layout and initialization as torchvision's VGG-16
    reference = torchvision.models.vgg16(weights=None).features
    ours = vgg16_features(normalize=False, last="pool5")
    assert [type(m) for m in reference] == [type(m) for m in ours]
    assert [p.shape for p in reference.parameters()] == [p.shape for p in ours.parameters()]
    assert abs(ours.conv3_1.weight.std().item() - reference[10].weight.std().item()) < 0.01

    seen = {}

    def fake_vgg16(*, weights):
        seen["weights"] = weights
        return torchvision.models.vgg.VGG(torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"]),
                                          num_classes=2, init_weights=False)

    monkeypatch.setattr(torchvision.models, "vgg16", fake_vgg16)
    pretrained = vgg16_features(torchvision.models.VGG16_Weights.IMAGENET1K_V1, last="relu2_2")
    assert seen["weights"] is torchvision.models.VGG16_Weights.IMAGENET1K_V1
    assert [name for name, _ in pretrained.named_children()][-1] == "relu2_2"
