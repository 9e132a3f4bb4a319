"""The fused layer ops: layer_norm, embedding and dropout (linear is in test_ops_matmul.py)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.ops.dropout import keep_mask
from minigrad.testing import arrays, assert_gradients_match, shapes, tensors

seeds = st.integers(0, 2**32 - 1)


# ---------------------------------------------------------------- layer_norm
def layer_norm_reference(x, w=None, b=None, eps=1e-5):
    """Normalise the last axis with the biased variance (divide by D) and eps = 1e-5."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    return y if w is None else y * w + (0.0 if b is None else b)


@st.composite
def layer_norm_case(draw):
    lead = draw(shapes(max_dims=2, max_side=3))
    d = draw(st.integers(1, 5))
    x = draw(tensors(lead + (d,)))
    affine = draw(st.sampled_from(["none", "weight", "weight+bias"]))
    w = draw(tensors((d,))) if affine != "none" else None
    b = draw(tensors((d,))) if affine == "weight+bias" else None
    return x, w, b


@given(case=layer_norm_case(), seed=seeds)
def test_layer_norm_gradient(case, seed):
    x, w, b = case
    inputs = [t for t in (x, w, b) if t is not None]
    assert_gradients_match(lambda *ts: mg.layer_norm(*ts), *inputs, seed=seed)


@given(case=layer_norm_case())
def test_layer_norm_forward(case):
    x, w, b = case
    y = mg.layer_norm(x, w, b)
    expected = layer_norm_reference(x.data, None if w is None else w.data, None if b is None else b.data)
    np.testing.assert_allclose(y.data, expected, rtol=1e-9, atol=1e-12)


def test_layer_norm_uses_biased_variance_and_eps():
    x = np.array([[1.0, 2.0, 3.0, 6.0]])
    # mean 3, biased variance (4 + 1 + 0 + 9) / 4 = 3.5
    expected = (x - 3.0) / np.sqrt(3.5 + 1e-5)
    np.testing.assert_allclose(mg.layer_norm(mg.tensor(x)).data, expected, rtol=1e-12)
    # a constant row is dominated by eps: (x - mean) = 0 and nothing blows up
    np.testing.assert_array_equal(mg.layer_norm(mg.tensor(np.full((1, 3), 7.0))).data, np.zeros((1, 3)))
    np.testing.assert_allclose(mg.layer_norm(mg.tensor(x), eps=1.0).data, (x - 3.0) / np.sqrt(4.5), rtol=1e-12)


def test_layer_norm_bias_without_weight_is_rejected():
    with pytest.raises(ValueError, match="bias without a weight"):
        mg.layer_norm(mg.tensor(np.ones((2, 3))), None, mg.tensor(np.zeros(3)))


# ---------------------------------------------------------------- embedding
@st.composite
def embedding_case(draw):
    """A (V, D) weight and ids of any shape with repeated ids."""
    vocab, dim = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    ids_shape = draw(shapes(max_dims=2, max_side=4))
    ids = draw(arrays(ids_shape, dtype=np.int64, elements=st.integers(0, vocab - 1)))
    return draw(tensors((vocab, dim))), ids


@given(case=embedding_case(), seed=seeds)
def test_embedding_gradient(case, seed):
    weight, ids = case
    assert_gradients_match(lambda w: mg.embedding(ids, w), weight, seed=seed)


@given(case=embedding_case(), seed=seeds)
def test_embedding_forward_and_scatter_add(case, seed):
    weight, ids = case
    out = mg.embedding(mg.tensor(ids), weight)
    np.testing.assert_array_equal(out.data, weight.data[ids])
    g = np.random.default_rng(seed).standard_normal(out.shape)
    w = mg.tensor(weight.data, requires_grad=True)
    mg.embedding(ids, w).backward(g)
    expected = np.zeros(weight.shape)
    np.add.at(expected, ids.reshape(-1), g.reshape(-1, weight.shape[1]))  # repeated ids add up
    np.testing.assert_allclose(w.grad, expected, rtol=1e-12, atol=1e-15)


def test_embedding_repeated_ids_example():
    w = mg.tensor(np.arange(8.0).reshape(4, 2), requires_grad=True)
    mg.embedding(np.array([[3, 1, 3], [3, 0, 1]]), w).sum().backward()
    np.testing.assert_array_equal(w.grad, [[1, 1], [2, 2], [0, 0], [3, 3]])


def test_embedding_rejects_bad_ids():
    w = mg.tensor(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="out of range"):
        mg.embedding(np.array([0, 4]), w)
    with pytest.raises(TypeError, match="integers"):
        mg.embedding(np.array([0.0, 1.0]), w)


# ---------------------------------------------------------------- dropout
@given(x=tensors(shapes(max_dims=3, max_side=4)), p=st.floats(0.05, 0.9), rng_seed=seeds, seed=seeds)
def test_dropout_gradient_with_a_fixed_generator(x, p, rng_seed, seed):
    """With a freshly seeded generator per call dropout is a fixed linear map: gradcheck applies."""
    assert_gradients_match(lambda t: mg.dropout(t, p, rng=np.random.default_rng(rng_seed)), x, seed=seed)


