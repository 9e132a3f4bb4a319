"""Chapter 3's attention classes: the book's figures, forward passes against direct NumPy formulas,
float64 gradient checks, causality, RoPE and the KV cache.

The NumPy references below are written from the book's equations, not from the modules' code:
``softmax(q k^T / sqrt(d_k)) v`` with the module's own weights read back as plain arrays.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from gpt.attention import (
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttentionV1,
    SelfAttentionV2,
    causal_mask,
    simple_self_attention,
)
from gpt.kv_cache import KVCache
from gpt.rope import RotaryEmbedding

# "Your journey starts with one step", one 3-d embedding per word (section 3.3)
INPUTS = np.array(
    [[0.43, 0.15, 0.89],   # Your
     [0.55, 0.87, 0.66],   # journey
     [0.57, 0.85, 0.64],   # starts
     [0.22, 0.58, 0.33],   # with
     [0.77, 0.25, 0.10],   # one
     [0.05, 0.80, 0.55]],  # step
    dtype=np.float32,
)

seeds = st.integers(0, 2**16)
small = st.integers(1, 3)
# float64 central differences are good to ~1e-9; these catch a 0.001% error in a backward pass
TOL = dict(atol=1e-7, rtol=1e-5)


# ---------------------------------------------------------------------- NumPy references
def np_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def np_linear(x, lin):
    y = x @ lin.weight.data.T
    return y if lin.bias is None else y + lin.bias.data


def np_attention(q, k, v, causal):
    """softmax(q k^T / sqrt(d_k)) v over the last two axes, future keys hidden when ``causal``."""
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(k.shape[-1])
    if causal:
        t = scores.shape[-1]
        scores = np.where(np.triu(np.ones((t, t), dtype=bool), 1), -np.inf, scores)
    return np_softmax(scores) @ v


def np_causal_head(x, head):
    return np_attention(np_linear(x, head.W_query), np_linear(x, head.W_key), np_linear(x, head.W_value), True)


def np_multihead(x, mha):
    """The efficient form written out: project, split the last axis into heads, attend, merge."""
    b, t, _ = x.shape
    h, hd = mha.num_heads, mha.head_dim

    def heads(y):
        return y.reshape(b, t, h, hd).transpose(0, 2, 1, 3)

    q, k, v = (heads(np_linear(x, lin)) for lin in (mha.W_query, mha.W_key, mha.W_value))
    ctx = np_attention(q, k, v, True).transpose(0, 2, 1, 3).reshape(b, t, h * hd)
    return np_linear(ctx, mha.out_proj)


def randn(rng, shape, dtype=np.float64, requires_grad=False):
    return mg.tensor(rng.standard_normal(shape), dtype=dtype, requires_grad=requires_grad)


# ---------------------------------------------------------------------- the book's figures
def test_simple_self_attention_reproduces_chapter_3_figures():
    scores, weights, context = simple_self_attention(INPUTS)
    assert scores.shape == weights.shape == (6, 6) and context.shape == (6, 3)
    # query 2 is "journey", row index 1
    np.testing.assert_allclose(scores.data[1], [0.9544, 1.4950, 1.4754, 0.8434, 0.7070, 1.0865], atol=5e-5)
    np.testing.assert_allclose(weights.data[1], [0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581], atol=5e-5)
    np.testing.assert_allclose(context.data[1], [0.4419, 0.6515, 0.5683], atol=5e-5)
    # and every row the way the book computes it by hand
    np.testing.assert_allclose(weights.data.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(context.data, np_softmax(INPUTS @ INPUTS.T) @ INPUTS, rtol=1e-5)
    assert context.dtype == np.float32


def test_causal_mask_hides_exactly_the_future():
    m = causal_mask(4)
    assert m.dtype == bool
    assert m.tolist() == [[False, True, True, True], [False, False, True, True],
                          [False, False, False, True], [False, False, False, False]]


# ---------------------------------------------------------------------- forward vs NumPy
@given(t=st.integers(1, 6), d_in=small, d_out=small, seed=seeds)
def test_self_attention_v1_matches_formula(t, d_in, d_out, seed):
    mg.manual_seed(seed)
    att = SelfAttentionV1(d_in, d_out)
    x = np.random.default_rng(seed).standard_normal((t, d_in)).astype(np.float32)
    out = att(mg.tensor(x))
    assert out.shape == (t, d_out) and out.dtype == np.float32
    q, k, v = x @ att.W_query.data, x @ att.W_key.data, x @ att.W_value.data
    np.testing.assert_allclose(out.data, np_attention(q, k, v, causal=False), rtol=1e-4, atol=1e-5)
    # the book draws these matrices with torch.rand: uniform in [0, 1)
    for w in (att.W_query, att.W_key, att.W_value):
        assert w.shape == (d_in, d_out) and w.data.min() >= 0 and w.data.max() < 1


@pytest.mark.parametrize("qkv_bias", [False, True])
@given(t=st.integers(1, 6), d_in=small, d_out=small, seed=seeds)
def test_self_attention_v2_matches_formula(qkv_bias, t, d_in, d_out, seed):
    mg.manual_seed(seed)
    att = SelfAttentionV2(d_in, d_out, qkv_bias=qkv_bias)
    assert (att.W_query.bias is not None) == qkv_bias
    x = np.random.default_rng(seed).standard_normal((t, d_in)).astype(np.float32)
    out = att(mg.tensor(x))
    assert out.shape == (t, d_out)
    expected = np_attention(np_linear(x, att.W_query), np_linear(x, att.W_key), np_linear(x, att.W_value), False)
    np.testing.assert_allclose(out.data, expected, rtol=1e-4, atol=1e-5)


def test_self_attention_v2_weights_transfer_to_v1():
    """Section 3.4.2's exercise: V1 with V2's weights (transposed) computes the same output."""
    mg.manual_seed(789)
    v2 = SelfAttentionV2(3, 2)
    v1 = SelfAttentionV1(3, 2)
    v1.W_query.data[...] = v2.W_query.weight.data.T
    v1.W_key.data[...] = v2.W_key.weight.data.T
    v1.W_value.data[...] = v2.W_value.weight.data.T
    np.testing.assert_allclose(v1(mg.tensor(INPUTS)).data, v2(mg.tensor(INPUTS)).data, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("qkv_bias", [False, True])
@given(b=small, t=st.integers(1, 6), d_in=small, d_out=small, seed=seeds)
def test_causal_attention_matches_formula(qkv_bias, b, t, d_in, d_out, seed):
    mg.manual_seed(seed)
    att = CausalAttention(d_in, d_out, context_length=6, dropout=0.0, qkv_bias=qkv_bias)
    x = np.random.default_rng(seed).standard_normal((b, t, d_in)).astype(np.float32)
    out = att(mg.tensor(x))
    assert out.shape == (b, t, d_out) and out.dtype == np.float32
    np.testing.assert_allclose(out.data, np_causal_head(x, att), rtol=1e-4, atol=1e-5)
    # the first token can only attend to itself: its context is its own value vector
    np.testing.assert_allclose(out.data[:, 0], np_linear(x[:, 0], att.W_value), rtol=1e-5, atol=1e-6)


def test_causal_attention_on_the_book_batch():
    """Section 3.5.3: a batch of two copies of the six inputs gives (2, 6, 2), both rows equal."""
    mg.manual_seed(123)
    att = CausalAttention(3, 2, context_length=6, dropout=0.0)
    batch = mg.tensor(np.stack([INPUTS, INPUTS]))
    out = att(batch)
    assert out.shape == (2, 6, 2)
    np.testing.assert_array_equal(out.data[0], out.data[1])


def test_causal_attention_dropout_acts_on_the_attention_weights():
    mg.manual_seed(0)
    x = mg.tensor(np.random.default_rng(0).standard_normal((2, 4, 3)), dtype=np.float32)
    mha = MultiHeadAttention(3, 4, context_length=4, dropout=1.0, num_heads=2)
    # every attention weight dropped: the context is zero and only out_proj's bias is left
    np.testing.assert_array_equal(mha(x).data, np.broadcast_to(mha.out_proj.bias.data, (2, 4, 4)))
    mha.eval()
    np.testing.assert_allclose(mha(x).data, np_multihead(x.data, mha), rtol=1e-4, atol=1e-5)

    att = CausalAttention(3, 2, context_length=4, dropout=0.5)
    train_out = att(x).data
    att.eval()
    eval_out = att(x).data
    np.testing.assert_allclose(eval_out, np_causal_head(x.data, att), rtol=1e-4, atol=1e-5)
    assert not np.allclose(train_out, eval_out)


@given(b=small, t=st.integers(1, 5), d_in=small, d_out=small, heads=small, seed=seeds)
def test_multi_head_attention_wrapper_stacks_causal_heads(b, t, d_in, d_out, heads, seed):
    mg.manual_seed(seed)
    wrapper = MultiHeadAttentionWrapper(d_in, d_out, context_length=5, dropout=0.0, num_heads=heads)
    x = np.random.default_rng(seed).standard_normal((b, t, d_in)).astype(np.float32)
    out = wrapper(mg.tensor(x))
    assert out.shape == (b, t, d_out * heads)
    expected = np.concatenate([np_causal_head(x, h) for h in wrapper.heads], axis=-1)
    np.testing.assert_allclose(out.data, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("qkv_bias", [False, True])
@given(b=small, t=st.integers(1, 5), d_in=small, head_dim=small, heads=small, seed=seeds)
def test_multi_head_attention_matches_formula(qkv_bias, b, t, d_in, head_dim, heads, seed):
    mg.manual_seed(seed)
    d_out = head_dim * heads
    mha = MultiHeadAttention(d_in, d_out, context_length=5, dropout=0.0, num_heads=heads, qkv_bias=qkv_bias)
    assert mha.out_proj.bias is not None  # out_proj always has a bias
    x = np.random.default_rng(seed).standard_normal((b, t, d_in)).astype(np.float32)
    out = mha(mg.tensor(x))
    assert out.shape == (b, t, d_out) and out.dtype == np.float32
    np.testing.assert_allclose(out.data, np_multihead(x, mha), rtol=1e-4, atol=1e-5)


@given(b=small, t=st.integers(1, 5), d_in=small, head_dim=small, heads=small, seed=seeds)
def test_efficient_multi_head_attention_equals_per_head_computation(b, t, d_in, head_dim, heads, seed):
    """Copy each wrapper head's W_query/W_key/W_value into its rows of the fused projections and make
    out_proj the identity: the efficient MultiHeadAttention then returns the wrapper's output."""
    mg.manual_seed(seed)
    wrapper = MultiHeadAttentionWrapper(d_in, head_dim, context_length=5, dropout=0.0, num_heads=heads,
                                        qkv_bias=True)
    mha = MultiHeadAttention(d_in, head_dim * heads, context_length=5, dropout=0.0, num_heads=heads,
                             qkv_bias=True)
    for name in ("W_query", "W_key", "W_value"):
        getattr(mha, name).weight.data[...] = np.concatenate(
            [getattr(h, name).weight.data for h in wrapper.heads], axis=0)
        getattr(mha, name).bias.data[...] = np.concatenate([getattr(h, name).bias.data for h in wrapper.heads])
    mha.out_proj.weight.data[...] = np.eye(head_dim * heads)
    mha.out_proj.bias.data[...] = 0
    x = mg.tensor(np.random.default_rng(seed).standard_normal((b, t, d_in)), dtype=np.float32)
    np.testing.assert_allclose(mha(x).data, wrapper(x).data, rtol=1e-4, atol=1e-5)


