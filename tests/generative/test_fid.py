"""Tests of book/generative/fid.md: frechet_distance, fid_from_features (metrics, no gradient),
FeatureStatistics (streaming statistics), sqrtm_psd, mean_and_covariance."""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_fid.fid_score import calculate_frechet_distance

import lossbook
from lossbook import fid_from_features, frechet_distance
from lossbook.generative.fid import (
    FeatureStatistics,
    _trace_sqrt_product,
    digits_classifier,
    mean_and_covariance,
    sqrtm_psd,
)


def random_spd(d, seed, scale=1.0, ridge=0.1):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, 2 * d, generator=g, dtype=torch.float64)
    return scale * a @ a.T / (2 * d) + ridge * torch.eye(d, dtype=torch.float64)


def random_gaussians(d, seed):
    g = torch.Generator().manual_seed(seed)
    mu1 = torch.randn(d, generator=g, dtype=torch.float64)
    mu2 = torch.randn(d, generator=g, dtype=torch.float64)
    return mu1, random_spd(d, seed + 1), mu2, random_spd(d, seed + 2, scale=2.5)


def scipy_frechet(mu1, sigma1, mu2, sigma2):
    """The formula with scipy.linalg.sqrtm of the product, in float64 (the papers' form)."""
    mu1, sigma1, mu2, sigma2 = (np.asarray(t, dtype=np.float64) for t in (mu1, sigma1, mu2, sigma2))
    root = scipy.linalg.sqrtm(sigma1 @ sigma2)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(root).real)


def pytorch_fid(mu1, sigma1, mu2, sigma2):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return calculate_frechet_distance(*(np.asarray(t, dtype=np.float64) for t in (mu1, sigma1, mu2, sigma2)))


