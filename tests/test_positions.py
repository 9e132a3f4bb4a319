"""gpt/positions.py: ALiBi's slopes and bias, T5's buckets and bias table, RoPE's scaling; models
with each scheme past their context length (causal, cached == uncached, evaluation at any length).

The references are written from the papers: ALiBi's m_k = 2^(-8k/n) and its rule for other head
counts (Press et al. 2022, their released code), T5's bucket values worked out by hand from the
formula in Raffel et al.'s code, and the RoPE scalings' definitions (Chen et al. 2023; bloc97 2023).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from gpt.generate import generate
from gpt.model import GPTConfig, GPTModel
from gpt.positions import (
    ALiBi,
    RotaryEmbedding,
    T5RelativeBias,
    alibi_bias,
    alibi_slopes,
    relative_position_bucket,
    rope_scaling_from_string,
)
from gpt.train import calc_loss_loader, evaluate_at_length

seeds = st.integers(0, 2**16)
TOL = dict(atol=1e-7, rtol=1e-5)
RELATIVE = ("rope", "alibi", "t5", "none")
CTX = 6


def tiny(kind, seed=0, **overrides):
    mg.manual_seed(seed)
    cfg = dict(vocab_size=13, context_length=CTX, emb_dim=8, n_heads=2, n_layers=2, drop_rate=0.0, pos_emb=kind,
               num_buckets=4)
    model = GPTModel(GPTConfig(**{**cfg, **overrides}))
    if model.rel_pos_bias is not None:   # zero at first; drawn here so a wrong bucket or head shows
        w = model.rel_pos_bias.relative_attention_bias.weight
        w.data[...] = np.random.default_rng(seed).standard_normal(w.shape).astype(w.dtype)
    return model.eval()


# ---------------------------------------------------------------------- ALiBi
def test_alibi_slopes_for_powers_of_two():
    np.testing.assert_array_equal(alibi_slopes(8), [1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128, 1 / 256])
    np.testing.assert_array_equal(alibi_slopes(1), [2.0 ** -8])
    np.testing.assert_allclose(alibi_slopes(16), 2.0 ** (-8 * np.arange(1, 17) / 16), rtol=1e-15)


def test_alibi_slopes_for_other_head_counts_follow_the_paper():
    # 6 heads: the 4-head slopes 2^-2, 2^-4, 2^-6, 2^-8, then every other one of the 8-head list: 2^-1, 2^-3
    np.testing.assert_array_equal(alibi_slopes(6), 2.0 ** -np.array([2, 4, 6, 8, 1, 3]))
    # 12 heads (GPT-2 small): the 8-head slopes, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5 of the 16-head list
    np.testing.assert_allclose(alibi_slopes(12), 2.0 ** -np.array([1, 2, 3, 4, 5, 6, 7, 8, .5, 1.5, 2.5, 3.5]),
                               rtol=1e-15)


@given(n=st.integers(1, 64))
def test_alibi_slopes_are_distinct_and_in_range(n):
    m = alibi_slopes(n)
    assert m.shape == (n,) and len(set(m.tolist())) == n
    assert np.all((m > 0) & (m < 1))
    p = 2 ** int(math.log2(n))
    np.testing.assert_allclose(m[:p], 2.0 ** (-8 * np.arange(1, p + 1) / p), rtol=1e-15)


@given(h=st.integers(1, 4), start=st.integers(0, 5), t=st.integers(1, 5))
def test_alibi_bias_is_minus_slope_times_distance(h, start, t):
    bias = ALiBi(h)(start, t, start + t)
    assert bias.shape == (h, t, start + t) and bias.dtype == np.float32
    m = alibi_slopes(h)
    for i in range(t):
        for j in range(start + t):
            expected = -m * (start + i - j) if j <= start + i else np.zeros(h)
            np.testing.assert_allclose(bias[:, i, j], expected, rtol=1e-6)
    np.testing.assert_array_equal(alibi_bias(m, start, t, start + t, np.float64), alibi_bias(m, 0, start + t, start + t, np.float64)[:, start:])


# ---------------------------------------------------------------------- T5's buckets
def test_relative_position_bucket_known_values():
    # bidirectional, 32 buckets, max_distance 128 (T5's defaults): 16 per direction, 8 of them exact
    rel = np.array([0, -1, -7, -8, -16, -127, -128, -1000, 1, 7, 16, 1000])
    np.testing.assert_array_equal(relative_position_bucket(rel, True, 32, 128),
                                  [0, 1, 7, 8, 10, 15, 15, 15, 17, 23, 26, 31])
    # causal: 32 buckets for keys at or before the query, 16 of them exact; later keys -> 0
    np.testing.assert_array_equal(relative_position_bucket(np.array([0, -15, -16, -20, -64, -127, -128, 5]), False, 32, 128),
                                  [0, 15, 16, 17, 26, 31, 31, 0])


@given(n=st.integers(2, 40), extra=st.integers(1, 200), bidirectional=st.booleans())
def test_relative_position_bucket_properties(n, extra, bidirectional):
    num_buckets = 2 * n if bidirectional else n
    exact = n // 2
    max_distance = exact + extra
    distance = np.arange(0, 3 * max_distance)
    before = relative_position_bucket(-distance, bidirectional, num_buckets, max_distance)   # keys before the query
    assert before[0] == 0 and np.all(np.diff(before) >= 0)             # farther never means a nearer bucket
    np.testing.assert_array_equal(before[:exact], distance[:exact])   # one bucket per small distance
    assert np.all(before[max_distance:] == n - 1)                      # far keys share the last bucket
    assert before.min() >= 0 and before.max() <= n - 1
    if bidirectional:
        after = relative_position_bucket(distance[1:], True, num_buckets, max_distance)
        np.testing.assert_array_equal(after, before[1:] + n)           # the other half, same spacing
    else:
        assert np.all(relative_position_bucket(distance[1:], False, num_buckets, max_distance) == 0)


def test_relative_position_bucket_rejects_settings_without_log_buckets():
    with pytest.raises(ValueError, match="max_distance"):
        relative_position_bucket(np.arange(4), False, 32, 16)
    with pytest.raises(ValueError, match="max_distance more than"):
        GPTConfig(pos_emb="t5", num_buckets=32, max_distance=16)


@settings(max_examples=10)
@given(h=st.integers(1, 3), start=st.integers(0, 3), t=st.integers(1, 4), seed=seeds)
def test_t5_bias_table_gradient(h, start, t, seed):
    """Each (bucket, head) entry's gradient is the sum of the upstream gradient over the pairs in it."""
    table = T5RelativeBias(h, num_buckets=4, max_distance=5).double()
    w = table.relative_attention_bias.weight
    w.data[...] = np.random.default_rng(seed).standard_normal(w.shape)
    assert mg.gradcheck(lambda w_: table(start, t, start + t), w, seed=seed, **TOL)
    out = table(start, t, start + t).data
    buckets = relative_position_bucket(np.arange(start + t)[None] - np.arange(start, start + t)[:, None], False, 4, 5)
    np.testing.assert_array_equal(out, w.data[buckets].transpose(2, 0, 1))