def test_multi_head_attention_rejects_indivisible_width():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        MultiHeadAttention(4, 6, context_length=4, dropout=0.0, num_heads=4)


def test_book_multi_head_shapes():
    """Section 3.6: the wrapper with d_out=2 and 2 heads gives (2, 6, 4); the efficient one (2, 6, 2)."""
    batch = mg.tensor(np.stack([INPUTS, INPUTS]))
    mg.manual_seed(123)
    assert MultiHeadAttentionWrapper(3, 2, 6, 0.0, num_heads=2)(batch).shape == (2, 6, 4)
    assert MultiHeadAttention(3, 2, 6, 0.0, num_heads=2)(batch).shape == (2, 6, 2)


# ---------------------------------------------------------------------- causality
@given(t=st.integers(2, 6), cut=st.integers(0, 4), heads=small, use_rope=st.booleans(), seed=seeds)
def test_multi_head_attention_is_causal(t, cut, heads, use_rope, seed):
    cut = min(cut, t - 2)  # positions 0..cut stay, cut+1.. change
    mg.manual_seed(seed)
    mha = MultiHeadAttention(3, 2 * heads, context_length=6, dropout=0.0, num_heads=heads)
    rope = RotaryEmbedding(2, 6) if use_rope else None
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, t, 3))
    y = x.copy()
    y[:, cut + 1:] = rng.standard_normal(y[:, cut + 1:].shape) * 10
    out_x = mha(mg.tensor(x), rope=rope).data
    out_y = mha(mg.tensor(y), rope=rope).data
    np.testing.assert_array_equal(out_x[:, :cut + 1], out_y[:, :cut + 1])


