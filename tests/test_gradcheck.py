"""minigrad.gradcheck and the property-testing helpers of minigrad.testing: the checkers must
pass correct gradients, catch wrong ones with a useful message, and generate what they promise."""
import re

import numpy as np
import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad.testing import arrays, assert_gradients_match, broadcastable_shapes, shapes, tensors


class HalfSquare(mg.Function):
    """y = x^2 with a deliberately wrong backward (x instead of 2x)."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad * x


class SwappedMul(mg.Function):
    """a * b whose backward swaps the two gradients (right for a == b, wrong otherwise)."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, grad):
        a, b = self.saved_tensors
        return grad * a, grad * b


# ---------------------------------------------------------------- gradcheck
def test_gradcheck_passes_a_correct_gradient():
    x = mg.tensor(np.array([[0.5, -1.0], [2.0, 0.1]]), requires_grad=True)
    assert mg.gradcheck(lambda t: mg.tanh(t) * t, x) is True


def test_gradcheck_reports_the_worst_element_both_values_and_the_op():
    x = mg.tensor(np.array([[1.0, 2.0, 3.0], [-4.0, 0.5, 1.0]]), requires_grad=True)
    upstream = np.ones((2, 3))
    with pytest.raises(mg.GradcheckError) as info:
        mg.gradcheck(HalfSquare.apply, x, upstream=upstream)
    message = str(info.value)
    # the error |x - 2x| = |x| is largest at (1, 0): analytic -4, numeric -8
    assert "(output made by HalfSquare)" in message
    assert "gradient of input 0 (shape (2, 3)) is wrong at index (1, 0)" in message
    values = re.search(r"analytic (\S+), numeric (\S+) \(atol=1e-05, rtol=0.001\)", message)
    assert float(values.group(1)) == -4.0 and float(values.group(2)) == pytest.approx(-8.0, rel=1e-8)
    assert isinstance(info.value, AssertionError)  # pytest shows it as a failed assertion


def test_gradcheck_names_the_input_with_the_wrong_gradient():
    a = mg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = mg.tensor(np.array([3.0, 5.0]), requires_grad=True)
    with pytest.raises(mg.GradcheckError, match="gradient of input 0"):
        mg.gradcheck(SwappedMul.apply, a, b)
    with pytest.raises(mg.GradcheckError, match="gradient of input 1"):
        mg.gradcheck(SwappedMul.apply, mg.tensor(np.array([1.0, 2.0])), b)  # only b is checked


def test_gradcheck_fails_when_the_numerical_estimate_is_nan():
    """log just above 0: log(x - eps) is NaN, so finite differences say nothing; never a pass."""
    x = mg.tensor(np.array([5e-7, 1.0]), requires_grad=True)
    with np.errstate(invalid="ignore"), pytest.raises(mg.GradcheckError, match="numeric nan"):
        mg.gradcheck(mg.log, x)


def test_gradcheck_fails_on_a_non_finite_analytic_gradient():
    class InfGrad(mg.Function):
        def forward(self, x):
            return x * 1.0

        def backward(self, grad):
            return grad * np.inf

    with np.errstate(invalid="ignore"), pytest.raises(mg.GradcheckError, match="analytic inf"):
        mg.gradcheck(InfGrad.apply, mg.tensor(np.array([1.0, 2.0]), requires_grad=True))


def test_gradcheck_uses_float64_and_leaves_the_inputs_alone():
    data = np.array([0.3, -0.7, 1.1], dtype=np.float32)
    x = mg.tensor(data, requires_grad=True)
    seen = []

    def fn(t):
        seen.append(t.dtype)
        return mg.sigmoid(t) * t

    assert mg.gradcheck(fn, x)
    assert set(seen) == {np.dtype(np.float64)}
    np.testing.assert_array_equal(x.data, data)
    assert x.dtype == np.float32 and x.grad is None


def test_gradcheck_input_errors():
    with pytest.raises(ValueError, match="none of the inputs"):
        mg.gradcheck(mg.exp, mg.tensor(np.ones(2)))
    with pytest.raises(TypeError, match="must return a Tensor"):
        mg.gradcheck(lambda t: t.data.sum(), mg.tensor(np.ones(2), requires_grad=True))


def test_gradcheck_passes_non_tensor_arguments_through():
    x = mg.tensor(np.array([[0.2, 0.5, -1.0]]), requires_grad=True)
    assert mg.gradcheck(lambda t, targets, k: mg.cross_entropy(t * k, targets), x, np.array([2]), 3.0)


def test_the_upstream_gradient_depends_on_the_seed():
    """A wrong gradient that sums to the right total is only caught by a non-uniform upstream."""
    class Shuffled(mg.Function):  # y = 2x, backward sends each element's gradient to its neighbour
        def forward(self, x):
            return 2.0 * x

        def backward(self, grad):
            return 2.0 * np.roll(grad, 1)

    x = mg.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    assert mg.gradcheck(Shuffled.apply, x, upstream=np.ones(3))  # all-ones hides the bug
    for seed in range(3):
        with pytest.raises(mg.GradcheckError):
            mg.gradcheck(Shuffled.apply, x, seed=seed)


