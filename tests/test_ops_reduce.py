"""sum, mean, max, var over axis None / an int / a tuple of axes, with and without keepdims."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.testing import arrays, assert_gradients_match, shapes, tensors

seeds = st.integers(0, 2**32 - 1)


@st.composite
def axes_for(draw, shape):
    """None, one axis, or a tuple of distinct axes of ``shape`` (negative numbering mixed in)."""
    ndim = len(shape)
    if ndim == 0:
        return None
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    chosen = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(a - ndim if draw(st.booleans()) else a for a in chosen)


def reduced_count(shape, axis):
    if axis is None:
        return int(np.prod(shape))
    axes = (axis,) if isinstance(axis, int) else axis
    return int(np.prod([shape[a] for a in axes]))


@st.composite
def reduction_case(draw, **array_options):
    shape = draw(shapes(max_dims=3, max_side=3))
    return draw(tensors(shape, **array_options)), draw(axes_for(shape)), draw(st.booleans())


@pytest.mark.parametrize("op", ["sum", "mean"])
@given(case=reduction_case(), seed=seeds)
def test_sum_mean_gradient(op, case, seed):
    x, axis, keepdims = case
    assert_gradients_match(lambda t: getattr(mg, op)(t, axis, keepdims), x, seed=seed)


@pytest.mark.parametrize("op", ["sum", "mean", "max"])
@given(case=reduction_case())
def test_forward_matches_numpy(op, case):
    x, axis, keepdims = case
    y = getattr(x, op)(axis=axis, keepdims=keepdims)
    expected = getattr(np, op)(x.data, axis=axis, keepdims=keepdims)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)


@given(case=reduction_case(), ddof=st.sampled_from([0, 1]), seed=seeds)
def test_var_gradient(case, ddof, seed):
    x, axis, keepdims = case
    if reduced_count(x.shape, axis) <= ddof:
        ddof = 0  # n - ddof must be positive
    assert_gradients_match(lambda t: mg.var(t, axis, keepdims, ddof=ddof), x, seed=seed)


@given(case=reduction_case())
def test_var_forward(case):
    x, axis, keepdims = case
    np.testing.assert_allclose(x.var(axis=axis, keepdims=keepdims, ddof=0).data,
                               np.var(x.data, axis=axis, keepdims=keepdims), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mg.var(x, axis, keepdims, unbiased=False).data,
                               np.var(x.data, axis=axis, keepdims=keepdims), rtol=1e-10, atol=1e-12)
    if reduced_count(x.shape, axis) > 1:
        # like torch.var, the default is the unbiased estimate (divide by n - 1)
        np.testing.assert_allclose(x.var(axis=axis, keepdims=keepdims).data,
                                   np.var(x.data, axis=axis, keepdims=keepdims, ddof=1), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- max
@st.composite
def tensor_without_ties(draw):
    """Values 0.5 apart in a random order (plus small noise): no ties, and no two values within
    the finite-difference step of each other."""
    shape = draw(shapes(max_dims=3, max_side=3))
    size = int(np.prod(shape))
    order = draw(st.permutations(range(size)))
    noise = draw(arrays((size,), min_value=-0.1, max_value=0.1))
    values = (np.array(order, dtype=np.float64) * 0.5 - size / 4 + noise).reshape(shape)
    return mg.tensor(values, requires_grad=True)


@given(x=tensor_without_ties(), data=st.data(), seed=seeds)
def test_max_gradient(x, data, seed):
    axis = data.draw(axes_for(x.shape), label="axis")
    keepdims = data.draw(st.booleans(), label="keepdims")
    assert_gradients_match(lambda t: mg.max(t, axis, keepdims), x, seed=seed)


def test_max_splits_the_gradient_evenly_on_ties():
    x = mg.tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [0.0, 5.0, -1.0]]), requires_grad=True)
    x.max(axis=1).backward(np.array([1.0, 3.0, 2.0]))
    np.testing.assert_allclose(x.grad, [[0.0, 0.5, 0.5], [1.0, 1.0, 1.0], [0.0, 2.0, 0.0]])

    y = mg.tensor(np.array([4.0, -1.0, 4.0, 4.0]), requires_grad=True)
    y.max().backward()
    np.testing.assert_allclose(y.grad, [1 / 3, 0.0, 1 / 3, 1 / 3])


@given(x=arrays(shapes(min_dims=1, max_dims=3, max_side=4), elements=st.integers(-2, 2).map(float)),
       data=st.data(), seed=seeds)
def test_max_gradient_with_many_ties(x, data, seed):
    """With small integer values (many ties) the gradient is [x is a max] / (number of maxima)."""
    axis = data.draw(axes_for(x.shape), label="axis")
    keepdims = data.draw(st.booleans(), label="keepdims")
    g = np.random.default_rng(seed).standard_normal(np.max(x, axis=axis, keepdims=keepdims).shape)
    t = mg.tensor(x, requires_grad=True)
    t.max(axis=axis, keepdims=keepdims).backward(g)
    is_max = x == np.max(x, axis=axis, keepdims=True)
    g_kept = g if keepdims else np.expand_dims(g, tuple(range(x.ndim)) if axis is None else axis)
    expected = is_max * g_kept / is_max.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(t.grad, expected, rtol=1e-12, atol=1e-15)
    # the gradient is conserved: each output's upstream gradient is shared out, not duplicated
    np.testing.assert_allclose(t.grad.sum(), g.sum(), rtol=1e-9, atol=1e-12)


def test_axis_out_of_range_is_a_value_error():
    with pytest.raises(ValueError, match="out of range"):
        mg.tensor(np.ones((2, 3))).sum(axis=2)