# ---------------------------------------------------------------------- gradients (float64)
def check(module, x, seed):
    """gradcheck module(x) with respect to x and every parameter (perturbed in place)."""
    module.double()
    params = list(module.parameters())
    assert params and all(p.dtype == np.float64 for p in params)
    assert mg.gradcheck(lambda x_, *ps: module(x_), x, *params, seed=seed, **TOL)
    assert all(p.grad is not None for p in params)


@given(t=st.integers(1, 4), d_in=small, d_out=small, seed=seeds)
def test_self_attention_v1_gradients(t, d_in, d_out, seed):
    mg.manual_seed(seed)
    check(SelfAttentionV1(d_in, d_out), randn(np.random.default_rng(seed), (t, d_in), requires_grad=True), seed)


@given(t=st.integers(1, 4), d_in=small, d_out=small, bias=st.booleans(), seed=seeds)
def test_self_attention_v2_gradients(t, d_in, d_out, bias, seed):
    mg.manual_seed(seed)
    x = randn(np.random.default_rng(seed), (t, d_in), requires_grad=True)
    check(SelfAttentionV2(d_in, d_out, qkv_bias=bias), x, seed)


@given(b=small, t=st.integers(1, 4), d_in=small, d_out=small, bias=st.booleans(), seed=seeds)
def test_causal_attention_gradients(b, t, d_in, d_out, bias, seed):
    mg.manual_seed(seed)
    x = randn(np.random.default_rng(seed), (b, t, d_in), requires_grad=True)
    check(CausalAttention(d_in, d_out, context_length=4, dropout=0.0, qkv_bias=bias), x, seed)