# ---------------------------------------------------------------- assert_gradients_match
def test_assert_gradients_match_passes_and_fails_readably():
    x = mg.tensor(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), requires_grad=True)
    assert_gradients_match(lambda t: t * t, x)

    def square(t, scale, power):
        return HalfSquare.apply(t) * scale.sum() ** power

    with pytest.raises(AssertionError) as info:
        assert_gradients_match(square, x, mg.tensor(np.ones(2)), 2)
    message = str(info.value)
    assert message.startswith("gradients of test_assert_gradients_match_passes_and_fails_readably.<locals>.square")
    assert "input 0: Tensor(2, 3) float64 (checked)" in message
    assert "input 1: Tensor(2,) float64 (constant)" in message
    assert "input 2: 2" in message
    assert "(output made by Mul)" in message and "analytic" in message and "numeric" in message


def test_assert_gradients_match_refuses_non_finite_outputs():
    x = mg.tensor(np.array([-1.0, 2.0]), requires_grad=True)
    with np.errstate(invalid="ignore"), pytest.raises(AssertionError, match="returned NaN or Inf"):
        assert_gradients_match(mg.log, x)


# ---------------------------------------------------------------- strategies
@given(shape=shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
def test_shapes_respect_their_bounds(shape):
    assert 1 <= len(shape) <= 3 and all(2 <= n <= 4 for n in shape)


@given(shape_list=broadcastable_shapes(n=3, max_dims=3, max_side=4))
def test_broadcastable_shapes_broadcast(shape_list):
    assert len(shape_list) == 3
    result = np.broadcast_shapes(*shape_list)
    assert len(result) <= 3 and all(n <= 4 for s in shape_list for n in s)


def test_broadcastable_shapes_include_size_one_axes_and_different_ranks():
    """Both kinds of broadcasting are actually generated (found within hypothesis's budget)."""
    def stretches_a_size_one_axis(pair):
        a, b = pair
        return len(a) == len(b) and any(x == 1 and y > 1 for x, y in zip(a, b))

    quick = settings(phases=[Phase.generate], database=None)  # the first hit will do: no shrinking
    assert stretches_a_size_one_axis(find(broadcastable_shapes(), stretches_a_size_one_axis, settings=quick))
    different = find(broadcastable_shapes(min_dims=1), lambda p: len(p[0]) != len(p[1]), settings=quick)
    assert len(different[0]) != len(different[1])


@given(a=arrays(shapes(max_dims=2), min_value=-2.0, max_value=2.0, away_from=(-1, 0, 1), margin=0.2))
def test_arrays_stay_in_range_and_away_from_kinks(a):
    assert a.dtype == np.float64
    assert np.all((a >= -2.0) & (a <= 2.0))
    for k in (-1, 0, 1):
        assert np.all(np.abs(a - k) >= 0.2 - 1e-12)


@given(a=arrays((3, 4), dtype=np.float32, min_value=0.1, max_value=0.3, away_from=(0.3,), margin=0.05))
def test_arrays_with_a_dtype_and_a_point_at_the_edge(a):
    assert a.shape == (3, 4) and a.dtype == np.float32
    assert np.all(a >= np.float32(0.1)) and np.all(a <= np.float32(0.25) + 1e-7)


@given(a=arrays((5,), unique=True))
def test_arrays_unique(a):
    assert len(set(a.tolist())) == 5


@given(t=tensors(shapes(max_dims=2), away_from=(0,)))
def test_tensors_require_grad_and_are_float64(t):
    assert isinstance(t, mg.Tensor) and t.requires_grad and t.dtype == np.float64
    assert np.all(np.abs(t.data) >= 0.1)


@given(t=tensors((2, 3), requires_grad=False))
def test_tensors_can_be_constants(t):
    assert isinstance(t, mg.Tensor) and not t.requires_grad and t.shape == (2, 3)


def test_arrays_rejects_overlapping_points():
    with pytest.raises(ValueError, match="apart"):
        arrays(away_from=(0.0, 0.15))
    with pytest.raises(ValueError, match="larger than"):
        arrays(min_value=1.0, max_value=0.0)


@given(x=tensors(shapes(max_dims=2, max_side=3), min_value=-4, max_value=4), seed=st.integers(0, 2**32 - 1))
def test_readme_example_softplus(x, seed):
    """The README's example: property-testing a user's own composite op in three lines."""
    def softplus(t):
        return mg.log(1 + mg.exp(t))

    assert_gradients_match(softplus, x, seed=seed)



def test_gradcheck_restores_float64_inputs_it_perturbs_in_place():
    """float64 inputs are perturbed in place (so module parameters can be checked); their values
    come back exactly, also when fn raises in the middle of the finite differences."""
    data = np.array([0.25, -1.5, 3.0])
    x = mg.tensor(data.copy(), requires_grad=True)
    assert mg.gradcheck(lambda t: mg.tanh(t) * t, x)
    np.testing.assert_array_equal(x.data, data)

    calls = []

    def flaky(t):
        calls.append(1)
        if len(calls) > 3:  # the forward and backward pass work, a later evaluation fails
            raise RuntimeError("boom")
        return t * 2.0

    with pytest.raises(RuntimeError, match="boom"):
        mg.gradcheck(flaky, x)
    np.testing.assert_array_equal(x.data, data)