@given(x=arrays(shapes(max_dims=3, max_side=4)), p=st.floats(0.05, 0.9), rng_seed=seeds, seed=seeds)
def test_dropout_forward_and_gradient_are_mask_times_scale(x, p, rng_seed, seed):
    t = mg.tensor(x, requires_grad=True)
    y = mg.dropout(t, p, rng=np.random.default_rng(rng_seed))
    kept = y.data != 0
    kept |= x == 0  # a zero input is zero either way
    np.testing.assert_allclose(y.data, np.where(kept, x / (1 - p), 0.0), rtol=1e-12)
    g = np.random.default_rng(seed).standard_normal(x.shape)
    y.backward(g)
    mask = keep_mask(np.random.default_rng(rng_seed), x.shape, p)   # the mask the forward pass drew
    np.testing.assert_array_equal(mask[x != 0], kept[x != 0])
    np.testing.assert_allclose(t.grad, g * mask / (1 - p), rtol=1e-12)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_mask_is_bernoulli_one_minus_p(p):
    """keep_mask's fraction of True is 1 - p within 5 standard deviations, for odd and even sizes;
    the same generator state gives the same mask."""
    for shape in ((1001,), (300, 301), (2, 3, 4, 5)):
        mask = keep_mask(np.random.default_rng(3), shape, p)
        assert mask.shape == shape and mask.dtype == bool
        n = mask.size
        assert abs(mask.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n) + 1e-12
        np.testing.assert_array_equal(mask, keep_mask(np.random.default_rng(3), shape, p))
    for bit_generator in (np.random.MT19937, np.random.Philox, np.random.SFC64):   # not only PCG64
        mask = keep_mask(np.random.Generator(bit_generator(5)), (20_000,), p)
        assert abs(mask.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / mask.size)
    assert keep_mask(np.random.default_rng(0), (10_000,), 1e-12).all()          # p ~ 0 keeps everything
    assert not keep_mask(np.random.default_rng(0), (10_000,), 1 - 1e-12).any()  # p ~ 1 keeps nothing


def test_dropout_is_identity_in_eval_and_for_p_zero():
    x = mg.tensor(np.arange(6.0), requires_grad=True)
    assert mg.dropout(x, 0.5, training=False) is x
    assert mg.dropout(x, 0.0) is x
    np.testing.assert_array_equal(mg.dropout(x, 1.0).data, np.zeros(6))


def test_dropout_inverted_scaling_keeps_the_mean():
    x = mg.tensor(np.ones(200_000, dtype=np.float32))
    for p in (0.1, 0.5, 0.8):
        y = mg.dropout(x, p, rng=np.random.default_rng(1))
        kept = y.data != 0
        np.testing.assert_allclose(y.data[kept], 1 / (1 - p), rtol=1e-6)
        # the mean of Bernoulli(1-p)/(1-p) over n draws has std sqrt(p / ((1-p) n)): allow 5 of them
        assert abs(y.data.mean() - 1.0) < 5 * np.sqrt(p / ((1 - p) * x.size))
        assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / x.size)


def test_dropout_same_seed_same_mask():
    x = mg.tensor(np.ones((4, 8)))
    a = mg.dropout(x, 0.5, rng=np.random.default_rng(7)).data
    b = mg.dropout(x, 0.5, rng=np.random.default_rng(7)).data
    c = mg.dropout(x, 0.5, rng=np.random.default_rng(8)).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    mg.manual_seed(3)
    d = mg.dropout(x, 0.5).data
    mg.manual_seed(3)
    np.testing.assert_array_equal(mg.dropout(x, 0.5).data, d)


def test_dropout_rejects_bad_probability():
    with pytest.raises(ValueError, match="probability"):
        mg.dropout(mg.tensor(np.ones(3)), 1.5)


# ---------------------------------------------------------------- without a graph
# These ops take a shorter path when no graph is recorded (no saved arrays, buffers reused as the
# output). Both paths must give bit-identical values.
NO_GRAPH_CASES = {
    "gelu": lambda x, w, b: mg.gelu(x),
    "layer_norm": lambda x, w, b: mg.layer_norm(x),
    "layer_norm affine": lambda x, w, b: mg.layer_norm(x, w, b),
}


@pytest.mark.parametrize("name", sorted(NO_GRAPH_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_without_a_graph_is_identical(name, dtype):
    rng = np.random.default_rng(0)
    x, w, b = (mg.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in ((2, 3, 7, 7), 7, 7))
    with mg.no_grad():
        y0 = NO_GRAPH_CASES[name](x, w, b)
    y1 = NO_GRAPH_CASES[name](x, w, b)
    assert y1.grad_fn is not None and y0.grad_fn is None
    assert y0.dtype == y1.dtype == dtype
    np.testing.assert_array_equal(y0.data, y1.data)