@given(b=st.integers(1, 2), t=st.integers(1, 4), d_in=small, d_out=st.integers(1, 2), heads=st.integers(1, 2),
       seed=seeds)
def test_multi_head_attention_wrapper_gradients(b, t, d_in, d_out, heads, seed):
    mg.manual_seed(seed)
    x = randn(np.random.default_rng(seed), (b, t, d_in), requires_grad=True)
    check(MultiHeadAttentionWrapper(d_in, d_out, context_length=4, dropout=0.0, num_heads=heads), x, seed)


@given(b=st.integers(1, 2), t=st.integers(1, 4), d_in=small, head_dim=st.sampled_from([2, 4]),
       heads=st.integers(1, 2), bias=st.booleans(), use_rope=st.booleans(), seed=seeds)
def test_multi_head_attention_gradients(b, t, d_in, head_dim, heads, bias, use_rope, seed):
    mg.manual_seed(seed)
    mha = MultiHeadAttention(d_in, head_dim * heads, context_length=4, dropout=0.0, num_heads=heads,
                             qkv_bias=bias).double()
    rope = RotaryEmbedding(head_dim, 4) if use_rope else None
    x = randn(np.random.default_rng(seed), (b, t, d_in), requires_grad=True)
    params = list(mha.parameters())
    assert mg.gradcheck(lambda x_, *ps: mha(x_, rope=rope), x, *params, seed=seed, **TOL)


