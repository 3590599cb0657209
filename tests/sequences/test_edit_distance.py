"""Tests of book/sequences/edit_distance.md: edit_distance and error_rate (metrics, no gradient)."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from rapidfuzz.distance import Levenshtein

import lossbook
from lossbook import edit_distance, error_rate

ROOT = Path(__file__).resolve().parent.parent.parent


def random_batch(batch, m, n, vocabulary, seed, token_dtype=torch.int64):
    generator = torch.Generator().manual_seed(seed)
    h = torch.randint(0, vocabulary, (batch, m), generator=generator).to(token_dtype)
    t = torch.randint(0, vocabulary, (batch, n), generator=generator).to(token_dtype)
    h_len = torch.randint(0, m + 1, (batch,), generator=generator)
    t_len = torch.randint(0, n + 1, (batch,), generator=generator)
    return h, t, h_len, t_len


def rapidfuzz_distances(h, t, h_len, t_len):
    return np.array([Levenshtein.distance(a[:p].tolist(), b[:q].tolist()) for a, b, p, q in zip(h, t, h_len, t_len)],
                    dtype=np.float64)


def tf_normalized(distances, t_len):
    """tf.edit_distance(normalize=True): / truth length; empty truth: inf, or 0 if nothing to edit."""
    t_len = np.asarray(t_len, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t_len > 0, distances / np.maximum(t_len, 1), np.where(distances > 0, np.inf, 0.0))


def padded(sequences, pad=0, dtype=torch.int64):
    width = max([len(s) for s in sequences] + [0])
    out = torch.full((len(sequences), width), pad, dtype=dtype)
    for row, s in enumerate(sequences):
        out[row, : len(s)] = torch.tensor(s, dtype=dtype)
    return out, torch.tensor([len(s) for s in sequences])


# --- oracle ------------------------------------------------------------------------------

SIZES = [(1, 1, 1, 2), (64, 12, 9, 3), (64, 9, 12, 3), (40, 30, 30, 50), (32, 1, 25, 2), (32, 25, 1, 2),
         (16, 0, 7, 3), (16, 7, 0, 3), (8, 0, 0, 3), (20, 300, 40, 4), (5, 260, 260, 3),
         (30, 62, 62, 3), (30, 63, 63, 3), (30, 63, 10, 4), (30, 10, 63, 4), (30, 62, 200, 2)]


@pytest.mark.parametrize("batch, m, n, vocabulary", SIZES)
@pytest.mark.parametrize("normalize", [False, True])
def test_rapidfuzz_oracle(batch, m, n, vocabulary, normalize, device):
    h, t, h_len, t_len = random_batch(batch, m, n, vocabulary, seed=batch + m + n)
    expected = rapidfuzz_distances(h, t, h_len, t_len)
    if normalize:
        expected = tf_normalized(expected, t_len)
    ours = edit_distance(h.to(device), t.to(device), hypothesis_lengths=h_len.to(device),
                         truth_lengths=t_len.to(device), normalize=normalize, dtype=torch.float64)
    assert ours.device.type == device.type and ours.dtype == torch.float64 and ours.shape == (batch,)
    np.testing.assert_allclose(ours.cpu().numpy(), expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("token_dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool])
def test_token_dtypes(token_dtype):
    vocabulary = 2 if token_dtype == torch.bool else 7
    h, t, h_len, t_len = random_batch(50, 10, 8, vocabulary, seed=3, token_dtype=token_dtype)
    ours = edit_distance(h, t, hypothesis_lengths=h_len, truth_lengths=t_len, normalize=False)
    expected = rapidfuzz_distances(h.long(), t.long(), h_len, t_len)
    np.testing.assert_array_equal(ours.numpy(), expected)


def test_mixed_token_dtypes_and_length_dtypes():
    h, t, h_len, t_len = random_batch(30, 10, 8, 7, seed=4)
    expected = edit_distance(h, t, hypothesis_lengths=h_len, truth_lengths=t_len)
    mixed = edit_distance(h.to(torch.uint8), t.to(torch.int32), hypothesis_lengths=h_len.to(torch.int32),
                          truth_lengths=t_len.to(torch.uint8))
    assert torch.equal(mixed, expected)


def test_large_token_ids_are_compared_exactly():
    base = 2**40
    h = torch.tensor([[base, base + 1, base + 2]])
    t = torch.tensor([[base, base + 2, base + 2]])
    assert edit_distance(h, t, normalize=False).item() == 1


def test_padding_content_is_ignored():
    h, t, h_len, t_len = random_batch(40, 12, 10, 5, seed=5)
    a = edit_distance(h, t, hypothesis_lengths=h_len, truth_lengths=t_len)
    keep_h = torch.arange(12) < h_len[:, None]
    keep_t = torch.arange(10) < t_len[:, None]
    b = edit_distance(torch.where(keep_h, h, 99), torch.where(keep_t, t, -7), hypothesis_lengths=h_len, truth_lengths=t_len)
    assert torch.equal(a, b)


def test_schedules_agree():
    """Bit-parallel (either side as the pattern), wavefront, and match masks by value table or by sorting."""
    from lossbook.sequences.edit_distance import _bit_parallel, _match_masks, _wavefront

    h, t, h_len, t_len = random_batch(200, 40, 33, 6, seed=11)
    expected = torch.from_numpy(rapidfuzz_distances(h, t, h_len, t_len)).long()
    assert torch.equal(_wavefront(h, t, h_len, t_len), expected)
    assert torch.equal(_bit_parallel(h, t, h_len, t_len), expected)
    assert torch.equal(_bit_parallel(t, h, t_len, h_len), expected)
    spread_h, spread_t = h * 10**12 - 5, t * 10**12 - 5  # the same equalities over a span too wide for a table
    assert torch.equal(_match_masks(spread_h, spread_t), _match_masks(h, t))
    assert torch.equal(_match_masks(h.to(torch.uint8), t.to(torch.uint8)), _match_masks(h, t))
    assert torch.equal(edit_distance(spread_h, spread_t, hypothesis_lengths=h_len, truth_lengths=t_len, normalize=False),
                       expected.float())


def test_long_sequences_use_wider_work_dtype():
    """Distances above 255 (uint8 table) and the int16 path stay exact."""
    h = torch.zeros(2, 300, dtype=torch.long)
    t = torch.ones(2, 290, dtype=torch.long)
    assert edit_distance(h, t, normalize=False).tolist() == [300.0, 300.0]


# --- TensorFlow semantics ------------------------------------------------------------------


def test_tensorflow_documented_example():
    # tf.edit_distance's example: hypothesis [["a"], []] per row of a 2 x 2 grid of pairs,
    # truth [[[], ["a"]], [["b", "c"], ["a"]]], normalize=True -> [[inf, 1.0], [0.5, 1.0]]
    hypothesis, h_len = padded([[1], [], [2], []])
    truth, t_len = padded([[], [1], [2, 3], [1]])
    out = edit_distance(hypothesis, truth, hypothesis_lengths=h_len, truth_lengths=t_len).view(2, 2)
    assert out.dtype == torch.float32
    assert out.tolist() == [[math.inf, 1.0], [0.5, 1.0]]


def test_empty_cases():
    hypothesis, h_len = padded([[], [1, 2], [], [5, 5, 5]])
    truth, t_len = padded([[], [], [3, 4], [5]])
    out = edit_distance(hypothesis, truth, hypothesis_lengths=h_len, truth_lengths=t_len)
    assert out.tolist() == [0.0, math.inf, 1.0, 2.0]
    raw = edit_distance(hypothesis, truth, hypothesis_lengths=h_len, truth_lengths=t_len, normalize=False)
    assert raw.tolist() == [0.0, 2.0, 2.0, 2.0]
    empty_batch = edit_distance(torch.zeros(0, 5, dtype=torch.long), torch.zeros(0, 3, dtype=torch.long))
    assert empty_batch.shape == (0,)
    zero_width = edit_distance(torch.zeros(3, 0, dtype=torch.long), torch.zeros(3, 0, dtype=torch.long))
    assert zero_width.tolist() == [0.0, 0.0, 0.0]


def test_rapidfuzz_normalization_differs():
    """rapidfuzz normalizes by the longer sequence; ours (tf) by the truth."""
    h, h_len = padded([list(b"abcd")])
    t, t_len = padded([list(b"ab")])
    ours = edit_distance(h, t, hypothesis_lengths=h_len, truth_lengths=t_len).item()
    assert ours == 1.0 and Levenshtein.normalized_distance("abcd", "ab") == 0.5


def test_float64_and_no_gradient():
    h, t, h_len, t_len = random_batch(10, 6, 6, 3, seed=6)
    out = edit_distance(h, t, hypothesis_lengths=h_len, truth_lengths=t_len, dtype=torch.float64)
    assert out.dtype == torch.float64 and not out.requires_grad and out.grad_fn is None


# --- properties (hypothesis) -------------------------------------------------------------

sequences = st.lists(st.integers(0, 3), max_size=12)


def distance(a, b):
    (h, h_len), (t, t_len) = padded([a]), padded([b])
    return edit_distance(h, t, hypothesis_lengths=h_len, truth_lengths=t_len, normalize=False).item()


@given(sequences, sequences, sequences)
def test_metric_axioms(a, b, c):
    d_ab, d_ba = distance(a, b), distance(b, a)
    assert d_ab == d_ba
    assert (d_ab == 0) == (a == b)
    assert distance(a, a) == 0
    assert distance(a, c) <= d_ab + distance(b, c)
    assert abs(len(a) - len(b)) <= d_ab <= max(len(a), len(b))
    assert d_ab == Levenshtein.distance(a, b)


@given(st.lists(st.tuples(sequences, sequences), min_size=1, max_size=8))
def test_batch_equals_pairs(pairs):
    hs, ts = [p[0] for p in pairs], [p[1] for p in pairs]
    (h, h_len), (t, t_len) = padded(hs), padded(ts)
    batched = edit_distance(h, t, hypothesis_lengths=h_len, truth_lengths=t_len, normalize=False).tolist()
    assert batched == [Levenshtein.distance(a, b) for a, b in pairs]


# --- error rate ---------------------------------------------------------------------------


def jiwer_wer(references, hypotheses):
    """jiwer's definition: (S + D + I) / (S + D + H) summed over sentences, counts from rapidfuzz opcodes."""
    S = D = I = H = 0
    for ref, hyp in zip(references, hypotheses):
        for tag, i1, i2, j1, j2 in Levenshtein.opcodes(ref, hyp):
            if tag == "replace":
                S += i2 - i1
            elif tag == "delete":
                D += i2 - i1
            elif tag == "insert":
                I += j2 - j1
            else:
                H += i2 - i1
    return (S + D + I) / (S + D + H)