# ---------------------------------------------------------------------- RoPE's scaling
@given(factor=st.sampled_from([2.0, 4.0]), half=st.integers(1, 4), seed=seeds)
def test_rope_linear_scaling_is_position_interpolation(factor, half, seed):
    """Position p with factor s is rotated as position p / s without scaling (p a multiple of s)."""
    x = mg.tensor(np.random.default_rng(seed).standard_normal((1, 1, 1, 2 * half)))
    plain, stretched = RotaryEmbedding(2 * half, 4), RotaryEmbedding(2 * half, 4, scaling={"type": "linear", "factor": factor})
    for p in range(0, 12, int(factor)):
        np.testing.assert_allclose(stretched(x, p).data, plain(x, int(p // factor)).data, rtol=1e-12, atol=1e-12)


@given(factor=st.floats(1.0, 16.0), half=st.integers(2, 32))
def test_rope_ntk_scaling_keeps_the_fastest_frequency_and_slows_the_slowest_by_the_factor(factor, half):
    plain = RotaryEmbedding(2 * half, 4)
    ntk = RotaryEmbedding(2 * half, 4, scaling={"type": "ntk", "factor": factor})
    assert ntk.inv_freq[0] == plain.inv_freq[0] == 1.0
    assert ntk.inv_freq[-1] == pytest.approx(plain.inv_freq[-1] / factor, rel=1e-12)
    assert np.all(ntk.inv_freq <= plain.inv_freq * (1 + 1e-15))


def test_rope_scaling_settings_and_errors():
    assert rope_scaling_from_string("linear:4") == {"type": "linear", "factor": 4.0}
    assert rope_scaling_from_string("none") is None
    for bad in ("cubic:2", "linear:x", "ntk:0.5"):
        with pytest.raises(ValueError):
            rope_scaling_from_string(bad)
    with pytest.raises(ValueError, match="rope_scaling"):
        GPTConfig(pos_emb="rope", rope_scaling={"type": "linear"})
    model = tiny("rope")
    model.set_rope_scaling({"type": "ntk", "factor": 2.0})
    assert model.cfg.rope_scaling == {"type": "ntk", "factor": 2.0} and model.rope.scaling == model.cfg.rope_scaling
    with pytest.raises(ValueError, match="rope models"):
        tiny("alibi").set_rope_scaling({"type": "linear", "factor": 2.0})
    for factor in (float("inf"), True, 0.5):
        with pytest.raises(ValueError, match="finite number >= 1"):
            GPTConfig(pos_emb="rope", rope_scaling={"type": "linear", "factor": factor})
    with pytest.raises(ValueError, match="pos_emb='rope' only"):
        GPTConfig(pos_emb="alibi", rope_scaling={"type": "linear", "factor": 2.0})


def test_linear_rope_scaling_rotates_position_p_as_p_over_the_factor():
    """With factor 2, the scores of positions (2i, 2j) are those of (i, j) unscaled: RoPE's scores
    depend on the positions only through their rotation angles."""
    from gpt.positions import RotaryEmbedding

    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 1, 1, 8, 16))
    plain, scaled = RotaryEmbedding(16, 32), RotaryEmbedding(16, 32, scaling={"type": "linear", "factor": 2.0})
    scores_plain = (plain(mg.tensor(q)).data @ plain(mg.tensor(k)).data.swapaxes(-1, -2))[0, 0]      # positions 0..7
    q2, k2 = np.zeros((1, 1, 16, 16)), np.zeros((1, 1, 16, 16))
    q2[0, 0, ::2], k2[0, 0, ::2] = q[0, 0], k[0, 0]                                                  # at 0, 2, .., 14
    scores_scaled = (scaled(mg.tensor(q2)).data @ scaled(mg.tensor(k2)).data.swapaxes(-1, -2))[0, 0][::2, ::2]
    np.testing.assert_allclose(scores_scaled, scores_plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_buckets, max_distance", [(32, 128), (16, 16), (8, 20), (32, 64)])
def test_t5_buckets_equal_transformers(bidirectional, num_buckets, max_distance):
    torch = pytest.importorskip("torch")
    t5 = pytest.importorskip("transformers.models.t5.modeling_t5")
    relative = np.arange(-600, 601)
    theirs = t5.T5Attention._relative_position_bucket(torch.from_numpy(relative), bidirectional=bidirectional,
                                                      num_buckets=num_buckets, max_distance=max_distance)
    ours = relative_position_bucket(relative, bidirectional, num_buckets, max_distance)
    np.testing.assert_array_equal(np.asarray(ours), theirs.numpy())


# ---------------------------------------------------------------------- past the context length
@pytest.mark.parametrize("kind", RELATIVE)
@given(extra=st.integers(1, 10), cut=st.integers(0, 15), seed=seeds)
def test_longer_inputs_are_causal_and_extend_the_prefix(kind, extra, cut, seed):
    """On CTX + extra tokens the logits of the first k positions are those of the first k tokens alone,
    whatever follows (causality, also past the trained length)."""
    model = tiny(kind, seed)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 13, (2, CTX + extra))
    cut = min(cut, ids.shape[1] - 1)
    full = model(ids).data
    np.testing.assert_allclose(model(ids[:, :cut + 1]).data, full[:, :cut + 1], rtol=1e-4, atol=1e-5)
    changed = ids.copy()
    changed[:, cut + 1:] = rng.integers(0, 13, changed[:, cut + 1:].shape)
    np.testing.assert_array_equal(model(changed).data[:, :cut + 1], full[:, :cut + 1])


def test_learned_positions_refuse_longer_inputs():
    model = tiny("learned")
    with pytest.raises(ValueError, match="context length is 6"):
        model(np.zeros((1, CTX + 1), dtype=np.int64))
    with pytest.raises(ValueError, match="learned positions"):
        model.new_kv_cache(1, CTX + 1)
    with pytest.raises(ValueError, match="learned positions"):
        evaluate_at_length(model, np.arange(40) % 13, 2 * CTX)


@pytest.mark.parametrize("kind", RELATIVE)
@settings(max_examples=8)
@given(prompt=st.integers(1, 9), new=st.integers(1, 14), window=st.integers(CTX, 3 * CTX), batch=st.integers(1, 2),
       seed=seeds)
def test_generation_past_the_context_is_the_same_with_and_without_the_cache(kind, prompt, new, window, batch, seed):
    """A model without a position table may look back ``window`` > context_length tokens; the cache
    then holds that many, and the ids equal those of the uncached model over the same window."""
    model = tiny(kind, seed)
    ids = np.random.default_rng(seed).integers(0, 13, (batch, prompt))
    rngs = [np.random.default_rng(seed + r) for r in range(batch)]
    cached = generate(model, ids, new, context_size=window, temperature=1.0, top_k=5, rng=rngs)
    rngs = [np.random.default_rng(seed + r) for r in range(batch)]
    uncached = generate(model, ids, new, context_size=window, temperature=1.0, top_k=5, rng=rngs, use_cache=False)
    np.testing.assert_array_equal(cached, uncached)
    assert cached.shape == (batch, prompt + new)


def test_generation_with_a_longer_window_sees_further_back():
    """The window is real: with context_size = 3 x context_length the model's next-token logits
    depend on a token 2 x context_length back, which the default window has dropped."""
    model = tiny("alibi")
    ids = np.random.default_rng(0).integers(0, 13, (1, 2 * CTX))
    other = ids.copy()
    other[0, 0] = (other[0, 0] + 1) % 13
    # the default window (context_length) has dropped token 0: the logits cannot differ
    default = [model(x[:, -CTX:], last_only=True).data for x in (ids, other)]
    np.testing.assert_array_equal(default[0], default[1])
    # the whole sequence read at once does depend on it, and generate with a long window reads it so
    a, b = model(ids, last_only=True).data, model(other, last_only=True).data
    assert not np.allclose(a, b)
    assert generate(model, ids, 1, context_size=3 * CTX)[0, -1] == np.argmax(a[0, -1])
    assert generate(model, ids, 1)[0, -1] == np.argmax(default[0][0, -1])


# ---------------------------------------------------------------------- evaluation at any length
@pytest.mark.parametrize("kind", ("learned", "alibi"))
def test_evaluate_at_the_trained_length_is_the_books_loader_loss(kind):
    from gpt.data import DataLoader, GPTDataset

    model = tiny(kind)
    ids = np.random.default_rng(1).integers(0, 13, 100)
    r = evaluate_at_length(model, ids, CTX, batch_size=4)
    with mg.no_grad():
        expected = calc_loss_loader(DataLoader(GPTDataset(ids, CTX, CTX), batch_size=4, shuffle=False, drop_last=False),
                                    model)
    assert r["loss"] == pytest.approx(expected, rel=1e-5)
    assert r["windows"] == (100 - 1) // CTX and r["tokens"] == r["windows"] * CTX
    assert r["per_position"].shape == (CTX,) and r["per_position"].mean() == pytest.approx(r["loss"], rel=1e-12)


def test_evaluate_longer_windows_and_a_sliding_stride():
    model = tiny("t5")
    ids = np.random.default_rng(2).integers(0, 13, 200)
    long = evaluate_at_length(model, ids, 4 * CTX, batch_size=3)
    assert long["per_position"].shape == (4 * CTX,) and long["tokens"] == long["windows"] * 4 * CTX
    # stride S: the first window scores all its targets, each later one its last S: each target once
    slide = evaluate_at_length(model, ids, 4 * CTX, stride=CTX)
    assert slide["per_position"] is None
    assert slide["tokens"] == 4 * CTX + (slide["windows"] - 1) * CTX
    # by hand: the loss of target t of the second window, read with the window before it
    manual = []
    for w, start in enumerate(range(0, len(ids) - 4 * CTX, CTX)):
        logits = model(ids[None, start:start + 4 * CTX]).data[0].astype(np.float64)
        nll = np.log(np.exp(logits).sum(-1)) - logits[np.arange(4 * CTX), ids[start + 1:start + 4 * CTX + 1]]
        manual.extend(nll if w == 0 else nll[-CTX:])
    assert slide["loss"] == pytest.approx(np.mean(manual), rel=1e-5)
    with pytest.raises(ValueError, match="stride"):
        evaluate_at_length(model, ids, CTX, stride=CTX + 1)