# ---------------------------------------------------------------------- RoPE
@given(h=small, t=st.integers(1, 5), half=small, start=st.integers(0, 3), seed=seeds)
def test_rope_gradient_and_norm(h, t, half, start, seed):
    rope = RotaryEmbedding(2 * half, 8)
    x = randn(np.random.default_rng(seed), (2, h, t, 2 * half), requires_grad=True)
    assert mg.gradcheck(lambda x_: rope(x_, start), x, seed=seed, **TOL)
    out = rope(x, start).data
    # a rotation keeps every (x_i, x_{i + hd/2}) pair's length, so each vector's norm
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x.data, axis=-1), rtol=1e-12)
    if start == 0:  # position 0 is not rotated
        np.testing.assert_array_equal(out[:, :, 0], x.data[:, :, 0])


@given(m=st.integers(0, 6), n=st.integers(0, 6), shift=st.integers(0, 5), half=small, seed=seeds)
def test_rope_scores_depend_only_on_relative_position(m, n, shift, half, seed):
    """q at position m and k at position n score the same as at m + shift and n + shift."""
    rope = RotaryEmbedding(2 * half, 12)
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((1, 1, 1, 2 * half)), rng.standard_normal((1, 1, 1, 2 * half))

    def score(pm, pn):
        return float(np.sum(rope(mg.tensor(q), pm).data * rope(mg.tensor(k), pn).data))

    assert score(m, n) == pytest.approx(score(m + shift, n + shift), rel=1e-9, abs=1e-12)


def test_rope_keeps_float32_extends_past_its_length_and_rejects_bad_sizes():
    rope = RotaryEmbedding(4, 3)
    x = mg.tensor(np.ones((1, 1, 3, 4), dtype=np.float32))
    assert rope(x).dtype == np.float32
    # RoPE has no table that ends: positions past the length it was made for are computed on demand
    np.testing.assert_array_equal(rope(x, start_pos=5).data, RotaryEmbedding(4, 8)(x, start_pos=5).data)
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(3, 4)


# ---------------------------------------------------------------------- KV cache
@pytest.mark.parametrize("use_rope", [False, True])
@given(chunks=st.lists(st.integers(1, 3), min_size=1, max_size=4), seed=seeds)
def test_kv_cache_in_chunks_equals_one_pass(use_rope, chunks, seed):
    """Feeding a sequence chunk by chunk through the cache gives the full causal pass's outputs."""
    total = sum(chunks)
    mg.manual_seed(seed)
    mha = MultiHeadAttention(3, 4, context_length=total, dropout=0.0, num_heads=2).double()
    rope = RotaryEmbedding(2, total) if use_rope else None
    x = np.random.default_rng(seed).standard_normal((2, total, 3))
    full = mha(mg.tensor(x), rope=rope).data
    cache = KVCache(n_layers=1, batch_size=2, n_heads=2, head_dim=2, max_len=total, dtype=np.float64)
    outs, start = [], 0
    with mg.no_grad():
        for n in chunks:
            outs.append(mha(mg.tensor(x[:, start:start + n]), kv_cache=cache, layer=0, rope=rope,
                            start_pos=start).data)
            cache.advance()
            start += n
    assert cache.length == total
    np.testing.assert_allclose(np.concatenate(outs, axis=1), full, rtol=1e-12, atol=1e-12)


def test_kv_cache_overflow_is_a_clear_error():
    cache = KVCache(1, 1, 1, 2, max_len=2)
    k = mg.tensor(np.zeros((1, 1, 2, 2), dtype=np.float32))
    cache.update(0, k, k)
    cache.advance()
    with pytest.raises(ValueError, match="holds 2 positions"):
        cache.update(0, k[:, :, :1], k[:, :, :1])
    cache.reset()
    assert cache.length == 0