@pytest.mark.parametrize("seed", range(5))
def test_error_rate_is_jiwers_definition(seed, device):
    rng = np.random.default_rng(seed)
    references = [list(rng.integers(0, 6, rng.integers(1, 15))) for _ in range(20)]
    hypotheses = [list(rng.integers(0, 6, rng.integers(0, 15))) for _ in range(20)]
    (h, h_len), (t, t_len) = padded(hypotheses), padded(references)
    ours = error_rate(h.to(device), t.to(device), hypothesis_lengths=h_len.to(device), truth_lengths=t_len.to(device),
                      dtype=torch.float64)
    assert ours.shape == () and ours.dtype == torch.float64
    assert math.isclose(ours.item(), jiwer_wer(references, hypotheses), rel_tol=1e-14)
    # not the mean of the per-sentence rates
    per = edit_distance(h, t, hypothesis_lengths=h_len, truth_lengths=t_len, dtype=torch.float64)
    assert not math.isclose(per.mean().item(), ours.item(), rel_tol=1e-6)


def test_error_rate_words_and_characters():
    references = ["the cat sat", "hello world"]
    hypotheses = ["the cat sat down", "hello word"]
    vocabulary = {}
    ids = lambda sentences, split: padded([[vocabulary.setdefault(w, len(vocabulary) + 1) for w in split(s)] for s in sentences])
    (h, h_len), (t, t_len) = ids(hypotheses, str.split), ids(references, str.split)
    assert math.isclose(error_rate(h, t, hypothesis_lengths=h_len, truth_lengths=t_len).item(), 2 / 5, rel_tol=1e-6)
    (h, h_len), (t, t_len) = ids(hypotheses, list), ids(references, list)
    assert math.isclose(error_rate(h, t, hypothesis_lengths=h_len, truth_lengths=t_len).item(), 6 / 22, rel_tol=1e-6)


