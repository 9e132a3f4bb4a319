"""add, sub, mul, div, neg, pow: gradients against central differences over broadcast pairs, and
forward values against NumPy."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.testing import assert_gradients_match, broadcastable_shapes, tensors

SMALL = dict(max_dims=3, max_side=3)
seeds = st.integers(0, 2**32 - 1)


@st.composite
def broadcast_pair(draw, a_options=None, b_options=None):
    """Two float64 tensors whose shapes broadcast (size-1 axes, different ranks)."""
    sa, sb = draw(broadcastable_shapes(n=2, **SMALL))
    return draw(tensors(sa, **(a_options or {}))), draw(tensors(sb, **(b_options or {})))


BINARY = {
    "add": (mg.add, np.add),
    "sub": (mg.sub, np.subtract),
    "mul": (mg.mul, np.multiply),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(pair=broadcast_pair(), seed=seeds)
def test_binary_gradient(name, pair, seed):
    assert_gradients_match(BINARY[name][0], *pair, seed=seed)


@given(pair=broadcast_pair(b_options=dict(away_from=(0,), margin=0.3)), seed=seeds)
def test_div_gradient(pair, seed):
    assert_gradients_match(mg.div, *pair, seed=seed)


@given(x=tensors(), seed=seeds)
def test_neg_gradient(x, seed):
    assert_gradients_match(mg.neg, x, seed=seed)


@pytest.mark.parametrize("name", sorted(BINARY))
@given(pair=broadcast_pair())
def test_binary_forward(name, pair):
    a, b = pair
    np.testing.assert_array_equal(BINARY[name][0](a, b).data, BINARY[name][1](a.data, b.data))


@given(pair=broadcast_pair(b_options=dict(away_from=(0,))))
def test_div_and_neg_forward(pair):
    a, b = pair
    np.testing.assert_array_equal(mg.div(a, b).data, a.data / b.data)
    np.testing.assert_array_equal((a / b).data, a.data / b.data)
    np.testing.assert_array_equal((-a).data, -a.data)


@given(pair=broadcast_pair(b_options=dict(away_from=(0,))))
def test_operators_match_functions(pair):
    """The Python operators (including the reflected ones with a plain array on the left) are the ops."""
    a, b = pair
    c = b.data
    np.testing.assert_array_equal((a + b).data, a.data + c)
    np.testing.assert_array_equal((c + a).data, c + a.data)
    np.testing.assert_array_equal((a - b).data, a.data - c)
    np.testing.assert_array_equal((c - a).data, c - a.data)
    np.testing.assert_array_equal((a * b).data, a.data * c)
    np.testing.assert_array_equal((c * a).data, c * a.data)
    np.testing.assert_array_equal((c / (a * a + 1)).data, c / (a.data * a.data + 1))
    np.testing.assert_array_equal((2.0 - a).data, 2.0 - a.data)


@given(x=tensors(), seed=seeds)
def test_python_number_operands_are_constants(x, seed):
    """A number on either side is a constant: only the tensor gets a gradient."""
    assert_gradients_match(lambda t: 3.0 * t - t / 4.0 + 2.0 - (1.5 - t), x, seed=seed)


# pow: integer exponents work for any base (away from 0 when negative); fractional exponents
# need a positive base.
@given(x=tensors(away_from=(0,), margin=0.25), p=st.integers(-3, 4), seed=seeds)
def test_pow_integer_exponent_gradient(x, p, seed):
    assert_gradients_match(lambda t: t ** p, x, seed=seed)


@given(x=tensors(min_value=0.2, max_value=3.0),
       p=st.floats(-2.5, 3.5, allow_nan=False).filter(lambda v: v != 0), seed=seeds)
def test_pow_real_exponent_gradient(x, p, seed):
    assert_gradients_match(lambda t: mg.pow(t, p), x, seed=seed)


@given(x=tensors(min_value=0.2, max_value=3.0), p=st.floats(-2.5, 3.5, allow_nan=False))
def test_pow_forward(x, p):
    np.testing.assert_allclose((x ** p).data, x.data ** p, rtol=1e-12)
    np.testing.assert_allclose((x ** np.float64(p)).data, x.data ** p, rtol=1e-12)


def test_pow_rejects_tensor_exponent():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="scalar"):
        x ** mg.tensor([2.0, 3.0])


def test_pow_zero_has_zero_gradient_even_at_zero():
    x = mg.tensor(np.array([0.0, -1.5, 2.0]), requires_grad=True)
    (x ** 0).sum().backward()
    assert np.all(x.grad == 0.0)
