"""The fused ops of today's decoders: rms_norm (with Gemma's offset), silu and swiglu."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.nn import functional as F
from minigrad.testing import assert_gradients_match, shapes, tensors

seeds = st.integers(0, 2**32 - 1)


def rms_norm_reference(x, w=None, eps=1e-6, offset=0.0):
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return y if w is None else y * (offset + w)


@st.composite
def rms_case(draw):
    lead = draw(shapes(max_dims=2, max_side=3))
    d = draw(st.integers(1, 5))
    x = draw(tensors(lead + (d,)))
    w = draw(tensors((d,))) if draw(st.booleans()) else None
    return x, w, draw(st.sampled_from([0.0, 1.0])), draw(st.sampled_from([1e-6, 0.5]))


@given(case=rms_case(), seed=seeds)
def test_rms_norm_gradient(case, seed):
    x, w, offset, eps = case
    inputs = [t for t in (x, w) if t is not None]
    assert_gradients_match(lambda *ts: mg.rms_norm(*ts, eps=eps, offset=offset) if len(ts) == 2
                           else mg.rms_norm(ts[0], eps=eps, offset=offset), *inputs, seed=seed)


@given(case=rms_case())
def test_rms_norm_forward(case):
    x, w, offset, eps = case
    y = F.rms_norm(x, w, eps=eps, offset=offset)
    expected = rms_norm_reference(x.data, None if w is None else w.data, eps, offset)
    np.testing.assert_allclose(y.data, expected, rtol=1e-9, atol=1e-12)


def test_rms_norm_float32_stays_float32_and_offset_is_gemma_one_plus_w():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 8)).astype(np.float32)
    w = rng.normal(size=8).astype(np.float32)
    for grad in (False, True):
        xt, wt = mg.Tensor(x, requires_grad=grad), mg.Tensor(w, requires_grad=grad)
        y = mg.rms_norm(xt, wt, eps=1e-6, offset=1.0)
        assert y.dtype == np.float32
        np.testing.assert_allclose(y.data, rms_norm_reference(x.astype(np.float64), 1.0 + w.astype(np.float64)),
                                   rtol=1e-5, atol=1e-6)
        if grad:
            y.sum().backward()
            assert xt.grad.dtype == np.float32 and wt.grad.dtype == np.float32
    # Gemma's checkpoints store w - 1: w = 0 with offset 1 is the plain normalisation
    zero = mg.Tensor(np.zeros(8, np.float32))
    np.testing.assert_allclose(mg.rms_norm(mg.Tensor(x), zero, offset=1.0).data, mg.rms_norm(mg.Tensor(x)).data)


def silu_reference(x):
    with np.errstate(over="ignore"):     # exp(1000) = inf: then silu(-1000) = -0
        return x / (1.0 + np.exp(-x))


@given(x=tensors(min_value=-6, max_value=6), seed=seeds)
def test_silu_gradient(x, seed):
    assert_gradients_match(mg.silu, x, seed=seed)


@given(x=tensors(min_value=-30, max_value=30))
def test_silu_forward(x):
    np.testing.assert_allclose(F.silu(x).data, silu_reference(x.data), rtol=1e-12, atol=1e-14)


@given(shape=shapes(max_dims=3, max_side=4), data=st.data(), seed=seeds)
def test_swiglu_gradient(shape, data, seed):
    a = data.draw(tensors(shape, min_value=-5, max_value=5))
    b = data.draw(tensors(shape))
    assert_gradients_match(mg.swiglu, a, b, seed=seed)


@given(shape=shapes(max_dims=3, max_side=4), data=st.data())
def test_swiglu_forward(shape, data):
    a, b = data.draw(tensors(shape, min_value=-20, max_value=20)), data.draw(tensors(shape))
    np.testing.assert_allclose(F.swiglu(a, b).data, silu_reference(a.data) * b.data, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("grad", [False, True])
def test_silu_and_swiglu_keep_float32_and_survive_large_inputs(grad):
    a = mg.Tensor(np.array([-1000.0, -90.0, -1.0, 0.0, 2.0, 1000.0], np.float32), requires_grad=grad)
    b = mg.Tensor(np.full(6, 2.0, np.float32), requires_grad=grad)
    with np.errstate(over="raise", invalid="raise", divide="raise"):      # no overflow warning leaks out
        y, z = mg.silu(a), mg.swiglu(a, b)
    assert y.dtype == np.float32 and z.dtype == np.float32
    np.testing.assert_allclose(y.data, silu_reference(a.data.astype(np.float64)), rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(z.data, 2 * y.data, rtol=1e-6)
    if grad:
        (y.sum() + z.sum()).backward()
        assert a.grad.dtype == np.float32 and b.grad.dtype == np.float32 and np.isfinite(a.grad).all()