def pytorch_fid_features(f1, f2):
    a, b = f1.double().cpu().numpy(), f2.double().cpu().numpy()
    return pytorch_fid(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def eigh_form(mu1, sigma1, mu2, sigma2):
    """(1) with (4): the symmetric square root, as the chapter's from-scratch version."""
    root = sqrtm_psd(sigma1)
    lam = torch.linalg.eigvalsh(root @ sigma2.double() @ root)
    return ((mu1 - mu2).double().square().sum() + sigma1.trace() + sigma2.trace() - 2 * lam.clamp_min(0).sqrt().sum())


# --- oracle ------------------------------------------------------------------------------

@pytest.mark.parametrize("d", [1, 2, 5, 32, 128, 300])
def test_scipy_sqrtm_and_pytorch_fid_oracles(d):
    mu1, s1, mu2, s2 = random_gaussians(d, seed=d)
    ours = frechet_distance(mu1, s1, mu2, s2).item()
    assert ours == pytest.approx(scipy_frechet(mu1, s1, mu2, s2), rel=1e-8)
    if d == 1:  # SciPy 1.17 returns a 1 x 1 root alone even with disp=False: pytorch-fid cannot unpack it
        with pytest.raises(ValueError, match="not enough values to unpack"):
            pytorch_fid(mu1, s1, mu2, s2)
    else:
        assert ours == pytest.approx(pytorch_fid(mu1, s1, mu2, s2), rel=1e-8)
    assert ours == pytest.approx(eigh_form(mu1, s1, mu2, s2).item(), rel=1e-10)


@pytest.mark.parametrize("n1, n2, d", [(50, 50, 3), (200, 150, 16), (300, 500, 64), (1000, 800, 128)])
def test_fid_from_features_against_pytorch_fid(n1, n2, d, device):
    g = torch.Generator().manual_seed(n1 + d)
    f1 = torch.randn(n1, d, generator=g, dtype=torch.float64) @ torch.randn(d, d, generator=g, dtype=torch.float64)
    f2 = 0.8 * torch.randn(n2, d, generator=g, dtype=torch.float64) + 0.3
    ours = fid_from_features(f1.to(device), f2.to(device))
    assert ours.dtype == torch.float64 and ours.shape == () and ours.device.type == device.type
    assert ours.item() == pytest.approx(pytorch_fid_features(f1, f2), rel=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_features_are_upcast_to_float64(dtype):
    g = torch.Generator().manual_seed(0)
    f1, f2 = torch.rand(300, 8, generator=g).to(dtype), (torch.rand(200, 8, generator=g) + 0.2).to(dtype)
    ours = fid_from_features(f1, f2)
    assert ours.dtype == torch.float64 and torch.isfinite(ours)
    assert ours.item() == pytest.approx(pytorch_fid_features(f1, f2), rel=1e-8)  # the same (rounded) values


def test_mean_and_covariance_is_numpy():
    x = torch.randn(40, 7, dtype=torch.float64)
    mean, cov = mean_and_covariance(x)
    np.testing.assert_allclose(mean.numpy(), x.numpy().mean(0), rtol=1e-13)
    np.testing.assert_allclose(cov.numpy(), np.cov(x.numpy(), rowvar=False), rtol=1e-12, atol=1e-14)


def test_sqrtm_psd_against_scipy_and_on_singular_matrices():
    s = random_spd(20, 3)
    root = sqrtm_psd(s)
    np.testing.assert_allclose(root.numpy(), scipy.linalg.sqrtm(s.numpy()).real, rtol=1e-9, atol=1e-12)
    assert torch.equal(root, root.T)
    x = torch.randn(5, 20, dtype=torch.float64)  # rank 4 after centring
    singular = torch.cov(x.T)
    root = sqrtm_psd(singular)
    assert torch.isfinite(root).all() and torch.allclose(root @ root, singular, atol=1e-12)
    assert sqrtm_psd(torch.tensor([[4.0, 0.0], [0.0, -1e-9]]))[1, 1] == 0  # clamped


# --- the paper's closed forms and properties ----------------------------------------------

def test_one_dimensional_closed_form():
    one = lambda x: torch.tensor([x], dtype=torch.float64)
    for m1, v1, m2, v2 in [(0.0, 1.0, 1.0, 4.0), (0.5, 0.25, -1.0, 9.0), (2.0, 3.0, 2.0, 3.0)]:
        expected = (m1 - m2) ** 2 + (v1**0.5 - v2**0.5) ** 2
        got = frechet_distance(one(m1), one(v1)[:, None], one(m2), one(v2)[:, None]).item()
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-14)


def test_commuting_covariances():
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    w1, w2 = torch.rand(6, dtype=torch.float64) + 0.05, torch.rand(6, dtype=torch.float64) * 3
    got = frechet_distance(torch.zeros(6), q @ torch.diag(w1) @ q.T, torch.zeros(6), q @ torch.diag(w2) @ q.T)
    assert got.item() == pytest.approx((w1.sqrt() - w2.sqrt()).square().sum().item(), rel=1e-10)


def test_perpendicular_degenerate_gaussians():
    s1, s2 = torch.diag(torch.tensor([1.0, 0.0])), torch.diag(torch.tensor([0.0, 1.0]))
    assert frechet_distance(torch.zeros(2), s1, torch.zeros(2), s2).item() == pytest.approx(2.0, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(n1=st.integers(2, 30), n2=st.integers(2, 30), d=st.integers(1, 40), seed=st.integers(0, 10_000),
       scale=st.sampled_from([1e-3, 1.0, 1e3]))
def test_non_negative_finite_symmetric_also_when_singular(n1, n2, d, seed, scale):
    g = torch.Generator().manual_seed(seed)
    f1 = scale * torch.randn(n1, d, generator=g, dtype=torch.float64)
    f2 = scale * (torch.randn(n2, d, generator=g, dtype=torch.float64) * torch.rand(d, generator=g, dtype=torch.float64))
    ab, ba = fid_from_features(f1, f2), fid_from_features(f2, f1)
    assert torch.isfinite(ab) and ab >= 0
    assert ab.item() == pytest.approx(ba.item(), rel=1e-8, abs=1e-9 * scale**2 * d)
    assert fid_from_features(f1, f1) <= 1e-10 * scale**2 * d
    mu1, s1 = mean_and_covariance(f1)
    mu2, s2 = mean_and_covariance(f2)
    assert ab.item() == pytest.approx(eigh_form(mu1, s1, mu2, s2).clamp_min(0).item(), rel=1e-7, abs=1e-9 * scale**2 * d)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(-100, 100))
def test_invariant_to_a_common_translation(seed, shift):
    g = torch.Generator().manual_seed(seed)
    f1, f2 = torch.randn(60, 5, generator=g, dtype=torch.float64), torch.randn(40, 5, generator=g, dtype=torch.float64) + 1
    moved = fid_from_features(f1 + shift, f2 + shift)
    assert moved.item() == pytest.approx(fid_from_features(f1, f2).item(), rel=1e-9, abs=1e-9)


def test_singular_case_where_scipy_is_complex_and_negative():
    """pytorch-fid issues 103 and 105: fewer samples than dimensions."""
    g = torch.Generator().manual_seed(0)
    f = torch.relu(torch.randn(20, 64, generator=g, dtype=torch.float64))
    mu, sigma = mean_and_covariance(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = scipy.linalg.sqrtm(sigma.numpy() @ sigma.numpy())
    assert np.iscomplexobj(root)
    ours = frechet_distance(mu, sigma, mu, sigma)
    assert ours.item() == 0.0
    f2 = torch.relu(torch.randn(25, 64, generator=g, dtype=torch.float64))
    theirs = pytorch_fid_features(f, f2)
    assert fid_from_features(f, f2).item() == pytest.approx(theirs, rel=1e-5)


def test_cholesky_and_eigen_factors_agree():
    s1, s2 = random_spd(50, 7), random_spd(50, 8, scale=4.0)
    by_cholesky = _trace_sqrt_product(s1, s2)
    lam = torch.linalg.eigvalsh(sqrtm_psd(s1) @ s2 @ sqrtm_psd(s1))
    assert by_cholesky.item() == pytest.approx(lam.clamp_min(0).sqrt().sum().item(), rel=1e-12)
    singular = torch.cov(torch.randn(10, 50, dtype=torch.float64).T)  # Cholesky fails: eigen factor
    assert torch.linalg.cholesky_ex(singular)[1] != 0
    lam = torch.linalg.eigvalsh(sqrtm_psd(singular) @ s2 @ sqrtm_psd(singular))
    # square roots of rounding-level eigenvalues: any two methods agree to ~sqrt(eps) only
    assert _trace_sqrt_product(singular, s2).item() == pytest.approx(lam.clamp_min(0).sqrt().sum().item(), rel=1e-7)


def test_result_is_detached():
    mu1, s1, mu2, s2 = (t.clone().requires_grad_() for t in random_gaussians(3, 0))
    value = frechet_distance(mu1, s1, mu2, s2)
    assert not value.requires_grad
    assert not fid_from_features(torch.randn(10, 2, requires_grad=True), torch.randn(10, 2)).requires_grad


def test_the_package_does_not_import_scipy():
    code = "import sys, lossbook.generative.fid; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


# --- refusals -----------------------------------------------------------------------------

def test_refusals():
    mu, s = torch.zeros(3), torch.eye(3)
    with pytest.raises(ValueError, match=r"mu1 must have shape \(d,\) and sigma1 shape \(d, d\)"):
        frechet_distance(mu, torch.eye(2), mu, s)
    with pytest.raises(ValueError, match="same dimension"):
        frechet_distance(mu, s, torch.zeros(2), torch.eye(2))
    with pytest.raises(TypeError, match="sigma2"):
        frechet_distance(mu, s, mu, torch.eye(3, dtype=torch.int64))
    with pytest.raises(TypeError, match="mu1 must be a torch.Tensor"):
        frechet_distance([0.0, 0.0, 0.0], s, mu, s)
    with pytest.raises(ValueError, match=r"features1 must have shape \(N, d\)"):
        fid_from_features(torch.zeros(5), torch.zeros(5, 1))
    with pytest.raises(ValueError, match="at least 2 samples"):
        fid_from_features(torch.zeros(1, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="at least 2 samples"):
        fid_from_features(torch.zeros(4, 3), torch.zeros(0, 3))
    with pytest.raises(ValueError, match="same number of features"):
        fid_from_features(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(TypeError, match="features2"):
        fid_from_features(torch.zeros(4, 3), torch.zeros(4, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="square"):
        sqrtm_psd(torch.zeros(2, 3))


# --- streaming statistics -----------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 120), d=st.integers(1, 12), cuts=st.lists(st.integers(0, 120), max_size=6),
       offset=st.sampled_from([0.0, 1e3, 1e6]), seed=st.integers(0, 1000))
def test_streaming_equals_one_shot(n, d, cuts, offset, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.rand(d, generator=g, dtype=torch.float64) + offset
    stats = FeatureStatistics(d)
    bounds = sorted({0, n, *[min(c, n) for c in cuts]})
    for a, b in zip(bounds, bounds[1:] + [n]):  # includes empty batches
        stats.update(x[a:b])
    mean, cov = stats.compute()
    exact_mean, exact_cov = mean_and_covariance(x - offset)
    assert int(stats.count) == n
    assert torch.allclose(mean - offset, exact_mean, rtol=0, atol=1e-12 * max(1.0, offset))
    assert torch.allclose(cov, exact_cov, rtol=1e-9, atol=1e-10)


def test_merge_equals_one_accumulator_and_reset():
    x = torch.randn(301, 6, dtype=torch.float64) + 5
    a, b, whole = FeatureStatistics(6), FeatureStatistics(6), FeatureStatistics(6)
    for batch in x[:100].split(33):
        a.update(batch)
    for batch in x[100:].split(50):
        b.update(batch)
    whole.update(x)
    merged = a.merge(b)
    assert merged is a and int(a.count) == 301
    for got, expected in zip(a.compute(), whole.compute()):
        assert torch.allclose(got, expected, rtol=1e-12, atol=1e-13)
    empty = FeatureStatistics(6)
    assert torch.allclose(empty.merge(whole).compute()[1], whole.compute()[1], rtol=1e-14)
    a.reset()
    assert int(a.count) == 0 and not a.mean.any() and not a.scatter.any()
    with pytest.raises(ValueError, match="num_features=6"):
        a.merge(FeatureStatistics(5))


def test_statistics_refusals():
    with pytest.raises(ValueError, match="num_features"):
        FeatureStatistics(0)
    with pytest.raises(TypeError, match="num_features must be an int"):
        FeatureStatistics(3.0)
    with pytest.raises(TypeError, match="feature_extractor must be an nn.Module"):
        FeatureStatistics(3, feature_extractor=lambda x: x)
    stats = FeatureStatistics(3)
    with pytest.raises(ValueError, match=r"shape \(B, 3\)"):
        stats.update(torch.zeros(4, 2))
    with pytest.raises(TypeError, match="features"):
        stats.update(torch.zeros(4, 3, dtype=torch.int64))
    stats.update(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="at least 2 samples"):
        stats.compute()


def test_state_dict_pickle_and_device(device):
    x = torch.randn(50, 4, dtype=torch.float64)
    stats = FeatureStatistics(4).to(device)
    stats.update(x[:30].to(device))
    restored = FeatureStatistics(4)
    restored.load_state_dict(stats.state_dict())
    restored = restored.to(device)
    for s in (stats, restored, pickle.loads(pickle.dumps(stats))):
        s.update(x[30:].to(device))
    expected = mean_and_covariance(x)
    for s in (stats, restored):
        mean, cov = s.compute()
        assert mean.device.type == device.type
        assert torch.allclose(cov.cpu(), expected[1], rtol=1e-12) and torch.allclose(mean.cpu(), expected[0], rtol=1e-12)
    assert set(stats.state_dict()) == {"count", "mean", "scatter"}
    assert "num_features=4, count=50" in repr(stats)


def test_feature_extractor_path(device):
    """The user's own network: images in, statistics of its flattened outputs."""
    torch.manual_seed(0)
    extractor = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1)  # (B, 4, 1, 1), like Inception's pool
    ).to(device).eval()
    images = torch.rand(37, 3, 9, 9, device=device)
    stats = FeatureStatistics(4, feature_extractor=extractor).to(device)
    for batch in images.split(10):
        stats.update(batch)
    with torch.no_grad():
        features = torch.cat([extractor(batch).flatten(1) for batch in images.split(10)])
    mean, cov = stats.compute()
    expected_mean, expected_cov = mean_and_covariance(features)
    assert torch.allclose(mean, expected_mean, rtol=0, atol=1e-13) and torch.allclose(cov, expected_cov, rtol=0, atol=1e-13)
    assert "feature_extractor" in dict(stats.named_children())
    assert not any(p.grad is not None for p in extractor.parameters())
    other = FeatureStatistics(4, feature_extractor=extractor).to(device)
    other.update(images.flip(0))
    assert frechet_distance(*stats.compute(), *other.compute()).item() == pytest.approx(0.0, abs=1e-12)


def test_digits_classifier_is_a_usable_feature_network():
    from lossbook.metric_learning.embeddings import digits_data

    model = digits_classifier(steps=100)
    _, _, x_test, y_test = digits_data()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        assert model[:-1](x_test).shape == (len(x_test), 64)
    assert accuracy > 0.9 and not model.training


def test_public_names():
    assert {"frechet_distance", "fid_from_features"} <= set(lossbook.__all__)
    assert lossbook.frechet_distance.oracle.startswith("scipy")
