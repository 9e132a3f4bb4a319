"""erf (Cody's rational approximations in NumPy) and the exact, erf-based GELU: values against
``math.erf`` over a dense grid, gradients against central differences, dtypes kept."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.ops.erf import erf_array
from minigrad.testing import arrays, assert_gradients_match, shapes, tensors

SMALL = shapes(max_dims=3, max_side=4)
seeds = st.integers(0, 2**32 - 1)
math_erf = np.vectorize(math.erf, otypes=[np.float64])


def test_erf_float64_is_within_a_few_ulps_of_math_erf_on_a_dense_grid():
    # every branch (|x| <= 0.46875, up to 4, beyond) and the joins between them, both signs, and tiny values
    x = np.concatenate([np.linspace(-8, 8, 400_001), np.linspace(0.4687, 0.4688, 1001), np.linspace(3.9999, 4.0001, 1001),
                        np.geomspace(1e-300, 1, 2001), -np.geomspace(1e-300, 1, 2001), [6.0, 10.0, 27.0, 30.0]])
    got, want = erf_array(x), math_erf(x)
    assert got.dtype == np.float64
    # about two ulps of the value, or of 1 where erf = 1 - erfc rounds at 1's scale (float64 eps: 2.2e-16);
    # Abramowitz-Stegun's 7.1.26, a popular shortcut, is 1e-7 off
    np.testing.assert_allclose(got, want, rtol=5e-16, atol=3e-16)


def test_erf_float32_stays_float32_and_within_a_few_float32_ulps():
    x = np.linspace(-8, 8, 200_001).astype(np.float32)
    got = erf_array(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, math_erf(x.astype(np.float64)), rtol=3e-7, atol=2e-7)   # float32 eps: 1.2e-7


def test_erf_special_values_and_shapes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = erf_array(np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 0.5, 50.0]))
    np.testing.assert_array_equal(got[[0, 1, 3, 6]], [1.0, -1.0, 0.0, 1.0])
    assert np.isnan(got[2]) and np.signbit(got[4]) and got[5] == pytest.approx(math.erf(0.5), rel=1e-15)
    assert erf_array(np.float32(0.3)).shape == () and erf_array(np.float32(0.3)).dtype == np.float32
    assert erf_array(np.zeros((2, 0, 3))).shape == (2, 0, 3)
    assert erf_array(np.arange(3)).dtype == np.float64          # integers are computed in float64


def gelu_erf_reference(x):
    """x (1 + erf(x / sqrt 2)) / 2 with math.erf, element by element."""
    return x * 0.5 * (1.0 + math_erf(x / math.sqrt(2.0)))


@given(x=arrays(SMALL, min_value=-10, max_value=10))
def test_gelu_erf_forward_is_the_erf_formula(x):
    np.testing.assert_allclose(mg.gelu_erf(mg.tensor(x)).data, gelu_erf_reference(x), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(mg.erf(mg.tensor(x)).data, math_erf(x), rtol=1e-15, atol=1e-300)


def test_gelu_erf_float32_is_accurate_everywhere_and_differs_from_the_tanh_form():
    x = np.linspace(-12, 12, 150_001).astype(np.float32)     # more than one chunk of 65,536, and a partial one
    y = mg.gelu_erf(mg.tensor(x.reshape(-1, 1))).data.reshape(-1)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, gelu_erf_reference(x.astype(np.float64)), rtol=1e-6, atol=1e-7)
    # the exact GELU of 1 is Phi(1) = 0.8413447; the tanh approximation gives 0.8411920
    assert mg.gelu_erf(mg.tensor(np.array(1.0))).item() == pytest.approx(0.8413447460685429, rel=1e-15)
    assert mg.gelu(mg.tensor(np.array(1.0))).item() == pytest.approx(0.8411919906, abs=1e-9)


def test_gelu_erf_float32_is_accurate_in_relative_terms_for_negative_inputs():
    """float32 computes Phi(-|x|) as exp(-y^2) R(y) / 2 (no 1 + erf cancellation), so even tiny values of
    gelu(x) for x << 0 keep their leading digits (float64's 1 + erf form only has them to ~1e-16 absolute)."""
    x = np.linspace(-5.5, 0, 20_001)[:-1].astype(np.float32)
    want = x * 0.5 * np.vectorize(math.erfc)(-x.astype(np.float64) / math.sqrt(2))
    np.testing.assert_allclose(mg.gelu_erf(mg.tensor(x)).data, want, rtol=3e-6, atol=0)


@given(data=st.data(), seed=seeds)
def test_gelu_erf_gradient(data, seed):
    x = data.draw(tensors(SMALL, min_value=-6.0, max_value=6.0), label="x")
    assert_gradients_match(mg.gelu_erf, x, seed=seed)


@given(data=st.data(), seed=seeds)
def test_erf_gradient(data, seed):
    x = data.draw(tensors(SMALL, min_value=-4.0, max_value=4.0), label="x")
    assert_gradients_match(mg.erf, x, seed=seed)


def test_gelu_erf_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.linspace(-9, 9, 10_001)
    t = torch.tensor(x, requires_grad=True)
    torch.nn.functional.gelu(t, approximate="none").sum().backward()
    ours = mg.tensor(x, requires_grad=True)
    out = mg.gelu_erf(ours)
    out.sum().backward()
    # both compute x (1 + erf(x / sqrt 2)) / 2; the sum 1 + erf cancels for x << 0 in both (atol)
    np.testing.assert_allclose(out.data, torch.nn.functional.gelu(torch.tensor(x)).numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(ours.grad, t.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_gelu_erf_saturates_without_warnings_or_nans():
    x = mg.tensor(np.array([-1e4, -100.0, -20.0, 20.0, 100.0, 1e4], dtype=np.float32), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = mg.gelu_erf(x)
        y.backward(np.ones(6, dtype=np.float32))
    np.testing.assert_array_equal(y.data, [0, 0, 0, 20, 100, 1e4])
    np.testing.assert_array_equal(x.grad, [0, 0, 0, 1, 1, 1])
