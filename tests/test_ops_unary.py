"""Element-wise ops (exp, log, sqrt, tanh, sigmoid, relu, gelu, abs, astype): gradients against
central differences and forward values against direct NumPy formulas."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.testing import arrays, assert_gradients_match, shapes, tensors

SMALL = shapes(max_dims=3, max_side=4)
seeds = st.integers(0, 2**32 - 1)

# op -> (minigrad function, value options keeping away from kinks and singularities)
UNARY = {
    "exp": (mg.exp, {}),
    "log": (mg.log, dict(min_value=0.1, max_value=5.0)),
    "sqrt": (mg.sqrt, dict(min_value=0.1, max_value=5.0)),
    "tanh": (mg.tanh, {}),
    "sigmoid": (mg.sigmoid, dict(min_value=-8.0, max_value=8.0)),
    "relu": (mg.relu, dict(away_from=(0,))),
    "gelu": (mg.gelu, dict(min_value=-5.0, max_value=5.0)),
    "abs": (mg.abs, dict(away_from=(0,))),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data(), seed=seeds)
def test_unary_gradient(name, data, seed):
    fn, options = UNARY[name]
    x = data.draw(tensors(SMALL, **options), label="x")
    assert_gradients_match(fn, x, seed=seed)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_tensor_methods_are_the_ops(name):
    x = mg.tensor(np.array([-1.5, -0.5, 0.5, 1.5, 2.5]))   # negatives tell relu, abs and the identity apart
    with np.errstate(invalid="ignore"):                      # (log and sqrt of a negative: NaN on both sides)
        np.testing.assert_array_equal(getattr(x, name)().data, UNARY[name][0](x).data)


# ---------------------------------------------------------------- forward against NumPy formulas
def gelu_reference(x):
    """GPT-2's tanh approximation, written out with its constants."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


@given(x=arrays(SMALL, min_value=-10, max_value=10))
def test_forward_formulas(x):
    t = mg.tensor(x)
    np.testing.assert_allclose(mg.exp(t).data, np.exp(x), rtol=1e-14)
    np.testing.assert_allclose(mg.tanh(t).data, np.tanh(x), rtol=1e-14)
    np.testing.assert_allclose(mg.sigmoid(t).data, 1.0 / (1.0 + np.exp(-x)), rtol=1e-13, atol=1e-300)
    np.testing.assert_array_equal(mg.relu(t).data, np.where(x > 0, x, 0.0))
    np.testing.assert_array_equal(mg.abs(t).data, np.abs(x))
    np.testing.assert_allclose(mg.gelu(t).data, gelu_reference(x), rtol=1e-12, atol=1e-15)


@given(x=arrays(SMALL, min_value=1e-3, max_value=100.0))
def test_log_and_sqrt_forward(x):
    t = mg.tensor(x)
    np.testing.assert_allclose(mg.log(t).data, np.log(x), rtol=1e-14)
    np.testing.assert_allclose(mg.sqrt(t).data, np.sqrt(x), rtol=1e-14)


def test_gelu_known_values():
    """Values of the tanh approximation computed by hand with math (a wrong constant fails here)."""
    for v in (-3.0, -1.0, -0.1, 0.0, 0.5, 1.0, 2.0):
        expected = 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))
        assert mg.gelu(mg.tensor(np.array(v))).item() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # the exact erf-GELU differs from the approximation: 1.0 -> 0.8413447 vs 0.8411920
    assert mg.gelu(mg.tensor(np.array(1.0))).item() == pytest.approx(0.8411919906, abs=1e-9)


def test_gelu_float32_is_accurate_everywhere():
    """minigrad computes x * sigmoid(2u); in float32 it stays within a few ulps of the float64 tanh
    formula (whose own cancellation in 1 + tanh(u) for x << 0 the atol allows for)."""
    x = np.linspace(-12, 12, 4801)
    y32 = mg.gelu(mg.tensor(x.astype(np.float32))).data
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, gelu_reference(x.astype(np.float32).astype(np.float64)), rtol=3e-6, atol=1e-7)


def test_gelu_saturates_without_warnings_or_nans():
    import warnings

    x = mg.tensor(np.array([-1e4, -100.0, -20.0, 20.0, 100.0, 1e4], dtype=np.float32), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # an overflow in exp would raise here
        y = mg.gelu(x)
        y.backward(np.ones(6, dtype=np.float32))
    np.testing.assert_array_equal(y.data, [0, 0, 0, 20, 100, 1e4])   # -0.0 == 0
    np.testing.assert_array_equal(x.grad, [0, 0, 0, 1, 1, 1])


def test_sigmoid_is_stable_for_large_inputs():
    x = mg.tensor(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0]))
    y = mg.sigmoid(x).data
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, [0.0, 1.9287498479639178e-22, 0.5, 1.0, 1.0], rtol=1e-12)


@given(x=arrays(SMALL, min_value=-8, max_value=8, away_from=(0,)), seed=seeds)
def test_relu_and_abs_gradient_formulas(x, seed):
    """relu' = [x > 0] and abs' = sign(x), times the upstream gradient."""
    g = np.random.default_rng(seed).standard_normal(x.shape)
    for fn, expected in ((mg.relu, g * (x > 0)), (mg.abs, g * np.sign(x))):
        t = mg.tensor(x, requires_grad=True)
        fn(t).backward(g)
        np.testing.assert_array_equal(t.grad, expected)


# ---------------------------------------------------------------- astype
@given(x=arrays(SMALL, dtype=np.float32), seed=seeds)
def test_astype_forward_and_gradient_dtype(x, seed):
    """astype changes the output dtype; the gradient comes back in the input's dtype."""
    g = np.random.default_rng(seed).standard_normal(x.shape)
    t = mg.tensor(x, requires_grad=True)
    arriving = []
    t.register_hook(lambda grad: arriving.append(grad.dtype))   # as AsType.backward made it
    y = t.astype(np.float64)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y.data, x.astype(np.float64))
    y.backward(g)
    assert arriving == [np.float32] and t.grad.dtype == np.float32
    np.testing.assert_array_equal(t.grad, g.astype(np.float32))
    assert t.double().dtype == np.float64 and t.double().float().dtype == np.float32


@given(x=tensors(SMALL), seed=seeds)
def test_astype_gradient(x, seed):
    # float64 -> float32 -> float64 is the identity up to float32 rounding: a large step keeps that
    # rounding (1e-7 relative) small next to the difference quotient.
    assert_gradients_match(lambda t: (t.astype(np.float32) * 2.0).astype(np.float64), x,
                           eps=1e-2, atol=1e-3, rtol=1e-4, seed=seed)
