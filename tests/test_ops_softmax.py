"""softmax and log_softmax along any axis: gradients, the direct formula, and numerical stability
for logits of +-1e4 and for rows containing -inf (a causal mask)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.testing import arrays, assert_gradients_match, shapes, tensors

seeds = st.integers(0, 2**32 - 1)
small = shapes(min_dims=1, max_dims=3, max_side=4)


def softmax_reference(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@given(x=tensors(small), data=st.data(), seed=seeds)
def test_gradient_any_axis(op, x, data, seed):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    assert_gradients_match(lambda t: getattr(mg, op)(t, axis), x, seed=seed)


@given(x=arrays(small, min_value=-20, max_value=20), data=st.data())
def test_forward_formula(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    t = mg.tensor(x)
    y = mg.softmax(t, axis).data
    np.testing.assert_allclose(y, np.exp(x) / np.sum(np.exp(x), axis=axis, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(np.sum(y, axis=axis), 1.0, rtol=1e-12)
    np.testing.assert_allclose(mg.log_softmax(t, axis).data,
                               x - np.log(np.sum(np.exp(x), axis=axis, keepdims=True)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(t.softmax(dim=axis).data, y, rtol=1e-15)
    np.testing.assert_allclose(t.log_softmax(axis).data, np.log(y), rtol=1e-10, atol=1e-12)


@given(x=arrays(shapes(min_dims=1, max_dims=2, max_side=5), min_value=-1e4, max_value=1e4),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_stable_for_huge_logits(x, dtype):
    """exp(1e4) overflows; subtracting the row maximum first keeps everything finite."""
    x = x.astype(dtype)
    y = mg.softmax(mg.tensor(x)).data
    log_y = mg.log_softmax(mg.tensor(x)).data
    assert y.dtype == dtype and log_y.dtype == dtype
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(log_y))
    x64 = x.astype(np.float64)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(y, softmax_reference(x64, -1), **tol)
    shifted = x64 - x64.max(axis=-1, keepdims=True)
    np.testing.assert_allclose(log_y, shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True)),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-2 if dtype == np.float32 else 1e-9)


def test_huge_logits_example():
    x = mg.tensor(np.array([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4]]), requires_grad=True)
    np.testing.assert_allclose(mg.softmax(x).data, [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(mg.log_softmax(x).data, [[0.0, -2e4, -1e4], [-np.log(2), -np.log(2), -2e4 - np.log(2)]])
    mg.log_softmax(x).sum().backward()
    assert np.all(np.isfinite(x.grad))


@given(x=arrays((3, 5), min_value=-5, max_value=5), mask=arrays((3, 5), dtype=bool, elements=st.booleans()),
       seed=seeds)
def test_rows_with_minus_infinity(x, mask, seed):
    """-inf logits (masked positions) get probability exactly 0, never NaN, and no gradient;
    the other positions get the softmax of the unmasked logits alone."""
    mask[:, 0] = False  # every row keeps at least one position
    logits = np.where(mask, -np.inf, x)
    t = mg.tensor(x, requires_grad=True)
    y = mg.softmax(t.masked_fill(mask, -np.inf))
    assert not np.isnan(y.data).any()
    assert np.all(y.data[mask] == 0.0)
    e = np.where(mask, 0.0, np.exp(x - x.max(axis=1, keepdims=True)))
    np.testing.assert_allclose(y.data, e / e.sum(axis=1, keepdims=True), rtol=1e-12)

    log_y = mg.log_softmax(mg.tensor(logits)).data
    assert not np.isnan(log_y).any()
    assert np.all(np.isneginf(log_y[mask])) and np.all(np.isfinite(log_y[~mask]))
    np.testing.assert_allclose(log_y[~mask], np.log(y.data[~mask]), rtol=1e-10, atol=1e-12)

    g = np.random.default_rng(seed).standard_normal((3, 5))
    y.backward(g)
    assert np.all(np.isfinite(t.grad)) and np.all(t.grad[mask] == 0.0)
    # unmasked positions: the gradient of softmax over the unmasked logits only
    p = y.data
    np.testing.assert_allclose(t.grad, p * (g - np.sum(g * p, axis=1, keepdims=True)), rtol=1e-10, atol=1e-12)


def test_log_softmax_gradient_is_finite_with_minus_infinity():
    t = mg.tensor(np.array([[0.5, -1.0, 2.0]]), requires_grad=True)
    out = mg.log_softmax(t.masked_fill(np.array([[False, True, False]]), -np.inf))
    out[:, [0, 2]].sum().backward()
    assert np.all(np.isfinite(t.grad)) and t.grad[0, 1] == 0.0


@given(x=tensors(shapes(min_dims=2, max_dims=4, max_side=4)), data=st.data(), seed=seeds)
def test_masked_softmax_gradient(x, data, seed):
    rows, cols = x.shape[-2:]
    mask = data.draw(arrays((rows, cols), dtype=bool, elements=st.booleans()), label="mask")
    mask[:, 0] = False  # every row keeps a position
    scale = data.draw(st.floats(0.1, 2.0), label="scale")
    assert_gradients_match(lambda t: mg.masked_softmax(t, mask, scale), x, seed=seed)


@given(x=arrays(shapes(min_dims=2, max_dims=4, max_side=5), min_value=-30, max_value=30), data=st.data())
def test_masked_softmax_equals_mask_scale_softmax(x, data):
    """The fused op is exactly softmax(masked_fill(x * scale, mask, -inf)) of the last axis,
    with masked positions exactly 0 (a causal mask in attention)."""
    rows, cols = x.shape[-2:]
    mask = np.triu(np.ones((rows, cols), dtype=bool), k=data.draw(st.integers(1, max(1, cols)), label="k"))
    scale = data.draw(st.floats(0.05, 3.0), label="scale")
    got = mg.masked_softmax(mg.tensor(x), mask, scale).data
    expected = softmax_reference(np.where(mask, -np.inf, x * scale), -1)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert np.all(got[..., mask] == 0.0)


# ---------------------------------------------------------------------- masked softmax with a bias
@given(x=tensors(shapes(min_dims=3, max_dims=4, max_side=4)), data=st.data(), seed=seeds)
def test_masked_softmax_bias_gradient(x, data, seed):
    """d/dbias = the softmax backward summed over the axes the bias was broadcast along (a position
    bias (H, T, T_keys) shared by the batch; or one row per query); d/dx keeps the scale."""
    rows, cols = x.shape[-2:]
    mask = data.draw(arrays((rows, cols), dtype=bool, elements=st.booleans()), label="mask")
    mask[:, 0] = False
    scale = data.draw(st.floats(0.1, 2.0), label="scale")
    bias_shape = data.draw(st.sampled_from([x.shape[1:], (rows, cols), (rows, 1), x.shape]), label="bias shape")
    bias = data.draw(tensors(bias_shape, min_value=-3, max_value=3), label="bias")
    assert_gradients_match(lambda t, b: mg.masked_softmax(t, mask, scale, bias=b), x, bias, seed=seed)


@given(x=arrays(shapes(min_dims=3, max_dims=4, max_side=5), min_value=-30, max_value=30), data=st.data())
def test_masked_softmax_with_bias_equals_the_formula(x, data):
    """softmax(masked_fill(x * scale + bias, mask, -inf)); a bias given as a plain array (ALiBi's,
    fixed) gets no gradient and float32 stays float32."""
    rows, cols = x.shape[-2:]
    mask = np.triu(np.ones((rows, cols), dtype=bool), k=1)
    scale = data.draw(st.floats(0.05, 3.0), label="scale")
    bias = data.draw(arrays(x.shape[1:], min_value=-5, max_value=5), label="bias")
    got = mg.masked_softmax(mg.tensor(x), mask, scale, bias=bias).data
    expected = softmax_reference(np.where(mask, -np.inf, x * scale + bias), -1)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    t = mg.tensor(x.astype(np.float32), requires_grad=True)
    fixed = mg.tensor(bias.astype(np.float32))                  # requires_grad False: no gradient for it
    y = mg.masked_softmax(t, mask, scale, bias=fixed)
    y.backward(np.ones_like(y.data))
    assert y.dtype == np.float32 and t.grad.dtype == np.float32 and fixed.grad is None