def test_error_rate_without_truth_tokens():
    h, h_len = padded([[1], []])
    t, t_len = padded([[], []])
    assert error_rate(h, t, hypothesis_lengths=h_len, truth_lengths=t_len).item() == math.inf
    assert error_rate(h, t, hypothesis_lengths=torch.tensor([0, 0]), truth_lengths=t_len).item() == 0.0


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize("function", [edit_distance, error_rate])
def test_refusals(function):
    h, t = torch.randint(0, 3, (4, 5)), torch.randint(0, 3, (4, 6))
    with pytest.raises(TypeError, match="hypothesis must hold integer token ids"):
        function(h.float(), t)
    with pytest.raises(TypeError, match="truth must hold integer token ids"):
        function(h, t.double())
    with pytest.raises(TypeError, match="torch.Tensor"):
        function([[1, 2]], t)
    with pytest.raises(ValueError, match=r"shape \(B, L\).*hypothesis\[None\]"):
        function(h[0], t)
    with pytest.raises(ValueError, match="same batch size, got shapes"):
        function(h[:3], t)
    with pytest.raises(ValueError, match=r"truth_lengths must be in \[0, 6\]"):
        function(h, t, truth_lengths=torch.tensor([1, 2, 7, 0]))
    with pytest.raises(ValueError, match=r"hypothesis_lengths must be in \[0, 5\]"):
        function(h, t, hypothesis_lengths=torch.tensor([1, -1, 2, 0]))
    with pytest.raises(ValueError, match=r"hypothesis_lengths must have shape \(4,\)"):
        function(h, t, hypothesis_lengths=torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="truth_lengths must be an integer tensor"):
        function(h, t, truth_lengths=torch.tensor([1.0, 2.0, 3.0, 4.0]))
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
        function(h, t, dtype=torch.float16)


def test_normalize_must_be_bool():
    with pytest.raises(TypeError, match="normalize must be True or False"):
        edit_distance(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long), normalize="yes")


def test_value_checks_can_be_switched_off():
    h, t = torch.randint(0, 3, (2, 5)), torch.randint(0, 3, (2, 6))
    with lossbook.validate_args(False):
        edit_distance(h, t, truth_lengths=torch.tensor([1, 2]))  # in range anyway; no check, no error


# --- tracing, devices ---------------------------------------------------------------------


def test_metrics_are_public_without_module():
    assert "edit_distance" in lossbook.__all__ and "error_rate" in lossbook.__all__
    assert edit_distance.oracle.startswith("rapidfuzz")
    assert not hasattr(edit_distance, "nn_module_name")


def test_torch_compile_fullgraph():
    h, t, h_len, t_len = random_batch(16, 7, 5, 3, seed=7)
    eager = edit_distance(h, t, hypothesis_lengths=h_len, truth_lengths=t_len)
    compiled = torch.compile(edit_distance, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(h, t, hypothesis_lengths=h_len, truth_lengths=t_len), eager)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_no_host_sync_on_cuda():
    h, t, h_len, t_len = (v.cuda() for v in random_batch(16, 7, 5, 3, seed=8))
    torch.cuda.set_sync_debug_mode("error")
    try:
        edit_distance(h, t, hypothesis_lengths=h_len, truth_lengths=t_len)
        error_rate(h, t, hypothesis_lengths=h_len, truth_lengths=t_len)
    finally:
        torch.cuda.set_sync_debug_mode("default")


# --- the benchmark script -----------------------------------------------------------------


def test_benchmark_script_runs(tmp_path):
    spec = importlib.util.spec_from_file_location("benchmark_edit_distance", ROOT / "benchmarks" / "edit_distance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    output = tmp_path / "edit_distance.json"
    result = module.main(["--pairs", "50", "--length", "8", "--torchmetrics-pairs", "10", "--repeats", "1",
                          "--output", str(output)])
    assert result["agrees"] and json.loads(output.read_text())["meta"]["pairs"] == 50
    assert all(value > 0 for value in result["seconds"].values())
    text = module.as_text([[1, 2, 3], [3, 1]])
    assert module.torchmetrics_distances(text[:1], text[1:]) == [Levenshtein.distance([1, 2, 3], [3, 1])]
